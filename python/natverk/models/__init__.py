"""Models for the layer API: :class:`Sequential` and :func:`load`."""

from __future__ import annotations

from ._io import load
from .sequential import Sequential

__all__ = ["Sequential", "load"]
