"""The JAX + Haiku + optax reference implementation (the suite's yardstick)."""

from .runner import ReferenceRunner

__all__ = ["ReferenceRunner"]
