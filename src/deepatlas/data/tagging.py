"""Generated sequence-tagging tasks: one label per input token, each a pure function of (n, ..., seed).

    context_pair_tags  y_t = vocab * x_{t-past} + x_{t+future}: the pair of the token `past` steps back
                      and the token `future` steps ahead. It needs the past AND the future: a tagger
                      that reads one way knows one half of the pair, so it scores 1/vocab at best.
    delayed_tags       y_t = x_{t-delay}: every step must hold the last `delay` tokens at once, so the
                      task needs memory that grows with the delay (and delays compose: two
                      delays of d/2 make one of d).

Positions whose tag is undefined (no x_{t-past} or no x_{t+future}) hold IGNORE = -100, the
index F.cross_entropy skips by default.
"""

from __future__ import annotations

import torch

from deepatlas.data import Split, split_seeds
from deepatlas.data.sequences import SeqBatch

IGNORE = -100


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def context_pair_tags(n: int = 1000, length: int = 16, vocab: int = 4, past: int = 2, future: int = 2,
                      seed: int = 0) -> SeqBatch:
    """x (n, length) tokens in 0..vocab-1; y (n, length) = vocab * x_{t-past} + x_{t+future} (vocab^2 tags),
    IGNORE where either token is outside the sequence. The two tokens are independent and uniform, so a
    tagger that sees only x_1..x_t (or only x_t..x_T) is right 1/vocab of the time at best."""
    if past < 0 or future < 0 or past + future >= length:
        raise ValueError(f"context_pair_tags needs past, future >= 0 and past + future < length, "
                         f"got past={past}, future={future}, length={length}")
    if vocab < 2:
        raise ValueError(f"context_pair_tags needs vocab >= 2, got {vocab}")
    x = torch.randint(0, vocab, (n, length), generator=_generator(seed))
    y = torch.full_like(x, IGNORE)
    t = torch.arange(past, length - future)
    y[:, t] = vocab * x[:, t - past] + x[:, t + future]
    meta = {"task": "context_pair_tags", "n": n, "seed": seed, "length": length, "vocab": vocab, "past": past,
            "future": future, "n_tags": vocab**2, "one_way_ceiling": 1 / vocab, "chance_acc": 1 / vocab**2,
            "ignore_index": IGNORE}
    return SeqBatch(x, y, meta)


def delayed_tags(n: int = 1000, length: int = 32, vocab: int = 4, delay: int = 6, seed: int = 0) -> SeqBatch:
    """x (n, length) tokens in 0..vocab-1; y (n, length) = x shifted right by `delay`, IGNORE for t < delay."""
    if not 1 <= delay < length or vocab < 2:
        raise ValueError(f"delayed_tags needs 1 <= delay < length and vocab >= 2, "
                         f"got delay={delay}, length={length}, vocab={vocab}")
    x = torch.randint(0, vocab, (n, length), generator=_generator(seed))
    y = torch.full_like(x, IGNORE)
    # y_t = x_{t - d}
    y[:, delay:] = x[:, :-delay]
    meta = {"task": "delayed_tags", "n": n, "seed": seed, "length": length, "vocab": vocab, "delay": delay,
            "n_tags": vocab, "chance_acc": 1 / vocab, "ignore_index": IGNORE}
    return SeqBatch(x, y, meta)


TASKS = {"context_pair": context_pair_tags, "delayed": delayed_tags}


def tagging_split(task: str, n_train: int, n_test: int, seed: int = 0, **kw) -> Split:
    """Train and test drawn from different seeds (split_seeds), x (N, T) tokens and y (N, T) tags."""
    if task not in TASKS:
        raise ValueError(f"Unknown tagging task {task!r}; choose one of {', '.join(TASKS)}.")
    train_seed, test_seed = split_seeds(seed)
    train, test = TASKS[task](n_train, seed=train_seed, **kw), TASKS[task](n_test, seed=test_seed, **kw)
    meta = dict(train.meta, source=task, seed=seed, n_train=n_train, n_test=n_test, train_seed=train_seed,
                test_seed=test_seed)
    del meta["n"]
    return Split(train.x, train.y, test.x, test.y, meta)


__all__ = ["context_pair_tags", "delayed_tags", "tagging_split", "IGNORE", "TASKS"]
