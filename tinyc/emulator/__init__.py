"""Build test firmware around generated code and run it: natively for ``host``, in QEMU for the
embedded targets."""
from .runner import FirmwareResult, build_firmware, run_firmware, run_on_target

__all__ = ["FirmwareResult", "build_firmware", "run_firmware", "run_on_target"]
