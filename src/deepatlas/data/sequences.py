"""Synthetic sequence tasks that probe memory, ordering and arithmetic.

Every task is a pure function of (n, ..., seed) drawing from its own torch.Generator.

Token vocabulary shared by the symbol tasks:
    0 = PAD  (reserved for batching sequences of different lengths)
    1 = SEP  (separator / beginning of the answer)
    2 .. vocab+1 = the `vocab` symbols; meta["vocab_size"] counts all tokens.
`add_task` spells characters instead: 2..11 are the digits 0-9, 12 is '+', 13 is '='.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from deepatlas.data import Split, split_seeds

PAD, SEP, FIRST = 0, 1, 2
ADD_CHARS = "0123456789+="


@dataclass
class SeqBatch:
    """Inputs and targets of one task; LongTensors except for the adding problem (floats)."""

    x: torch.Tensor  # (n, input length) tokens, or (n, length, 2) floats
    y: torch.Tensor  # (n, target length) tokens, (n,) token or (n,) float
    meta: dict = field(default_factory=dict)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _symbols(n: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    return torch.randint(FIRST, FIRST + vocab, (n, length), generator=_generator(seed))  # (n, length)


def _meta(task: str, n: int, seed: int, vocab_size: int, **params) -> dict:
    return {"task": task, "n": n, "seed": seed, "vocab_size": vocab_size, "pad": PAD, "sep": SEP, **params}


def copy_task(n: int = 1000, length: int = 10, vocab: int = 8, seed: int = 0) -> SeqBatch:
    """y = x: the simplest test that a model can carry information across a sequence."""
    x = _symbols(n, length, vocab, seed)
    return SeqBatch(x, x.clone(), _meta("copy", n, seed, vocab + FIRST, length=length, vocab=vocab))


def reverse_task(n: int = 1000, length: int = 10, vocab: int = 8, seed: int = 0) -> SeqBatch:
    """y = x read backwards: the first output needs the last input, so locality does not help."""
    x = _symbols(n, length, vocab, seed)
    return SeqBatch(x, x.flip(1), _meta("reverse", n, seed, vocab + FIRST, length=length, vocab=vocab))


def sort_task(n: int = 1000, length: int = 10, vocab: int = 8, seed: int = 0) -> SeqBatch:
    """y = x sorted ascending (repeats kept): every output depends on the whole input."""
    x = _symbols(n, length, vocab, seed)
    meta = _meta("sort", n, seed, vocab + FIRST, length=length, vocab=vocab)
    return SeqBatch(x, x.sort(dim=1).values, meta)


def _spell(numbers: torch.Tensor, width: int) -> torch.Tensor:
    """Numbers (n,) as zero-padded digit tokens (n, width), most significant first."""
    powers = 10 ** torch.arange(width - 1, -1, -1)  # (width,)
    return (numbers[:, None] // powers) % 10 + FIRST


def add_task(n: int = 1000, digits: int = 3, seed: int = 0) -> SeqBatch:
    """x spells "a+b=" and y spells c = a + b, with a, b < 10**digits.

    Numbers are zero-padded to fixed width (digits for a and b, digits+1 for c) so that
    every example has the same length: x is (n, 2*digits+2), y is (n, digits+1)."""
    g = _generator(seed)
    a = torch.randint(0, 10**digits, (n,), generator=g)
    b = torch.randint(0, 10**digits, (n,), generator=g)
    plus = torch.full((n, 1), FIRST + ADD_CHARS.index("+"))
    equals = torch.full((n, 1), FIRST + ADD_CHARS.index("="))
    x = torch.cat([_spell(a, digits), plus, _spell(b, digits), equals], dim=1)
    meta = _meta("add", n, seed, FIRST + len(ADD_CHARS), digits=digits, chars=ADD_CHARS)
    return SeqBatch(x, _spell(a + b, digits + 1), meta)


def associative_recall(n: int = 1000, n_pairs: int = 4, vocab: int = 16, seed: int = 0) -> SeqBatch:
    """x = k1 v1 ... kp vp SEP q, y = the value paired with q (n,).

    Keys are distinct within a sequence and use tokens 2..vocab+1; values use the next
    `vocab` tokens, so a key can never be mistaken for a value."""
    if n_pairs > vocab:
        raise ValueError(f"n_pairs={n_pairs} distinct keys need vocab >= n_pairs (got {vocab}).")
    g = _generator(seed)
    keys = torch.rand(n, vocab, generator=g).argsort(dim=1)[:, :n_pairs] + FIRST  # (n, p) distinct
    values = torch.randint(0, vocab, (n, n_pairs), generator=g) + FIRST + vocab  # (n, p)
    asked = torch.randint(0, n_pairs, (n,), generator=g)  # (n,) which pair is queried
    rows = torch.arange(n)
    pairs = torch.stack([keys, values], dim=2).reshape(n, 2 * n_pairs)  # k1 v1 k2 v2 ...
    x = torch.cat([pairs, torch.full((n, 1), SEP), keys[rows, asked, None]], dim=1)  # (n, 2p+2)
    meta = _meta("associative_recall", n, seed, FIRST + 2 * vocab, n_pairs=n_pairs, vocab=vocab)
    return SeqBatch(x, values[rows, asked], meta)


def adding_problem(n: int = 1000, length: int = 50, seed: int = 0) -> SeqBatch:
    """Hochreiter & Schmidhuber's adding problem, in the common two-halves form.

    x (n, length, 2): channel 0 holds values uniform in [0, 1], channel 1 marks exactly two
    positions, one in each half. y (n,) is the sum of the two marked values. Always
    predicting 1 scores MSE = Var(u1 + u2) = 1/6 (about 0.167): the bar a model must beat."""
    if length < 2:
        raise ValueError("The adding problem needs length >= 2 to place two markers.")
    g = _generator(seed)
    half = length // 2
    values = torch.rand(n, length, generator=g)
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, length, (n,), generator=g)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=2)
    y = values[rows, first] + values[rows, second]
    return SeqBatch(x, y, {"task": "adding_problem", "n": n, "seed": seed, "length": length,
                           "baseline_mse": 1 / 6})


TASKS = {
    "copy": copy_task,
    "reverse": reverse_task,
    "sort": sort_task,
    "add": add_task,
    "associative_recall": associative_recall,
    "adding_problem": adding_problem,
}


def seq_split(task: str, n_train: int, n_test: int, seed: int = 0, **kw) -> Split:
    """Train and test from different seeds, and no test input that also occurs in train.

    Independent seeds alone would let small tasks (e.g. 2-digit addition) repeat training
    problems in the test set, which measures memory rather than generalisation. So twice
    n_test candidates are drawn and those seen in training are dropped."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    make = TASKS[task]
    train_seed, test_seed = split_seeds(seed)
    train = make(n_train, seed=train_seed, **kw)
    candidates = make(2 * n_test, seed=test_seed, **kw)
    seen = {tuple(row) for row in train.x.flatten(1).tolist()}
    fresh = [i for i, row in enumerate(candidates.x.flatten(1).tolist()) if tuple(row) not in seen]
    if len(fresh) < n_test:
        raise ValueError(f"Task {task!r} with {kw} has too few distinct inputs for {n_test} test "
                         f"examples unseen in {n_train} training ones; make it longer or larger.")
    keep = torch.tensor(fresh[:n_test], dtype=torch.int64)
    meta = dict(train.meta, source=task, seed=seed, n_train=n_train, n_test=n_test,
                train_seed=train_seed, test_seed=test_seed)
    del meta["n"]
    return Split(train.x, train.y, candidates.x[keep], candidates.y[keep], meta)
