"""Lowering IR to C: kernel choice per node, the memory plan, and rendering the templates."""
from .emit import GeneratedModel, generate

__all__ = ["GeneratedModel", "generate"]
