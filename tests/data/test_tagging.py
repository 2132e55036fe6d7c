"""Generated tagging tasks: the tags follow their definition, runs are deterministic, splits differ."""

import pytest
import torch

from deepatlas.data.tagging import IGNORE, context_pair_tags, delayed_tags, tagging_split


def test_context_pair_tags_by_definition():
    b = context_pair_tags(50, length=9, vocab=3, past=2, future=1, seed=3)
    x, y = b.x, b.y
    assert x.shape == y.shape == (50, 9) and x.min() >= 0 and x.max() < 3
    assert (y[:, :2] == IGNORE).all() and (y[:, -1:] == IGNORE).all()
    for n in range(50):
        for t in range(2, 8):
            assert y[n, t] == 3 * x[n, t - 2] + x[n, t + 1]
    assert b.meta["n_tags"] == 9 and b.meta["one_way_ceiling"] == 1 / 3


def test_delayed_tags_by_definition():
    b = delayed_tags(20, length=10, vocab=3, delay=4, seed=1)
    assert (b.y[:, :4] == IGNORE).all()
    for row, tags in zip(b.x.tolist(), b.y.tolist()):
        assert tags[4:] == row[:6]


def test_deterministic_and_split_seeds_differ():
    a, b = context_pair_tags(10, seed=5), context_pair_tags(10, seed=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    s = tagging_split("delayed", 30, 20, seed=0, length=16, delay=3)
    assert s.x_train.shape == (30, 16) and s.x_test.shape == (20, 16)
    assert not torch.equal(s.x_train[:20], s.x_test)
    assert s.meta["train_seed"] != s.meta["test_seed"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="past \\+ future < length"):
        context_pair_tags(length=4, past=2, future=2)
    with pytest.raises(ValueError, match="vocab >= 2"):
        context_pair_tags(vocab=1)
    with pytest.raises(ValueError, match="1 <= delay < length"):
        delayed_tags(length=5, delay=5)
    with pytest.raises(ValueError, match="Unknown tagging task"):
        tagging_split("pos", 10, 10)
