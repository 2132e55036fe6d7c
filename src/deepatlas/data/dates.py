"""Date-format translation: a date written in one of many surface forms -> its ISO 8601 form.

    "3 March 1987", "March 3, 1987", "03/03/87", "Tue 3 Mar 1987", "1987.3.3",
    "the 3rd of march 1987", ...  ->  "1987-03-03"

The classic toy task for sequence-to-sequence models with attention: the output is short and
fixed in length, but each output character must be found at a different place of the input
depending on its format, and month names must be read. Every pair is a pure function of
(n, seed): dates are drawn uniformly from 1950-01-01 to 2049-12-31 (so that a two-digit year
is unambiguous: 50-99 mean 19xx, 00-49 mean 20xx), then a format and a letter case.
Numeric formats put the day first ("03/04/87" is 3 April 1987).

Vocabularies (index 0 is PAD in both):
    source: PAD, then SRC_CHARS (letters, digits, space and ",./-")
    target: PAD, BOS, EOS, then TGT_CHARS ("0123456789-"); a target row is the 10 ISO
            characters followed by EOS, so targets are (N, 11) without padding.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from datetime import date, timedelta

import torch

from deepatlas.data import Split, split_seeds

PAD, BOS, EOS = 0, 1, 2
SRC_CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits + " ,./-"
TGT_CHARS = "0123456789-"
SRC_VOCAB = {c: i + 1 for i, c in enumerate(SRC_CHARS)}
TGT_VOCAB = {c: i + 3 for i, c in enumerate(TGT_CHARS)}
SRC_VOCAB_SIZE = len(SRC_CHARS) + 1
TGT_VOCAB_SIZE = len(TGT_CHARS) + 3
TGT_LEN = 11  # "yyyy-mm-dd" + EOS

FIRST_DAY, LAST_DAY = date(1950, 1, 1), date(2049, 12, 31)
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def ordinal(n: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 22 -> "22nd"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _month(d: date) -> str:
    return MONTHS[d.month - 1]


def _weekday(d: date) -> str:
    return WEEKDAYS[d.weekday()]


FORMATS: dict[str, Callable[[date], str]] = {
    "d Month yyyy": lambda d: f"{d.day} {_month(d)} {d.year}",  # 3 March 1987
    "Month d, yyyy": lambda d: f"{_month(d)} {d.day}, {d.year}",  # March 3, 1987
    "dd/mm/yy": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year % 100:02d}",  # 03/03/87
    "Wkd d Mon yyyy": lambda d: f"{_weekday(d)[:3]} {d.day} {_month(d)[:3]} {d.year}",  # Tue 3 Mar 1987
    "yyyy.m.d": lambda d: f"{d.year}.{d.month}.{d.day}",  # 1987.3.3
    "the dth of Month yyyy": lambda d: f"the {ordinal(d.day)} of {_month(d)} {d.year}",  # the 3rd of March 1987
    "dd-Mon-yyyy": lambda d: f"{d.day:02d}-{_month(d)[:3]}-{d.year}",  # 03-Mar-1987
    "Weekday, Month d, yyyy": lambda d: f"{_weekday(d)}, {_month(d)} {d.day}, {d.year}",  # Tuesday, March 3, 1987
    "d.m.yyyy": lambda d: f"{d.day}.{d.month}.{d.year}",  # 3.3.1987
    "yyyymmdd": lambda d: f"{d.year}{d.month:02d}{d.day:02d}",  # 19870303
    "Mon dth yyyy": lambda d: f"{_month(d)[:3]} {ordinal(d.day)} {d.year}",  # Mar 3rd 1987
    "Weekday the dth of Month, yyyy":  # Tuesday the 3rd of March, 1987
        lambda d: f"{_weekday(d)} the {ordinal(d.day)} of {_month(d)}, {d.year}",
}
FORMAT_NAMES = list(FORMATS)
CASES: dict[str, Callable[[str], str]] = {"as is": lambda s: s, "lower": str.lower, "upper": str.upper}
# the longest source: a two-digit day in September on a Wednesday (a week covers every weekday)
MAX_SRC_LEN = max(len(f(date(2037, 9, 22 + k))) for f in FORMATS.values() for k in range(7))


def date_pairs(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """n (source, ISO target, format name) triples, a pure function of (n, seed)."""
    rng = random.Random(seed)
    days = (LAST_DAY - FIRST_DAY).days
    pairs = []
    for _ in range(n):
        d = FIRST_DAY + timedelta(days=rng.randint(0, days))
        fmt = rng.choice(FORMAT_NAMES)
        case = rng.choice(list(CASES))
        pairs.append((CASES[case](FORMATS[fmt](d)), d.isoformat(), fmt))
    return pairs


def chance_overlap(pairs: list[tuple[str, str, str]], n_train: int) -> float:
    """The overlap expected by chance: the mean probability that n_train independent draws contain
    each pair's source verbatim. A source is made by one date and one format, and by as many of
    the letter cases as leave it unchanged (all three for the numeric formats)."""
    days = (LAST_DAY - FIRST_DAY).days + 1
    total = 0.0
    for src, iso, fmt in pairs:
        written = FORMATS[fmt](date.fromisoformat(iso))
        cases = sum(case(written) == src for case in CASES.values())
        # P(a draw gives src) = cases / (days \cdot formats \cdot 3)
        q = cases / (days * len(FORMATS) * len(CASES))
        total += 1 - (1 - q) ** n_train
    return total / max(len(pairs), 1)


def encode_sources(texts: list[str], width: int | None = None) -> torch.Tensor:
    """Source strings as character ids (N, width), padded with PAD at the end."""
    width = width or max(len(t) for t in texts)
    ids = torch.full((len(texts), width), PAD, dtype=torch.int64)
    for i, text in enumerate(texts):
        unknown = set(text) - set(SRC_VOCAB)
        if unknown or len(text) > width:
            raise ValueError(f"cannot encode {text!r}: unknown characters {sorted(unknown)} or longer than {width}")
        ids[i, :len(text)] = torch.tensor([SRC_VOCAB[c] for c in text])
    return ids


def encode_targets(texts: list[str]) -> torch.Tensor:
    """ISO dates as target ids (N, 11): ten characters, then EOS."""
    if any(len(t) != TGT_LEN - 1 or set(t) - set(TGT_VOCAB) for t in texts):
        raise ValueError("targets must be ISO dates 'yyyy-mm-dd'")
    return torch.tensor([[TGT_VOCAB[c] for c in t] + [EOS] for t in texts], dtype=torch.int64)


def decode_sources(ids: torch.Tensor) -> list[str]:
    """Source ids (N, S) back to strings, dropping PAD."""
    return ["".join(SRC_CHARS[i - 1] for i in row if i != PAD) for row in ids.tolist()]


def decode_targets(ids: torch.Tensor) -> list[str]:
    """Target ids (N, T) back to strings, stopping at the first EOS and skipping PAD/BOS."""
    texts = []
    for row in ids.tolist():
        chars = []
        for i in row:
            if i == EOS:
                break
            if i >= 3:
                chars.append(TGT_CHARS[i - 3])
        texts.append("".join(chars))
    return texts


def date_split(n_train: int = 10_000, n_test: int = 2_000, seed: int = 0) -> Split:
    """Train and test pairs drawn from different seeds (deepatlas.data.split_seeds).

    x (N, MAX_SRC_LEN) source ids padded with PAD; y (N, 11) target ids ending in EOS.
    Test sources are not filtered against the training set: with 36,525 dates, 12 formats and
    3 cases a repeat is rare, and meta["overlap"] reports the fraction of test sources that
    also occur verbatim in training (mostly the short, case-free numeric formats) next to
    meta["overlap_chance"], the fraction independent draws are expected to share."""
    train_seed, test_seed = split_seeds(seed)
    train, test = date_pairs(n_train, train_seed), date_pairs(n_test, test_seed)
    seen = {src for src, _, _ in train}
    overlap = sum(src in seen for src, _, _ in test) / max(n_test, 1)

    def tensors(pairs):
        x = encode_sources([src for src, _, _ in pairs], MAX_SRC_LEN)
        y = encode_targets([tgt for _, tgt, _ in pairs])
        fmt = torch.tensor([FORMAT_NAMES.index(f) for _, _, f in pairs], dtype=torch.int64)
        return x, y, fmt

    x_train, y_train, fmt_train = tensors(train)
    x_test, y_test, fmt_test = tensors(test)
    meta = {"source": "dates", "seed": seed, "train_seed": train_seed, "test_seed": test_seed,
            "n_train": n_train, "n_test": n_test, "src_vocab_size": SRC_VOCAB_SIZE,
            "tgt_vocab_size": TGT_VOCAB_SIZE, "pad": PAD, "bos": BOS, "eos": EOS,
            "formats": FORMAT_NAMES, "train_format": fmt_train, "test_format": fmt_test, "overlap": overlap,
            "overlap_chance": chance_overlap(test, n_train)}
    return Split(x_train, y_train, x_test, y_test, meta)
