"""Few-shot episodes of handwritten digits, with classes held out.

An N-way K-shot episode draws N classes, K labelled support images of each and some query
images of each; the classes get labels 0..N-1 in a random order, so nothing but the support set
says which class is which. Meta-training episodes come from some digit classes and test episodes
from the others, never seen in training. The images are scikit-learn's 8x8 digits (train and test
splits pooled, 1,797 images, about 180 a class) or the 28x28 MNIST subset (500 a class).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepatlas.data.real import digits, mnist_subset

TRAIN_CLASSES = (0, 1, 2, 3, 4)
TEST_CLASSES = (5, 6, 7, 8, 9)


@dataclass
class ClassPool:
    """Images grouped by class: images[i] (n_i, 1, side, side) are all the images of digit classes[i]."""

    images: list[torch.Tensor]
    classes: tuple[int, ...]

    def __post_init__(self):
        if len(self.images) != len(self.classes):
            raise ValueError("a ClassPool needs one image tensor per class")


def digit_pool(classes: tuple[int, ...], source: str = "digits") -> ClassPool:
    """All images (train and test splits pooled) of the given digit classes from `source`."""
    loaders = {"digits": digits, "mnist_subset": mnist_subset}
    if source not in loaders:
        raise ValueError(f"unknown source {source!r}; choose from {', '.join(loaders)}")
    if not classes or len(set(classes)) != len(classes) or not set(classes) <= set(range(10)):
        raise ValueError(f"classes must be distinct digits 0..9, got {classes}")
    data = loaders[source](flatten=False)
    x = torch.cat([data.x_train, data.x_test])  # (N, 1, side, side)
    y = torch.cat([data.y_train, data.y_test])
    return ClassPool([x[y == c] for c in classes], tuple(classes))


def dihedral(pool: ClassPool) -> ClassPool:
    """Eight classes from each class: its images rotated by 0, 90, 180, 270 degrees, each also transposed
    (the Omniglot practice of making new classes by rotation). Class t * 10 + c is digit c under transform t."""
    images, classes = [], []
    for t in range(8):
        for c, x in zip(pool.classes, pool.images):
            turned = torch.rot90(x, t % 4, dims=(-2, -1))
            images.append(turned.transpose(-2, -1) if t >= 4 else turned)
            classes.append(10 * t + c)
    return ClassPool(images, tuple(classes))


@dataclass
class Episodes:
    """B episodes: support (B, N, K, 1, s, s), query (B, N, Q, 1, s, s); the label of support[:, n]
    and query[:, n] is n. `classes` (B, N) are the digits behind the labels."""

    support: torch.Tensor
    query: torch.Tensor
    classes: torch.Tensor


def sample_episodes(pool: ClassPool, n_episodes: int, n_way: int, k_shot: int, n_query: int,
                    generator: torch.Generator | int = 0) -> Episodes:
    """n_episodes N-way K-shot episodes from `pool`: distinct classes, distinct images within an episode."""
    if not 1 <= n_way <= len(pool.classes):
        raise ValueError(f"n_way must be in 1..{len(pool.classes)} (classes in the pool), got {n_way}")
    fewest = min(len(images) for images in pool.images)
    if k_shot < 1 or n_query < 1 or k_shot + n_query > fewest:
        raise ValueError(f"need k_shot, n_query >= 1 and k_shot + n_query <= {fewest}, got {k_shot} + {n_query}")
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(generator)
    supports, queries, chosen = [], [], []
    for _ in range(n_episodes):
        ways = torch.randperm(len(pool.classes), generator=g)[:n_way]  # a random label order
        picks = []
        for c in ways.tolist():
            images = pool.images[c]
            picks.append(images[torch.randperm(len(images), generator=g)[:k_shot + n_query]])
        picks = torch.stack(picks)  # (N, K + Q, 1, s, s)
        supports.append(picks[:, :k_shot])
        queries.append(picks[:, k_shot:])
        chosen.append(torch.tensor(pool.classes)[ways])
    return Episodes(torch.stack(supports), torch.stack(queries), torch.stack(chosen))


def fewshot_digits(n_episodes: int = 100, n_way: int = 5, k_shot: int = 1, n_query: int = 15,
                   seed: int = 0, held_out: bool = True) -> Episodes:
    """The data-catalogue loader: episodes of the held-out classes (or of the training classes)."""
    pool = digit_pool(TEST_CLASSES if held_out else TRAIN_CLASSES)
    return sample_episodes(pool, n_episodes, n_way, k_shot, n_query, seed)
