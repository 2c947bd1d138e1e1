"""Data augmentation for image batches (thesis §2.4.4; digest §2 "Regularisation").

The thesis' PyTorch scripts augment training images with a random horizontal
flip and a random affine rotation of up to 15 degrees
(``transforms.RandomHorizontalFlip()``, ``transforms.RandomAffine(degrees=15)``)
and then normalise per channel; the text also names brightness changes, and
crops with padding are the usual companion on CIFAR-10. Here each of these is
a small class that transforms a whole float NCHW batch at once with NumPy
(no Python loop over the images)::

    from natverk import augmentation as A
    augment = A.Compose([A.RandomHorizontalFlip(), A.RandomRotation(15),
                         A.Normalize(A.CIFAR10_MEAN, A.CIFAR10_STD)])
    X_aug = augment(X_batch, np.random.default_rng(0))
    model.fit(X, y, epochs=10, augment=augment, seed=0)   # a fresh draw for every batch

Conventions shared by every transform:

* called as ``t(X, rng)`` with ``X`` a float (N, C, H, W) array and ``rng`` a
  ``numpy.random.Generator`` (an int seed or None is turned into one);
* returns a **new** array of X's dtype; ``X`` is never modified;
* all randomness comes from ``rng``, so the same generator state gives the
  same output (``fit`` derives it from ``(seed, epoch, batch)``, which makes
  augmented training reproducible and exactly resumable);
* random choices are drawn per image, for the whole batch in one call.

Flip the digits of MNIST with care: a mirrored 6 is no longer a 6 (thesis §2.4.4).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import numpy as np

from ..utils.normalization import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD, normalize_channels

__all__ = [
    "Transform",
    "Compose",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomCrop",
    "RandomBrightness",
    "Normalize",
    "rotate",
    "MNIST_MEAN",
    "MNIST_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
]


# ------------------------------------------------------------------ shared checks


def _batch(X: Any) -> np.ndarray:
    """``X`` as a float (N, C, H, W) ndarray (not copied), or a clear error."""
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    if X.dtype.kind != "f":
        raise TypeError(f"augmentation needs a floating-point image batch, got dtype {X.dtype} (scale it to [0, 1] first)")
    if X.ndim != 4:
        raise ValueError(f"augmentation needs an (N, C, H, W) batch, got shape {X.shape}")
    return X


def _rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")


def _probability(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    return float(p)


def _size(value: Any, name: str, minimum: int) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum for v in pair):
        raise ValueError(f"{name} must be an integer >= {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


class Transform:
    """Base class: ``t(X, rng)`` returns a transformed copy of the batch ``X``."""

    def __call__(self, X: Any, rng: Any = None) -> np.ndarray:
        return self.apply(_batch(X), _rng(rng))

    def apply(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _args(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._args().items())})"


# ------------------------------------------------------------------ transforms


class Compose(Transform):
    """Apply ``transforms`` in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)
        for i, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] is not callable: {t!r}")

    def apply(self, X, rng):
        for t in self.transforms:
            X = t(X, rng)
        return X

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (the thesis' ``RandomHorizontalFlip()``)."""

    def __init__(self, p: float = 0.5):
        self.p = _probability(p)

    def _args(self):
        return {"p": self.p}

    def apply(self, X, rng):
        flip = rng.random(X.shape[0]) < self.p
        out = X.copy()
        out[flip] = X[flip, :, :, ::-1]
        return out


class RandomRotation(Transform):
    """Rotate each image by a random angle about its centre; pixels from outside the image are 0.

    The thesis' ``RandomAffine(degrees=15)``. ``degrees=d`` draws the angle
    uniformly from [-d, d]; ``degrees=(lo, hi)`` from [lo, hi] (so
    ``(90, 90)`` always rotates by 90 degrees). Positive angles turn the image
    counter-clockwise as displayed (row 0 at the top), like ``np.rot90``.

    Every output pixel samples the input at its pre-image under the rotation,
    with ``interpolation="nearest"`` (the default, as in torchvision's
    ``RandomAffine`` the thesis called) or ``"bilinear"`` (smoother, about 3x
    slower). The whole batch is one gather: the source positions of all
    N x H x W output pixels are computed at once, and one ``np.take`` fetches
    the pixel (or its 2 x 2 neighbours) in every channel. See :func:`rotate`.
    """

    def __init__(self, degrees: float | tuple[float, float] = 15.0, interpolation: str = "nearest"):
        pair = tuple(degrees) if isinstance(degrees, (tuple, list)) else (degrees,)
        if len(pair) not in (1, 2) or any(
            isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) for v in pair
        ):
            raise ValueError(f"degrees must be a finite number or a pair (lo, hi) of them, got {degrees!r}")
        if len(pair) == 1 and pair[0] < 0:
            raise ValueError(f"degrees must be >= 0 (angles are drawn from [-degrees, degrees]), got {degrees!r}")
        lo, hi = (-pair[0], pair[0]) if len(pair) == 1 else pair
        if lo > hi:
            raise ValueError(f"degrees range is empty: lo={lo} > hi={hi}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.degrees = (float(lo), float(hi))
        self.interpolation = interpolation

    def _args(self):
        return {"degrees": self.degrees, "interpolation": self.interpolation}

    def apply(self, X, rng):
        angles = np.deg2rad(rng.uniform(self.degrees[0], self.degrees[1], size=X.shape[0]))
        return rotate(X, angles, self.interpolation)


def rotate(X: np.ndarray, angles: np.ndarray, interpolation: str = "nearest") -> np.ndarray:
    """Rotate image ``n`` of the (N, C, H, W) batch by ``angles[n]`` radians counter-clockwise, zero fill.

    The work of :class:`RandomRotation`, usable on its own with chosen angles.
    """
    X = _batch(X)
    N, C, H, W = X.shape
    P = H * W
    angles = np.array(angles, dtype=np.float64).reshape(-1)
    if angles.shape[0] != N or not np.isfinite(angles).all():
        raise ValueError(f"angles must hold {N} finite values (one per image), got {angles.shape[0]}")
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    # Positions in float32 for float32 images (half the memory traffic), else float64.
    ft = np.float64 if X.dtype == np.float64 else np.float32
    cos, sin = np.cos(angles), np.sin(angles)
    # cos(pi/2) is 6e-17, not 0: snap such values so that multiples of 90
    # degrees are exact pixel permutations instead of a blur of 1e-16 weights.
    cos[np.abs(cos) < 1e-12] = 0.0
    sin[np.abs(sin) < 1e-12] = 0.0
    cos, sin = cos.astype(ft)[:, None, None], sin.astype(ft)[:, None, None]
    cy, cx = ft((H - 1) / 2), ft((W - 1) / 2)
    y = (np.arange(H, dtype=ft) - cy)[:, None]  # output pixel offsets from the centre
    x = (np.arange(W, dtype=ft) - cx)[None, :]
    # Inverse rotation: where in the input does output pixel (y, x) come from?
    # At +90 degrees src = (x, -y), i.e. out[i, j] = in[j, W-1-i]: np.rot90.
    src_y = cos * y + sin * x + cy  # (N, H, W)
    src_x = cos * x - sin * y + cx

    # The input pixels to read, as (row, column, weight) per "corner": one
    # corner for nearest, the 2 x 2 neighbours for bilinear. Outside the image
    # the weight is 0 (zero fill).
    if interpolation == "nearest":
        iy, ix = np.rint(src_y).astype(np.intp), np.rint(src_x).astype(np.intp)
        corners = [(iy, ix, (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W))]
    else:
        fy0, fx0 = np.floor(src_y), np.floor(src_x)
        fy, fx = src_y - fy0, src_x - fx0
        y0, x0 = fy0.astype(np.intp), fx0.astype(np.intp)
        wy = ((1 - fy) * ((y0 >= 0) & (y0 < H)), fy * ((y0 >= -1) & (y0 < H - 1)))
        wx = ((1 - fx) * ((x0 >= 0) & (x0 < W)), fx * ((x0 >= -1) & (x0 < W - 1)))
        corners = [(y0 + dy, x0 + dx, wy[dy] * wx[dx]) for dy in (0, 1) for dx in (0, 1)]
    K = len(corners)
    # Flat indices into X.reshape(-1) of every corner of every output pixel of
    # every image (clamped: a clamped pixel has weight 0), then one np.take
    # gathers all channels at once: (N, C, K * P) values.
    index = np.empty((N, K, P), dtype=np.intp)
    image_start = (np.arange(N) * (C * P))[:, None]
    for k, (yk, xk, _) in enumerate(corners):
        flat = np.clip(yk, 0, H - 1) * W + np.clip(xk, 0, W - 1)
        np.add(flat.reshape(N, P), image_start, out=index[:, k])
    channel_start = (np.arange(C) * P)[None, :, None]
    gathered = np.take(X.reshape(-1), index.reshape(N, 1, K * P) + channel_start).reshape(N, C, K, P)
    out = gathered[:, :, 0] * corners[0][2].reshape(N, 1, P).astype(X.dtype)
    for k in range(1, K):
        out += gathered[:, :, k] * corners[k][2].reshape(N, 1, P).astype(X.dtype)
    return out.reshape(N, C, H, W)


class RandomCrop(Transform):
    """Zero-pad each side by ``padding`` pixels, then cut a random ``size`` window from each image.

    ``size`` is an int (square) or ``(height, width)`` and must fit in the
    padded image. The usual CIFAR-10 recipe is ``RandomCrop(32, padding=4)``:
    the image keeps its size and shifts by up to 4 pixels.
    """

    def __init__(self, size: int | tuple[int, int], padding: int | tuple[int, int] = 4):
        self.size = _size(size, "size", 1)
        self.padding = _size(padding, "padding", 0)

    def _args(self):
        return {"size": self.size, "padding": self.padding}

    def apply(self, X, rng):
        N, C, H, W = X.shape
        (h, w), (ph, pw) = self.size, self.padding
        if h > H + 2 * ph or w > W + 2 * pw:
            raise ValueError(f"RandomCrop: size {self.size} does not fit in the padded {H + 2 * ph}x{W + 2 * pw} image")
        padded = np.pad(X, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else X
        top = rng.integers(0, H + 2 * ph - h + 1, size=N)
        left = rng.integers(0, W + 2 * pw - w + 1, size=N)
        # A (N, C, H', W', h, w) view of every h x w window (no copy); picking
        # window (top[n], left[n]) of image n is one fancy index -> (N, C, h, w).
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
        return windows[np.arange(N), :, top, left]


class RandomBrightness(Transform):
    """Add one random offset, uniform in [-delta, delta], to every pixel of each image.

    Brightness changes are the thesis' example of a label-preserving
    transform (§2.4.4). With ``clip=True`` the result is clipped to [0, 1]:
    use it on images scaled to [0, 1], before :class:`Normalize`.
    """

    def __init__(self, delta: float, clip: bool = False):
        if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not (0 <= delta < math.inf):
            raise ValueError(f"delta must be a finite number >= 0, got {delta!r}")
        self.delta = float(delta)
        self.clip = bool(clip)

    def _args(self):
        return {"delta": self.delta, "clip": self.clip}

    def apply(self, X, rng):
        shift = rng.uniform(-self.delta, self.delta, size=(X.shape[0], 1, 1, 1)).astype(X.dtype)
        out = X + shift
        if self.clip:
            np.clip(out, 0.0, 1.0, out=out)
        return out


class Normalize(Transform):
    """Per-channel ``(X[:, c] - mean[c]) / std[c]`` (the thesis' ``transforms.Normalize``); no randomness.

    Use :data:`MNIST_MEAN` / :data:`MNIST_STD` or :data:`CIFAR10_MEAN` /
    :data:`CIFAR10_STD` (thesis §2 digest) for images scaled to [0, 1].
    Same computation as :func:`natverk.utils.normalization.normalize_channels`.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]):
        self.mean = tuple(float(m) for m in np.atleast_1d(np.asarray(mean, dtype=np.float64)))
        self.std = tuple(float(s) for s in np.atleast_1d(np.asarray(std, dtype=np.float64)))
        normalize_channels(np.zeros((1, max(len(self.mean), len(self.std)), 1, 1)), mean, std)  # validate now

    def _args(self):
        return {"mean": self.mean, "std": self.std}

    def apply(self, X, rng):
        mean = self.mean[0] if len(self.mean) == 1 else self.mean
        std = self.std[0] if len(self.std) == 1 else self.std
        return normalize_channels(X, mean, std)
