"""Typed-span tagging with long-range label constraints, for structured output layers (CRFs).

Each sequence holds a few entity spans (2 to `max_span` tokens) separated by outside words. A span
is made of neutral entity words plus one cue word, at a random position inside it, that names the
span's type; with probability `p_hidden` the cue is left out, and then the type is a guess, but one
guess for the whole span. The BIO tags must agree along the whole span: B-t, I-t, ..., I-t with the type t of a
cue that may sit up to max_span - 1 tokens away. So a label at one position is tied to labels far
off, and the tag sequence obeys transition rules (no I-t after O, no I-t after B-t' or I-t', t != t').

    tokens: 0 .. n_outside-1 outside words; then n_entity neutral entity words; then one cue per type
    tags:   0 = O, 1 + 2t = B-t, 2 + 2t = I-t
"""

from __future__ import annotations

import torch

from deepatlas.data import Split, split_seeds


def span_tags(n: int = 1000, length: int = 24, n_types: int = 3, max_span: int = 8, n_outside: int = 6,
              n_entity: int = 6, p_hidden: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """x (n, length) tokens, y (n, length) BIO tags, and meta (vocabulary and tag sizes)."""
    if n_types < 2 or max_span < 2 or length < max_span + 2:
        raise ValueError(f"span_tags needs n_types >= 2, max_span >= 2 and length >= max_span + 2, "
                         f"got {n_types}, {max_span}, {length}")
    if not 0.0 <= p_hidden <= 1.0:
        raise ValueError(f"p_hidden must lie in [0, 1], got {p_hidden}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, n_outside, (n, length), generator=g)
    y = torch.zeros(n, length, dtype=torch.long)
    for i in range(n):
        t = int(torch.randint(0, 3, (), generator=g))  # a first gap of 0-2 outside words
        while True:
            span = int(torch.randint(2, max_span + 1, (), generator=g))
            if t + span > length:
                break
            kind = int(torch.randint(0, n_types, (), generator=g))
            x[i, t:t + span] = n_outside + torch.randint(0, n_entity, (span,), generator=g)
            cue = t + int(torch.randint(0, span, (), generator=g))
            if torch.rand((), generator=g) >= p_hidden:
                x[i, cue] = n_outside + n_entity + kind
            y[i, t] = 1 + 2 * kind
            y[i, t + 1:t + span] = 2 + 2 * kind
            t += span + 1 + int(torch.randint(0, 3, (), generator=g))  # at least one outside word between
    meta = {"task": "span_tags", "n": n, "seed": seed, "length": length, "n_types": n_types, "max_span": max_span, "p_hidden": p_hidden,
            "vocab_size": n_outside + n_entity + n_types, "n_tags": 1 + 2 * n_types}
    return x, y, meta


def allowed_transitions(n_types: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BIO rules: allowed[i, j] (n_tags, n_tags) says tag j may follow tag i; start[j] that j may open."""
    K = 1 + 2 * n_types
    allowed = torch.ones(K, K, dtype=torch.bool)
    for t in range(n_types):
        inside = 2 + 2 * t
        allowed[:, inside] = False  # I-t only after B-t or I-t
        allowed[1 + 2 * t, inside] = allowed[inside, inside] = True
    start = torch.ones(K, dtype=torch.bool)
    start[2::2] = False  # never open with I-t
    return allowed, start


def invalid_sequences(tags: torch.Tensor, n_types: int) -> torch.Tensor:
    """(n,) bool: the tag sequences (n, length) that break a BIO rule somewhere."""
    allowed, start = allowed_transitions(n_types)
    bad = ~allowed[tags[:, :-1], tags[:, 1:]]  # (n, length - 1)
    return bad.any(1) | ~start[tags[:, 0]]


def span_split(n_train: int, n_test: int, seed: int = 0, **kw) -> Split:
    """Train and test drawn from different seeds (split_seeds)."""
    train_seed, test_seed = split_seeds(seed)
    x, y, meta = span_tags(n_train, seed=train_seed, **kw)
    x_test, y_test, _ = span_tags(n_test, seed=test_seed, **kw)
    meta = dict(meta, source="span_tags", seed=seed, n_train=n_train, n_test=n_test, train_seed=train_seed,
                test_seed=test_seed)
    del meta["n"]
    return Split(x, y, x_test, y_test, meta)


__all__ = ["span_tags", "span_split", "allowed_transitions", "invalid_sequences"]
