"""Weights from and to other libraries, read without running any code.

- :func:`from_torch` / :func:`to_torch_state_dict`: a PyTorch ``state_dict`` (a ``.pt``/``.pth``
  file or a mapping) into a natverk :class:`~natverk.models.Sequential` and back
  (:mod:`natverk.interop.pytorch` has the layout table).
- :func:`read_pth`: what a ``torch.save`` file holds, as NumPy arrays and containers, without
  PyTorch and without unpickling (torch's ``weights_only`` rule; a file that asks for more raises
  :class:`UnsafeCheckpointError`).
"""

from __future__ import annotations

from ._pth import UnsafeCheckpointError, read_pth
from .pytorch import from_torch, load_torch_state_dict, to_torch_state_dict

__all__ = ["UnsafeCheckpointError", "from_torch", "load_torch_state_dict", "read_pth", "to_torch_state_dict"]
