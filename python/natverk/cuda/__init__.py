"""natverk on the GPU: device tensors and the CUDA twin of every kernel family (issue 15).

The CUDA backend is optional. It is compiled only when the package is built with
``NATVERK_CUDA=ON pip install .``; a CPU install has none of it and stays quick. When it is
built, ``natverk._core.cuda`` holds:

- ``Tensor``: a C-contiguous float32, float64, int64 or uint8 array in GPU memory, made by
  :func:`to_device`, ``empty``/``zeros`` or a kernel, and copied back with ``.numpy()``;
- the CUDA twin of each ``natverk._core`` kernel, under the same name and with the same
  arguments, taking Tensors where the CPU kernel takes arrays (``ops.gemm``,
  ``ops.conv2d_forward``, ``ops.adam_update``, ...). Each twin is tested against its CPU kernel
  (``tests/test_cuda_*.py``): float64 to 1e-12, float32 to 1e-5, dropout masks bit for bit.

Kernels run in order on natverk's own CUDA stream; ``.numpy()`` waits for them.

Examples
--------
>>> from natverk import cuda
>>> if cuda.is_available():                       # doctest: +SKIP
...     a = cuda.to_device(np.ones((2, 3), np.float32))
...     cuda.ops.add(a, a).numpy()
"""

from __future__ import annotations

from typing import Any

from .. import _core

__all__ = [
    "device_info",
    "empty",
    "is_available",
    "is_built",
    "ops",
    "require",
    "synchronize",
    "to_device",
    "why_unavailable",
    "zeros",
]

#: The raw CUDA kernels (``natverk._core.cuda``), or None in a build without CUDA.
ops: Any = getattr(_core, "cuda", None)

_NOT_BUILT = ("this natverk was built without its CUDA backend; rebuild it with "
              "NATVERK_CUDA=ON pip install . (needs nvcc, CUDA 12 or newer)")


def is_built() -> bool:
    """True when this natverk was compiled with its CUDA backend."""
    return ops is not None


def is_available() -> bool:
    """True when the CUDA backend is built and a GPU is visible."""
    return ops is not None and ops.device_count() > 0


def why_unavailable() -> str:
    """Why :func:`is_available` is False, in words; ``""`` when it is True."""
    if ops is None:
        return _NOT_BUILT
    return ops.unavailable_reason()


def require():
    """The CUDA kernels module; a RuntimeError saying what is missing otherwise."""
    if not is_available():
        raise RuntimeError("natverk.cuda: no GPU to run on: " + why_unavailable())
    return ops


def to_device(array):
    """Copy a NumPy array (float32, float64, int64 or uint8; any strides) to a new Tensor."""
    return require().to_device(array)


def empty(shape, dtype="float32"):
    """A new Tensor of ``shape`` and ``dtype``, contents undefined."""
    return require().empty(shape, dtype)


def zeros(shape, dtype="float32"):
    """A new Tensor of zeros."""
    return require().zeros(shape, dtype)


def synchronize() -> None:
    """Wait for every kernel queued on natverk's stream."""
    require().synchronize()


def device_info() -> dict:
    """The GPU and CUDA versions, or ``{"built": False, "reason": ...}`` without a backend."""
    if ops is None:
        return {"built": False, "reason": _NOT_BUILT}
    return {"built": True, **ops.device_info()}
