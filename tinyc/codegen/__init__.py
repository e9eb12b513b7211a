"""Printing the kernel-level IR as C (the back-end passes choose kernels and plan memory first)."""
from .emit import GeneratedModel, generate

__all__ = ["GeneratedModel", "generate"]
