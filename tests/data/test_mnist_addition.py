"""MNIST-addition: pairs of subset images, sums as labels, train and test images kept apart."""

import pytest
import torch

from deepatlas.data.mnist_addition import mnist_addition
from deepatlas.data.real import mnist_subset


def test_pairs_sums_and_split():
    d = mnist_addition(pairings=2, seed=0)
    assert d.x_train.shape == (4000, 2, 1, 28, 28) and d.x_test.shape == (500, 2, 1, 28, 28)
    assert torch.equal(d.y_train, d.meta["digits_train"].sum(1)) and d.y_train.max() <= 18
    images = mnist_subset(flatten=False)
    first = d.x_train[0, 0]
    match = (images.x_train == first).flatten(1).all(1)
    assert match.sum() >= 1 and images.y_train[match][0] == d.meta["digits_train"][0, 0]
    assert not (images.x_test == first).flatten(1).all(1).any()  # a training image never appears in test
    again = mnist_addition(pairings=2, seed=0)
    assert torch.equal(again.y_train, d.y_train)
    assert not torch.equal(mnist_addition(seed=1).y_train[:100], d.y_train[:100])
    with pytest.raises(ValueError, match="pairings >= 1"):
        mnist_addition(pairings=0)
