"""tinycnn.sampling: the one stratified split, and the samplers built on it."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycnn.sampling import stratified_sample, stratified_split
from tinycnn.train import holdout_split

Y = np.repeat(np.arange(4), [3, 5, 8, 4])       # 20 labels, classes of 3, 5, 8 and 4


@settings(max_examples=100, deadline=None)
@given(counts=st.lists(st.integers(1, 12), min_size=1, max_size=5), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_split_takes_each_class_first_members_in_order(counts, seed, data):
    y = np.repeat(np.arange(len(counts)), counts)
    order = np.random.default_rng(seed).permutation(len(y))
    take = [data.draw(st.integers(0, c + 2)) for c in counts]
    a, b = stratified_split(y, order, take)
    assert np.array_equal(np.sort(np.concatenate([a, b])), np.arange(len(y)))
    for c, k in enumerate(take):
        members = order[y[order] == c]
        assert np.array_equal(a[y[a] == c], members[:k])         # the class's first k, in order
        assert np.array_equal(b[y[b] == c], members[k:])
    rank = np.argsort(order)
    assert np.all(np.diff(rank[a]) > 0) and np.all(np.diff(rank[b]) > 0)   # both keep the order


def test_split_wants_one_count_per_class():
    with pytest.raises(ValueError, match=r"one count per class \(4\), got 3"):
        stratified_split(Y, np.arange(len(Y)), [1, 1, 1])


def test_sample_is_balanced_nested_and_covers_the_pool():
    y = np.repeat(np.arange(10), 50)
    small, rest = stratified_sample(y, 100, seed=3)
    big, _ = stratified_sample(y, 300, seed=3)
    assert np.bincount(y[small], minlength=10).tolist() == [10] * 10
    assert np.isin(small, big).all() and len(np.unique(big)) == 300
    assert np.array_equal(np.sort(np.concatenate([small, rest])), np.arange(len(y)))
    with pytest.raises(ValueError, match="expected 0 <= n <= 500"):
        stratified_sample(y, 501, seed=3)


def test_samplers_give_the_indices_they_gave_before_they_shared_the_split():
    # pinned from the code before stratified_split existed: stored runs were made with these
    chosen, rest = stratified_sample(Y, 6, [0, 11])
    assert chosen.tolist() == [0, 2, 4, 5, 15, 19]
    assert rest.tolist() == [8, 9, 12, 16, 13, 3, 7, 6, 14, 11, 10, 18, 1, 17]
    chosen, rest = stratified_sample(Y, 14, [2, 11])          # class 0 runs short: topped up in order
    assert chosen.tolist() == [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 17, 18]
    assert rest.tolist() == [12, 13, 11, 19, 8, 7]
    train, val = holdout_split(Y, 0.25, 0)
    assert val.tolist() == [2, 5, 10, 14, 18]
    assert train.tolist() == sorted(set(range(20)) - {2, 5, 10, 14, 18})
