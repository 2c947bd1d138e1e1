"""natverk.augmentation: shapes and dtypes, determinism by seed, exact identities
(flip twice, rotation by 0, crop without padding), rotation by multiples of 90
degrees against np.rot90, bilinear rotation against a per-pixel loop, and the
per-channel normalisation constants of the thesis (§2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from natverk import augmentation as A
from natverk.utils.normalization import CIFAR10_MEAN, MNIST_STD, normalize_channels


def batch(shape=(6, 3, 9, 9), dtype=np.float64, seed=0):
    return np.random.default_rng(seed).random(shape).astype(dtype)


ALL = [
    A.RandomHorizontalFlip(),
    A.RandomRotation(15),
    A.RandomRotation(30, interpolation="bilinear"),
    A.RandomCrop(9, padding=2),
    A.RandomBrightness(0.2, clip=True),
    A.Normalize(A.CIFAR10_MEAN, A.CIFAR10_STD),
    A.Compose([A.RandomHorizontalFlip(), A.RandomRotation(15), A.RandomCrop(9, 1), A.RandomBrightness(0.1)]),
]


# ------------------------------------------------------------------ shared contract


@pytest.mark.parametrize("t", ALL, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_new_array_and_input_untouched(t, dtype):
    X = batch(dtype=dtype)
    before = X.copy()
    out = t(X, np.random.default_rng(1))
    assert out.shape == X.shape and out.dtype == dtype
    assert not np.shares_memory(out, X)
    np.testing.assert_array_equal(X, before)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("t", ALL, ids=repr)
def test_same_seed_same_output_different_seed_different_output(t):
    X = batch()
    a = t(X, np.random.default_rng(7))
    np.testing.assert_array_equal(a, t(X, np.random.default_rng(7)))
    np.testing.assert_array_equal(a, t(X, 7))  # an int seed is turned into a generator
    if not isinstance(t, A.Normalize):  # the only deterministic transform
        assert not np.array_equal(a, t(X, np.random.default_rng(8)))


def test_bad_inputs_raise_clear_errors():
    flip = A.RandomHorizontalFlip()
    with pytest.raises(TypeError, match="floating-point image batch, got dtype uint8"):
        flip(np.zeros((2, 1, 4, 4), np.uint8), 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) batch, got shape \(1, 4, 4\)"):
        flip(np.zeros((1, 4, 4)), 0)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        flip(np.zeros((1, 1, 4, 4)), np.random.RandomState(0))
    with pytest.raises(ValueError, match="p must be a probability"):
        A.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="degrees must be >= 0"):
        A.RandomRotation(-5)
    with pytest.raises(ValueError, match="range is empty"):
        A.RandomRotation((10, -10))
    with pytest.raises(ValueError, match="interpolation must be"):
        A.RandomRotation(10, interpolation="cubic")
    with pytest.raises(ValueError, match="does not fit in the padded 8x8 image"):
        A.RandomCrop(9, padding=2)(np.zeros((1, 1, 4, 4)), 0)
    with pytest.raises(ValueError, match="padding must be an integer >= 0"):
        A.RandomCrop(4, padding=-1)
    with pytest.raises(ValueError, match="delta must be a finite number >= 0"):
        A.RandomBrightness(-0.1)
    with pytest.raises(ValueError, match="std must be > 0"):
        A.Normalize(0.5, 0.0)
    with pytest.raises(ValueError, match=r"one value per channel \(3\)"):
        A.Normalize((0.1, 0.2), 0.3)(batch(), None)
    with pytest.raises(TypeError, match="not callable"):
        A.Compose([A.RandomHorizontalFlip(), 3])


# ------------------------------------------------------------------ flip


def test_flip_twice_is_identity_and_flips_whole_images():
    X = batch()
    always = A.RandomHorizontalFlip(p=1.0)
    once = always(X, 0)
    np.testing.assert_array_equal(once, X[..., ::-1])
    np.testing.assert_array_equal(always(once, 1), X)
    np.testing.assert_array_equal(A.RandomHorizontalFlip(p=0.0)(X, 0), X)
    # p = 0.5: every image is either untouched or mirrored, and both happen
    X = batch((64, 2, 3, 5))
    out = A.RandomHorizontalFlip()(X, 3)
    same = np.all(out == X, axis=(1, 2, 3))
    mirrored = np.all(out == X[..., ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored) and same.any() and mirrored.any()


# ------------------------------------------------------------------ rotation


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rotation_by_multiples_of_90_degrees_matches_rot90(interpolation, size, dtype):
    X = batch((4, 3, size, size), dtype)
    np.testing.assert_array_equal(A.RandomRotation(0, interpolation)(X, 0), X)
    for degrees, k in [(90, 1), (180, 2), (-90, 3), (270, 3), (360, 0)]:
        out = A.RandomRotation((degrees, degrees), interpolation)(X, 0)
        np.testing.assert_array_equal(out, np.rot90(X, k, axes=(2, 3)), err_msg=f"{degrees} degrees")


def ref_rotate_one(img, angle, interpolation):
    """Per-pixel loop: output pixel (i, j) samples the input at its pre-image, zero outside."""
    C, H, W = img.shape
    cy, cx = (H - 1) / 2, (W - 1) / 2
    c, s = math.cos(angle), math.sin(angle)
    out = np.zeros_like(img)
    for i in range(H):
        for j in range(W):
            y, x = i - cy, j - cx
            sy, sx = c * y + s * x + cy, c * x - s * y + cx
            if interpolation == "nearest":
                taps = [(round(sy), round(sx), 1.0)]
            else:
                y0, x0 = math.floor(sy), math.floor(sx)
                fy, fx = sy - y0, sx - x0
                taps = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                        (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]
            for yy, xx, w in taps:
                if 0 <= yy < H and 0 <= xx < W:
                    out[:, i, j] += w * img[:, yy, xx]
    return out


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotation_matches_a_per_pixel_loop_for_every_image(interpolation):
    X = batch((5, 2, 9, 7))
    angles = np.deg2rad([0.0, 13.0, -29.0, 47.5, 100.0])
    out = A.rotate(X, angles, interpolation)
    for n in range(5):
        ref = ref_rotate_one(X[n], angles[n], interpolation)
        if interpolation == "nearest":
            # away from exact .5 ties (none here) nearest is exact
            np.testing.assert_array_equal(out[n], ref, err_msg=f"image {n}")
        else:
            np.testing.assert_allclose(out[n], ref, rtol=1e-12, atol=1e-12, err_msg=f"image {n}")


def test_random_rotation_draws_one_angle_per_image_in_range():
    X = np.ones((200, 1, 15, 15))
    out = A.RandomRotation(15)(X, 0)
    # the centre stays 1, corners rotate out of the image (zero fill) for most angles
    assert np.all(out[:, 0, 7, 7] == 1.0)
    corner_zero = out[:, 0, 0, 0] == 0.0
    assert corner_zero.any() and not corner_zero.all()  # small angles keep the corner
    # the angles are those of rng.uniform(-15, 15, N): same draws, same images
    angles = np.deg2rad(np.random.default_rng(0).uniform(-15, 15, 200))
    np.testing.assert_array_equal(out, A.rotate(X, angles))


# ------------------------------------------------------------------ crop


def test_crop_without_padding_at_full_size_is_identity():
    X = batch((5, 3, 6, 8))
    np.testing.assert_array_equal(A.RandomCrop((6, 8), padding=0)(X, 0), X)


def test_crop_picks_one_window_of_the_zero_padded_image_per_image():
    X = batch((40, 2, 5, 6)) + 1.0  # > 0, so zero padding is recognisable
    out = A.RandomCrop((4, 5), padding=(1, 2))(X, 11)
    assert out.shape == (40, 2, 4, 5)
    padded = np.pad(X, ((0, 0), (0, 0), (1, 1), (2, 2)))
    offsets = set()
    for n in range(40):
        hits = [(t, l) for t in range(padded.shape[2] - 3) for l in range(padded.shape[3] - 4)
                if np.array_equal(out[n], padded[n, :, t : t + 4, l : l + 5])]
        assert hits, f"image {n} is not a window of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 5  # the offsets really vary between images


# ------------------------------------------------------------------ brightness and normalisation


def test_brightness_adds_one_offset_per_image():
    X = batch((50, 3, 4, 4))
    out = A.RandomBrightness(0.3)(X, 2)
    shift = out - X
    per_image = shift[:, :1, :1, :1]
    np.testing.assert_allclose(shift, np.broadcast_to(per_image, shift.shape), atol=1e-15)
    assert np.all(np.abs(per_image) <= 0.3) and per_image.std() > 0.05
    clipped = A.RandomBrightness(0.5, clip=True)(X, 2)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0
    assert (clipped == 0.0).any() and (clipped == 1.0).any()
    np.testing.assert_array_equal(A.RandomBrightness(0.0)(X, 0), X)


def test_normalisation_constants_are_the_thesis_values():
    assert (A.MNIST_MEAN, A.MNIST_STD) == (0.1307, 0.3081)
    assert A.CIFAR10_MEAN == (0.4914, 0.4822, 0.4465)
    assert A.CIFAR10_STD == (0.247, 0.243, 0.261)
    # the same objects are where natverk.utils.normalization users look
    assert CIFAR10_MEAN is A.CIFAR10_MEAN and MNIST_STD == A.MNIST_STD


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_per_channel(dtype):
    X = batch((4, 3, 5, 5), dtype)
    out = A.Normalize(A.CIFAR10_MEAN, A.CIFAR10_STD)(X)
    mean = np.array(A.CIFAR10_MEAN).reshape(1, 3, 1, 1)
    std = np.array(A.CIFAR10_STD).reshape(1, 3, 1, 1)
    tol = 1e-6 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(out, (X.astype(np.float64) - mean) / std, rtol=tol, atol=tol)
    np.testing.assert_array_equal(out, normalize_channels(X, A.CIFAR10_MEAN, A.CIFAR10_STD))
    mnist = batch((3, 1, 4, 4), dtype)
    np.testing.assert_allclose(
        A.Normalize(A.MNIST_MEAN, A.MNIST_STD)(mnist), (mnist - 0.1307) / 0.3081, rtol=tol, atol=tol
    )


def test_normalize_channels_function():
    X = np.arange(2 * 3 * 4, dtype=np.int64).reshape(2, 3, 4)  # (N, C, L) works too; ints become float64
    out = normalize_channels(X, (1.0, 2.0, 3.0), 2.0)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, (X - np.array([1.0, 2.0, 3.0])[:, None]) / 2.0)
    with pytest.raises(ValueError, match="channels on axis 1"):
        normalize_channels(np.zeros(3), 0.0, 1.0)
    with pytest.raises(ValueError, match="must be finite"):
        normalize_channels(X, np.nan, 1.0)
    with pytest.raises(ValueError, match="std must be > 0"):
        normalize_channels(X, 0.0, (1.0, -1.0, 1.0))


# ------------------------------------------------------------------ compose


def test_compose_applies_in_order_from_one_generator():
    X = batch((8, 3, 10, 10))
    steps = [A.RandomHorizontalFlip(), A.RandomRotation(10), A.RandomCrop(8, 1), A.RandomBrightness(0.1),
             A.Normalize(0.5, 0.25)]
    rng = np.random.default_rng(5)
    expected = X
    for t in steps:
        expected = t(expected, rng)
    out = A.Compose(steps)(X, np.random.default_rng(5))
    assert out.shape == (8, 3, 8, 8)
    np.testing.assert_array_equal(out, expected)
    assert "RandomCrop(size=(8, 8), padding=(1, 1))" in repr(A.Compose(steps))
