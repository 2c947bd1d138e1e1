"""What a user sees of the CUDA backend on any machine (issue 15): these run everywhere.

Without a CUDA build, or without a GPU, every entry point of ``natverk.cuda`` that needs the
device raises a RuntimeError that says what is missing; the queries answer without raising.
"""

from __future__ import annotations

import io

import natverk
import numpy as np
import pytest
from natverk import _core
from natverk import cuda as nvcuda


def test_is_built_matches_the_extension():
    assert nvcuda.is_built() == bool(_core.cuda_built) == hasattr(_core, "cuda")


def test_show_config_reports_the_cuda_backend():
    cfg = natverk.show_config(file=io.StringIO())
    assert cfg["cuda_built"] == nvcuda.is_built()
    assert cfg["cuda_available"] == nvcuda.is_available()
    if nvcuda.is_available():
        assert cfg["cuda_device"]  # the GPU's name
    else:
        assert cfg["cuda_device"] is None


@pytest.mark.skipif(nvcuda.is_available(), reason="a GPU is visible")
def test_without_a_gpu_every_device_call_says_what_is_missing():
    reason = nvcuda.why_unavailable()
    assert reason
    if not nvcuda.is_built():
        assert "NATVERK_CUDA=ON" in reason
    for call in (lambda: nvcuda.to_device(np.ones(3)), lambda: nvcuda.zeros((2, 2)), nvcuda.synchronize,
                 nvcuda.require):
        with pytest.raises(RuntimeError, match="no GPU to run on"):
            call()
    info = nvcuda.device_info()
    assert info["built"] == nvcuda.is_built() and info.get("device_count", 0) == 0


@pytest.mark.skipif(not nvcuda.is_built() or nvcuda.is_available(), reason="needs a CUDA build without a GPU")
def test_cuda_build_without_gpu_raises_from_the_kernels_too():
    """The raw kernels and Tensor constructors, called past natverk.cuda's checks, raise a
    RuntimeError naming the missing GPU rather than crashing."""
    with pytest.raises(RuntimeError, match="no usable GPU|no GPU"):
        nvcuda.ops.to_device(np.ones(3))
    with pytest.raises(RuntimeError, match="no usable GPU|no GPU"):
        nvcuda.ops.empty((2,), "float32")
    with pytest.raises(TypeError, match="A must be a natverk.cuda.Tensor"):
        nvcuda.ops.gemm(np.ones((2, 2)), np.ones((2, 2)))


@pytest.mark.skipif(not nvcuda.is_available(), reason="no GPU: " + nvcuda.why_unavailable())
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_tensor_round_trip(dtype):
    a = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    t = nvcuda.to_device(a[:, ::2].T)  # a strided view: copied C-contiguous
    assert t.shape == (4, 2, 2) and t.dtype == np.dtype(dtype) and t.size == 16
    np.testing.assert_array_equal(t.numpy(), a[:, ::2].T)
    assert "natverk.cuda.Tensor" in repr(t)
    z = nvcuda.zeros((0, 3), dtype)
    assert z.numpy().shape == (0, 3)
    np.testing.assert_array_equal(nvcuda.zeros(5, dtype).numpy(), np.zeros(5, dtype))
    with pytest.raises(TypeError, match="array must be float32, float64, int64 or uint8, got complex64"):
        nvcuda.to_device(np.ones(2, np.complex64))
