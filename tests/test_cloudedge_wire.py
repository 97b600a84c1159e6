"""Messages between edges and the cloud: exact round trips, and lengths = what is counted."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudedge.system import wire
from cloudedge.policies.segmentation import Segmenter, SegmentedObject
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


@st.composite
def objects(draw):
    C = draw(st.sampled_from([1, 3]))
    H, W = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    n = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    out = []
    for _ in range(n):
        h, w = int(rng.integers(1, H + 1)), int(rng.integers(1, W + 1))
        top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        out.append(SegmentedObject(rng.integers(0, 256, (C, h, w), dtype=np.uint8), top, left, (H, W),
                                   rng.integers(0, 256, C, dtype=np.uint8)))
    ids = rng.choice(2**32, size=n, replace=False)
    return ids, out


@settings(deadline=None, max_examples=60)
@given(objects())
def test_objects_round_trip_and_length(case):
    ids, objs = case
    data = wire.encode_objects(ids, objs)
    got_ids, got = wire.decode_objects(data)
    assert np.array_equal(got_ids, ids)
    for a, b in zip(objs, got):
        assert np.array_equal(a.pixels, b.pixels) and (a.top, a.left, a.frame) == (b.top, b.left, b.frame)
        assert np.array_equal(a.background, b.background)
    header = len(wire.OBJ_MAGIC) + wire._FRAME.size
    assert len(data) == header + sum(wire.object_wire_bytes(o) for o in objs)


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 6), C=st.sampled_from([1, 3]), H=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_images_round_trip_and_length(n, C, H, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, C, H, H + 1), dtype=np.uint8)
    ids = np.arange(n) * 7
    data = wire.encode_images(ids, images)
    got_ids, got = wire.decode_images(data)
    assert np.array_equal(got_ids, ids) and np.array_equal(got, images)
    assert len(data) == wire.images_message_bytes(n, (C, H, H + 1))


@pytest.mark.parametrize("with_probs", [False, True])
def test_labels_round_trip(with_probs):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), 7).astype(np.float32)
    reply = wire.LabelReply(np.arange(7) + 100, probs.argmax(1), probs.max(1), probs if with_probs else None)
    data = wire.encode_labels(reply, 10)
    got = wire.decode_labels(data)
    assert np.array_equal(got.ids, reply.ids) and np.array_equal(got.labels, reply.labels)
    assert np.array_equal(got.confidence, reply.confidence)
    assert (got.probs is None) == (not with_probs)
    if with_probs:
        assert np.array_equal(got.probs, probs)
    assert len(data) == 7 + 7 + 7 * 9 + (7 * 40 if with_probs else 0)


def test_damaged_messages_are_rejected():
    ids, objs = np.arange(2), Segmenter().segment(np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32))
    data = wire.encode_objects(ids, objs)
    with pytest.raises(ValueError, match="end at byte"):
        wire.decode_objects(data + b"x")
    with pytest.raises(ValueError, match="expected an objects message"):
        wire.decode_objects(b"nope" + data)
    with pytest.raises(ValueError, match="need"):
        wire.decode_images(wire.encode_images(ids, np.zeros((2, 1, 4, 4), np.uint8))[:-1])
    with pytest.raises(ValueError, match="unknown message"):
        wire.message_kind(b"hello world")
    with pytest.raises(ValueError, match="ids"):
        wire.encode_images([-1, 2], np.zeros((2, 1, 2, 2), np.uint8))
