"""Edge pre-processing: the object's box holds all foreground, place-restore is exact on clean
backgrounds, and segmenting real MNIST digits saves bytes."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudedge.system import wire
from cloudedge.policies.segmentation import Segmenter, resize_bilinear, restore, segment, to_uint8
from test_cloudedge_support import mnist
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


@st.composite
def sparse_images(draw):
    """(n, C, H, W) float32 uint8/255 images on a zero background with a few random blobs."""
    n, C = draw(st.integers(1, 4)), draw(st.sampled_from([1, 3]))
    H, W = draw(st.integers(3, 16)), draw(st.integers(3, 16))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    u8 = np.zeros((n, C, H, W), np.uint8)
    for i in range(n):
        k = int(rng.integers(0, 6))
        ys, xs = rng.integers(1, H - 1, k), rng.integers(1, W - 1, k)
        u8[i, :, ys, xs] = rng.integers(1, 256, (k, C))
    return u8.astype(np.float32) / 255.0


@settings(deadline=None, max_examples=60)
@given(sparse_images())
def test_place_restore_is_exact_when_threshold_zero(x):
    seg = Segmenter(threshold=0.0, margin=1, mode="place")
    assert np.array_equal(seg.roundtrip(x), x)


@settings(deadline=None, max_examples=60)
@given(sparse_images(), st.floats(0.0, 0.5), st.integers(0, 2))
def test_box_contains_all_foreground_and_is_no_larger_than_the_frame(x, threshold, margin):
    u8 = to_uint8(x)
    for img, obj in zip(u8, segment(x, threshold, margin)):
        C, h, w = obj.pixels.shape
        assert obj.top + h <= img.shape[1] and obj.left + w <= img.shape[2]
        fg = np.abs(img.astype(int) - obj.background[:, None, None].astype(int)).max(0) > threshold * 255
        ys, xs = np.nonzero(fg)
        assert np.all((ys >= obj.top) & (ys < obj.top + h) & (xs >= obj.left) & (xs < obj.left + w))
        assert wire.object_wire_bytes(obj) <= 12 + C + C * img.shape[1] * img.shape[2]


def test_blank_image_becomes_a_full_frame_object():
    obj = segment(np.zeros((1, 1, 5, 7), np.float32))[0]
    assert obj.pixels.shape == (1, 5, 7) and (obj.top, obj.left) == (0, 0)


def test_mnist_objects_are_smaller_and_keep_the_digit():
    x, _ = mnist(500)
    seg = Segmenter()
    objs = seg.segment(x)
    saved = 1 - sum(wire.object_wire_bytes(o) for o in objs) / (len(objs) * (4 + 784))
    assert saved > 0.3                                   # digits fill a ~20x20 box of 28x28
    back = seg.restore(objs, (1, 28, 28))
    assert np.abs(back - x).max() <= 0.1 + 1e-6          # only faint pixels far from the stroke go


def test_fit_mode_resizes_into_the_frame():
    x, _ = mnist(20)
    out = Segmenter(mode="fit").roundtrip(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    rows = np.nonzero(out[0, 0].max(axis=1) > 0.1)[0]
    assert rows[-1] - rows[0] + 1 <= 21                  # the longest side fills 20/28 of the frame


def test_resize_bilinear_identity_and_constant():
    img = np.random.default_rng(0).random((2, 5, 6)).astype(np.float32)
    assert np.allclose(resize_bilinear(img, 5, 6), img)
    assert np.allclose(resize_bilinear(np.full((1, 3, 3), 0.25, np.float32), 7, 4), 0.25)


def test_bad_arguments_are_errors():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="threshold"):
        segment(x, threshold=1.5)
    with pytest.raises(ValueError, match="mode"):
        Segmenter(mode="zoom")
    with pytest.raises(ValueError, match="channels"):
        restore(segment(x), (3, 4, 4))
    with pytest.raises(ValueError, match="frame"):
        restore(segment(x), (1, 5, 5), mode="place")
    with pytest.raises(ValueError, match="float images"):
        to_uint8(np.zeros((4, 4), np.uint8))
