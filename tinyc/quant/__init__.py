"""Quantization: TFLite's int8 fixed-point arithmetic, QDQ handling and calibration."""
