"""The harness every CUDA test uses (issue 15): run a ``natverk._core`` kernel and its twin in
``natverk._core.cuda`` on the same inputs, and compare.

``twin(name, *args, inplace=(), **kwargs)`` calls ``_core.<name>(*args, **kwargs)`` on copies of
the NumPy arguments and ``_core.cuda.<name>`` on device copies of them (every ndarray argument
becomes a Tensor; everything else passes as is). It returns the two results with Tensors
brought back to NumPy, plus the arguments at the ``inplace`` positions after the call (the
optimizer updates write their arguments). ``check_twin`` compares them with the tolerance table
of ``tests/tolerances.py``: the GPU result must match the CPU kernel's to float64 1e-12 /
float32 1e-5 (or the op's own row there).

Without a CUDA build or a GPU every test marked ``requires_gpu`` is skipped and says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from natverk import _core
from natverk import cuda as nvcuda
from tolerances import assert_close, tol

requires_gpu = pytest.mark.skipif(not nvcuda.is_available(),
                                  reason="no GPU for the CUDA twins: " + nvcuda.why_unavailable())


def to_host(value: Any) -> Any:
    """Tensors to NumPy, recursively through tuples and lists."""
    if nvcuda.ops is not None and isinstance(value, nvcuda.ops.Tensor):
        return value.numpy()
    if isinstance(value, (tuple, list)):
        return type(value)(to_host(v) for v in value)
    return value


def to_dev(value: Any) -> Any:
    """NumPy arrays to Tensors, recursively through tuples and lists."""
    if isinstance(value, np.ndarray):
        return nvcuda.to_device(value)
    if isinstance(value, (tuple, list)):
        return type(value)(to_dev(v) for v in value)
    return value


def twin(name: str, *args, inplace: tuple[int, ...] = (), **kwargs):
    """(cpu result, gpu result, cpu in-place args, gpu in-place args) of kernel ``name``."""
    cpu_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    gpu_args = [to_dev(a) for a in args]
    cpu = getattr(_core, name)(*cpu_args, **kwargs)
    gpu = getattr(nvcuda.ops, name)(*gpu_args, **{k: to_dev(v) for k, v in kwargs.items()})
    return (cpu, to_host(gpu), [cpu_args[i] for i in inplace], [to_host(gpu_args[i]) for i in inplace])


def compare(gpu: Any, cpu: Any, dtype, what: str, op: str | None = None, scale: float = 1.0,
            exact: bool = False) -> None:
    """Assert the GPU value matches the CPU value (arrays, floats, tuples of them)."""
    if isinstance(cpu, (tuple, list)):
        assert isinstance(gpu, (tuple, list)) and len(gpu) == len(cpu), f"{what}: {gpu!r} vs {cpu!r}"
        for i, (g, c) in enumerate(zip(gpu, cpu)):
            compare(g, c, dtype, f"{what}[{i}]", op, scale, exact)
        return
    if cpu is None:
        assert gpu is None, f"{what}: expected None, got {gpu!r}"
        return
    if exact or (isinstance(cpu, np.ndarray) and cpu.dtype.kind in "iub"):
        np.testing.assert_array_equal(gpu, cpu, err_msg=what)
        return
    if isinstance(cpu, np.ndarray):
        assert isinstance(gpu, np.ndarray) and gpu.dtype == cpu.dtype and gpu.shape == cpu.shape, (
            f"{what}: GPU gave {getattr(gpu, 'dtype', type(gpu))} {getattr(gpu, 'shape', '')}, "
            f"CPU {cpu.dtype} {cpu.shape}")
    t = tol(dtype, op, scale)
    assert_close(np.asarray(gpu), np.asarray(cpu), dtype, what, rtol=t.rtol, atol=t.atol)


def check_twin(name: str, *args, dtype, inplace: tuple[int, ...] = (), op: str | None = None,
               scale: float = 1.0, exact: bool = False, **kwargs):
    """Run ``twin`` and compare the results and the in-place arguments; return the CPU result."""
    cpu, gpu, cpu_in, gpu_in = twin(name, *args, inplace=inplace, **kwargs)
    compare(gpu, cpu, dtype, name, op, scale, exact)
    for i, (g, c) in zip(inplace, zip(gpu_in, cpu_in)):
        compare(g, c, dtype, f"{name} argument {i} (in place)", op, scale, exact)
    return cpu
