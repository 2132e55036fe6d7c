"""Few-shot digit episodes: held-out classes, distinct classes and images, labels, determinism."""

import pytest
import torch

from deepatlas.data.fewshot import TEST_CLASSES, TRAIN_CLASSES, dihedral, digit_pool, fewshot_digits, sample_episodes


def test_train_and_test_classes_are_disjoint():
    assert not set(TRAIN_CLASSES) & set(TEST_CLASSES)
    pool = digit_pool(TEST_CLASSES)
    assert pool.classes == TEST_CLASSES and all(len(x) > 150 for x in pool.images)


def test_episodes_shapes_and_distinct_classes():
    ep = fewshot_digits(n_episodes=20, n_way=4, k_shot=3, n_query=2, seed=0)
    assert ep.support.shape == (20, 4, 3, 1, 8, 8) and ep.query.shape == (20, 4, 2, 1, 8, 8)
    assert all(len(set(row.tolist())) == 4 for row in ep.classes)
    assert set(ep.classes.flatten().tolist()) <= set(TEST_CLASSES)
    pool = digit_pool(TEST_CLASSES)
    for n in range(4):  # support images of label n belong to class classes[n]
        images = pool.images[TEST_CLASSES.index(ep.classes[0, n].item())].flatten(1)
        assert (ep.support[0, n, 0].flatten() == images).all(1).any()


def test_deterministic():
    a, b = fewshot_digits(5, seed=3), fewshot_digits(5, seed=3)
    assert torch.equal(a.support, b.support) and torch.equal(a.classes, b.classes)
    assert not torch.equal(a.support, fewshot_digits(5, seed=4).support)


def test_dihedral_makes_eight_classes_each():
    pool = dihedral(digit_pool((0, 1)))
    assert len(pool.classes) == 16 and len(set(pool.classes)) == 16
    torch.testing.assert_close(pool.images[2], torch.rot90(pool.images[0], 1, dims=(-2, -1)))


def test_bad_arguments():
    pool = digit_pool((0, 1))
    with pytest.raises(ValueError, match="n_way"):
        sample_episodes(pool, 1, 3, 1, 1)
    with pytest.raises(ValueError, match="k_shot"):
        sample_episodes(pool, 1, 2, 1000, 1)
    with pytest.raises(ValueError, match="classes"):
        digit_pool((0, 0))
