"""Sequence tasks: targets are right, vocabularies respected, splits independent."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.data import sequences as seq

SYMBOL_TASKS = [seq.copy_task, seq.reverse_task, seq.sort_task]


def _number(tokens) -> int:
    return int("".join(seq.ADD_CHARS[t - seq.FIRST] for t in tokens.tolist()))


@pytest.mark.parametrize("task", SYMBOL_TASKS, ids=lambda f: f.__name__)
def test_symbol_tasks_shapes_and_vocabulary(task):
    batch = task(64, length=12, vocab=5, seed=0)
    assert batch.x.shape == batch.y.shape == (64, 12)
    assert batch.x.dtype == batch.y.dtype == torch.int64
    assert batch.x.min() >= seq.FIRST and batch.x.max() < batch.meta["vocab_size"] == 7


def test_copy_reverse_sort_targets():
    x = seq.copy_task(32, seed=1).x
    assert torch.equal(seq.copy_task(32, seed=1).y, x)
    assert torch.equal(seq.reverse_task(32, seed=1).y, x.flip(1))
    assert torch.equal(seq.reverse_task(32, seed=1).y[:, 0], x[:, -1])
    y = seq.sort_task(32, seed=1).y
    assert (y[:, 1:] >= y[:, :-1]).all()
    assert torch.equal(y.sort(dim=1).values, x.sort(dim=1).values), "same multiset of symbols"


@settings(max_examples=20, deadline=None)
@given(digits=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_add_adds(digits, seed):
    batch = seq.add_task(16, digits=digits, seed=seed)
    assert batch.x.shape == (16, 2 * digits + 2) and batch.y.shape == (16, digits + 1)
    for x, y in zip(batch.x, batch.y):
        text = "".join(seq.ADD_CHARS[t - seq.FIRST] for t in x.tolist())
        a, b = text.rstrip("=").split("+")
        assert int(a) + int(b) == _number(y)


def test_associative_recall_returns_paired_value():
    batch = seq.associative_recall(200, n_pairs=5, vocab=10, seed=0)
    assert batch.x.shape == (200, 12) and batch.y.shape == (200,)
    assert (batch.x[:, -2] == seq.SEP).all()
    for x, y in zip(batch.x.tolist(), batch.y.tolist()):
        keys, values = x[:-2:2], x[1:-2:2]
        assert len(set(keys)) == 5 and max(keys) < seq.FIRST + 10 <= min(values)
        assert values[keys.index(x[-1])] == y
    with pytest.raises(ValueError):
        seq.associative_recall(4, n_pairs=5, vocab=4)


def test_adding_problem():
    batch = seq.adding_problem(500, length=30, seed=0)
    values, markers = batch.x[..., 0], batch.x[..., 1]
    assert batch.x.shape == (500, 30, 2) and batch.x.dtype == batch.y.dtype == torch.float32
    assert (markers.sum(dim=1) == 2).all()
    assert (markers[:, :15].sum(dim=1) == 1).all(), "one marker in each half"
    assert 0 <= values.min() and values.max() <= 1
    assert torch.allclose((values * markers).sum(dim=1), batch.y)
    trivial_mse = ((batch.y - 1) ** 2).mean()
    assert abs(trivial_mse - 1 / 6) < 0.03


@pytest.mark.parametrize("task", list(seq.TASKS))
def test_deterministic_by_seed(task):
    a, b, c = (seq.TASKS[task](20, seed=s) for s in (4, 4, 5))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


@pytest.mark.parametrize("task, kw", [("copy", {}), ("add", {"digits": 2}),
                                      ("associative_recall", {}), ("adding_problem", {"length": 20})])
def test_seq_split_is_disjoint_and_fixed(task, kw):
    split = seq.seq_split(task, 1000, 200, seed=0, **kw)
    assert len(split.x_train) == 1000 and len(split.x_test) == len(split.y_test) == 200
    train = {tuple(row) for row in split.x_train.flatten(1).tolist()}
    assert not any(tuple(row) in train for row in split.x_test.flatten(1).tolist())
    assert split.meta["train_seed"] != split.meta["test_seed"]
    assert torch.equal(seq.seq_split(task, 1000, 200, seed=0, **kw).x_test, split.x_test)


def test_seq_split_refuses_a_task_too_small_to_split():
    with pytest.raises(ValueError, match="too few distinct inputs"):
        seq.seq_split("copy", 500, 100, length=2, vocab=3)
