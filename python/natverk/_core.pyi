"""Type stubs for natverk._core, the compiled C++ kernels (see cpp/*/*.h).

Conventions every function follows (cpp/bindings/checks.h):

* Array arguments must be numpy.ndarray (lists are not converted: several
  kernels update an argument in place); anything else raises TypeError naming
  the argument ("x must be a NumPy array, got list"). ``| None`` marks the
  optional ones.
* Scalar arguments are converted with checks that name them too (TypeError for the
  wrong kind, ValueError out of range): a float is a real number (int, float, NumPy
  scalar, 0-d array; not bool, None or str), an int an integer within int64 (a seed
  within uint64; 2**70 is a ValueError, 1.0 a TypeError), an (h, w) pair a sequence of
  two such integers, a flag True/False (or numpy.bool_; None is not False), a name a str.
* Float arguments (learning_rate, lambda_, alpha, eps, ...) must be finite and
  representable in the arrays' dtype (1e300 is rejected for float32): ValueError.
* Sizes derived from geometry (stride, padding, dilation, kernel_size) are
  checked for int64 overflow (cpp/common/shape.h): ValueError naming the
  argument; a size that fits but exceeds memory raises MemoryError.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

_F = npt.NDArray[np.floating]
_Act = Literal["relu", "sigmoid", "tanh", "linear", "identity", "none"]
_Red = Literal["mean", "sum"]

__version__: str
cuda_built: bool
# natverk._core.cuda exists only in a NATVERK_CUDA=ON build (cuda_built True): the CUDA twin of
# each function below under the same name and arguments, on natverk.cuda Tensors, plus
# Tensor / to_device / empty / zeros / device_count / device_info / synchronize (see
# python/natverk/cuda/__init__.py and cpp/bindings/cuda/).

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def hardware_threads() -> int: ...
def simd_level() -> str: ...
def best_simd_level() -> str: ...
def set_simd_level(level: Literal["scalar", "avx2", "avx512"]) -> None: ...
def gemm_blocking(dtype: Literal["float32", "float64"]) -> dict[str, int]: ...
def _set_gemm_b_in_place(mode: Literal["auto", "always", "never"]) -> None: ...
def _gemm_b_in_place() -> tuple[str, bool]: ...

# the pool large output arrays come from (cpp/bindings/array_pool.h)
def _array_pool_stats() -> dict[str, int]: ...
def _array_pool_clear() -> None: ...

# gemm: NaN/Inf in A or B propagate into C even when alpha == 0 (0 * NaN is NaN)
def gemm(
    A: _F,
    B: _F,
    C: _F | None = None,
    alpha: float = 1.0,
    beta: float = 0.0,
    trans_a: bool = False,
    trans_b: bool = False,
) -> _F: ...

# activations
def activation_forward(x: _F, kind: _Act) -> _F: ...
def activation_backward(dh: _F, h: _F, kind: _Act) -> _F: ...
def softmax(z: _F) -> _F: ...

# dense
# the valid case of natverk._validation.network_layout: (dtype, L), or None for anything else
def _network_layout(parameters: object) -> tuple[np.dtype, int] | None: ...
def _first_non_finite(X: _F) -> int: ...
def dense_forward(X: _F, W: _F, b: _F, activation: _Act = "linear") -> _F: ...
def dense_backward(
    dZ: _F, X: _F, W: _F, lambda_: float = 0.0, need_dX: bool = True, relu_mask: bool = False
) -> tuple[_F | None, _F, _F]: ...
def bias_add(Z: _F, b: _F) -> _F: ...
def bias_grad(dZ: _F) -> _F: ...

# losses
def softmax_cross_entropy(
    z: _F, y: npt.NDArray[np.integer], class_weights: _F | None = None
) -> tuple[float, _F]: ...
def softmax_cross_entropy_backward(
    probs: _F, y: npt.NDArray[np.integer], class_weights: _F | None = None
) -> _F: ...
def mse(pred: _F, target: _F, reduction: _Red = "mean") -> float: ...
def mse_backward(pred: _F, target: _F, reduction: _Red = "mean") -> _F: ...
def binary_cross_entropy(pred: _F, target: _F, reduction: _Red = "mean") -> float: ...
def binary_cross_entropy_backward(pred: _F, target: _F, reduction: _Red = "mean") -> _F: ...
def binary_cross_entropy_with_logits(z: _F, target: _F, reduction: _Red = "mean") -> float: ...
def binary_cross_entropy_with_logits_backward(z: _F, target: _F, reduction: _Red = "mean") -> _F: ...
def sum_of_squares(w: _F) -> float: ...

# optimizers (in place)
def sgd_update(w: _F, g: _F, learning_rate: float, weight_decay: float = 0.0) -> None: ...
def momentum_update(
    w: _F, v: _F, g: _F, learning_rate: float, beta: float, weight_decay: float = 0.0
) -> None: ...
def rmsprop_update(
    w: _F, s: _F, g: _F, learning_rate: float, beta2: float, eps: float = 1e-8, weight_decay: float = 0.0
) -> None: ...
def adam_update(
    w: _F,
    v: _F,
    s: _F,
    g: _F,
    learning_rate: float,
    beta1: float,
    beta2: float,
    t: int,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None: ...

# conv2d (NCHW; stride/padding/dilation are (h, w) pairs)
_Pair = tuple[int, int]

def conv2d_forward(
    x: _F,
    weight: _F,
    bias: _F | None = None,
    stride: _Pair = (1, 1),
    padding: _Pair = (0, 0),
    dilation: _Pair = (1, 1),
    groups: int = 1,
) -> _F: ...
def conv2d_backward(
    dy: _F,
    x: _F,
    weight: _F,
    stride: _Pair = (1, 1),
    padding: _Pair = (0, 0),
    dilation: _Pair = (1, 1),
    groups: int = 1,
    need_dx: bool = True,
    need_dw: bool = True,
    need_db: bool = True,
) -> tuple[_F | None, _F | None, _F | None]: ...
def set_conv_algo(algorithm: str) -> None: ...
def get_conv_algo() -> str: ...
def conv2d_algorithm(
    x: _F,
    weight: _F,
    stride: _Pair = (1, 1),
    padding: _Pair = (0, 0),
    dilation: _Pair = (1, 1),
    groups: int = 1,
) -> str: ...
def _conv2d_maxpool(
    x: _F, weight: _F, bias: _F | None = None, padding: _Pair = (0, 0), relu: bool = True
) -> tuple[_F, npt.NDArray[np.int64]] | None: ...
def _conv2d_direct(x: _F, weight: _F, bias: _F | None = None, padding: _Pair = (0, 0)) -> _F | None: ...

# pool2d
def maxpool2d_forward(
    x: _F, kernel_size: _Pair, stride: _Pair, padding: _Pair = (0, 0)
) -> tuple[_F, npt.NDArray[np.int64]]: ...
def maxpool2d_backward(
    dy: _F,
    argmax: npt.NDArray[np.int64],
    x: _F,
    kernel_size: _Pair,
    stride: _Pair,
    padding: _Pair = (0, 0),
    relu_output: _F | None = None,
) -> _F: ...
def avgpool2d_forward(x: _F, kernel_size: _Pair, stride: _Pair, padding: _Pair = (0, 0)) -> _F: ...
def avgpool2d_backward(dy: _F, x: _F, kernel_size: _Pair, stride: _Pair, padding: _Pair = (0, 0)) -> _F: ...
def global_avgpool_forward(x: _F) -> _F: ...
def global_avgpool_backward(dy: _F, x: _F) -> _F: ...

# batch norm ((N, F) or (N, C, H, W))
def batchnorm_forward(
    x: _F,
    gamma: _F,
    beta: _F,
    running_mean: _F,
    running_var: _F,
    training: bool,
    eps: float = 1e-5,
    momentum: float = 0.1,
) -> tuple[_F, _F, _F]: ...
def batchnorm_backward(
    dy: _F, x: _F, mean: _F, invstd: _F, gamma: _F, training: bool
) -> tuple[_F, _F, _F]: ...

# dropout
def dropout_forward(x: _F, p: float, seed: int) -> tuple[_F, npt.NDArray[np.uint8]]: ...
def dropout_backward(dy: _F, mask: npt.NDArray[np.uint8], p: float) -> _F: ...
# the Dropout layer's kernel seed of training call `call` (SeedSequence([seed, call]), in C++)
def dropout_call_seed(seed: int, call: int) -> int: ...

# residual
def add(a: _F, b: _F) -> _F: ...

# the step plan (cpp/plan/plan.h): a network's whole training step as one C++ op list over the
# caller's arrays (parameters, gradients, optimizer state, running statistics, dropout counters)
class Plan:
    def __init__(self, dtype: npt.DTypeLike, input_shape: tuple[int, ...] | list[int]) -> None: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def input_shape(self) -> tuple[int, ...]: ...
    @property
    def output_shape(self) -> tuple[int, ...]: ...
    @property
    def current_shape(self) -> tuple[int, ...]: ...
    @property
    def loss(self) -> str: ...
    @property
    def fuse_updates(self) -> bool: ...
    @fuse_updates.setter
    def fuse_updates(self, on: bool) -> None: ...
    @property
    def row_split(self) -> bool: ...
    @row_split.setter
    def row_split(self, on: bool) -> None: ...
    def _uses_row_split(self, rows: int) -> bool: ...
    @property
    def fuse_min_bytes(self) -> int: ...
    @fuse_min_bytes.setter
    def fuse_min_bytes(self, bytes: int) -> None: ...
    @property
    def num_parameters(self) -> int: ...
    # building, in layer order
    def dense(self, W: _F, b: _F | None, dW: _F, db: _F | None) -> None: ...
    def activation(self, kind: _Act) -> None: ...
    def dropout(self, p: float, seed: int, counter: npt.NDArray[np.int64]) -> None: ...
    def flatten(self) -> None: ...
    def conv2d(
        self,
        W: _F,
        b: _F | None,
        dW: _F,
        db: _F | None,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
        dilation: tuple[int, int] = (1, 1),
        groups: int = 1,
    ) -> None: ...
    def maxpool2d(self, kernel_size: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int] = (0, 0)) -> None: ...
    def avgpool2d(self, kernel_size: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int] = (0, 0)) -> None: ...
    def global_avgpool2d(self) -> None: ...
    def batchnorm(
        self,
        gamma: _F,
        beta: _F,
        dgamma: _F,
        dbeta: _F,
        running_mean: _F,
        running_var: _F,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ) -> None: ...
    def begin_residual(self) -> None: ...
    def end_residual(self) -> None: ...
    def set_loss(self, kind: Literal["cross_entropy", "mse", "bce_with_logits"], class_weights: _F | None = None) -> None: ...
    def set_optimizer(
        self,
        kind: Literal["sgd", "momentum", "rmsprop", "adam"],
        v: list[_F | None],
        s: list[_F | None],
        decay: list[bool],
        l2_in_backward: bool = False,
    ) -> None: ...
    # running (GIL released)
    def step(
        self,
        X: _F,
        y: npt.NDArray[np.integer] | _F,
        learning_rate: float,
        beta: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.99,
        eps: float = 1e-8,
        t: int = 1,
        weight_decay: float = 0.0,
        max_loss: float | None = None,
        accuracy_targets: npt.NDArray[np.integer] | npt.NDArray[np.bool_] | None = None,
        check_finite: bool = True,
    ) -> tuple[float, float, int | None, bool]: ...
    def gradients(
        self,
        X: _F,
        y: npt.NDArray[np.integer] | _F,
        weight_decay: float = 0.0,
        accuracy_targets: npt.NDArray[np.integer] | npt.NDArray[np.bool_] | None = None,
    ) -> tuple[float, float, int | None]: ...
    # step() in two halves, the weight decay chosen in between (the balance principle)
    def forward_loss(
        self,
        X: _F,
        y: npt.NDArray[np.integer] | _F,
        rows: npt.NDArray[np.integer] | None = None,
        accuracy_targets: npt.NDArray[np.integer] | npt.NDArray[np.bool_] | None = None,
        check_finite: bool = True,
    ) -> tuple[float, float, int | None]: ...
    def backward_update(
        self,
        learning_rate: float,
        beta: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.99,
        eps: float = 1e-8,
        t: int = 1,
        weight_decay: float = 0.0,
    ) -> None: ...
    def forward(self, X: _F) -> _F: ...
    def epoch(
        self,
        X: _F,
        y: npt.NDArray[np.integer] | _F,
        order: npt.NDArray[np.integer],
        batch_size: int,
        learning_rate: float,
        beta: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.99,
        eps: float = 1e-8,
        t: int = 1,
        weight_decay: float = 0.0,
        max_loss: float | None = None,
        accuracy_targets: npt.NDArray[np.integer] | npt.NDArray[np.bool_] | None = None,
        check_finite: bool = True,
    ) -> dict: ...
