"""Date pairs: every target is the source's date in ISO form, determinism, train/test overlap at chance."""

import re
from datetime import date

import pytest
import torch

from deepatlas.data import dates as D
from deepatlas.data import split_seeds

MONTH = {m.lower(): i + 1 for i, m in enumerate(D.MONTHS)} | {m[:3].lower(): i + 1 for i, m in enumerate(D.MONTHS)}


def read_date(text: str, fmt: str) -> date:
    """An independent parser for each format (regular expressions, not the generator's f-strings)."""
    t = text.lower()
    if fmt == "dd/mm/yy":
        d, m, y = map(int, t.split("/"))
        return date(1900 + y if y >= 50 else 2000 + y, m, d)
    if fmt == "yyyy.m.d":
        y, m, d = map(int, t.split("."))
        return date(y, m, d)
    if fmt == "d.m.yyyy":
        d, m, y = map(int, t.split("."))
        return date(y, m, d)
    if fmt == "yyyymmdd":
        return date(int(t[:4]), int(t[4:6]), int(t[6:]))
    day = int(re.search(r"\b(\d{1,2})(st|nd|rd|th)?\b", t).group(1))
    year = int(re.search(r"\b(\d{4})\b", t).group(1))
    month = next(MONTH[w] for w in re.findall(r"[a-z]+", t) if w in MONTH)
    parsed = date(year, month, day)
    weekday = [w for w in re.findall(r"[a-z]+", t) if w[:3] in {d.lower()[:3] for d in D.WEEKDAYS}]
    if weekday:  # the weekday, when written, is the true one
        assert D.WEEKDAYS[parsed.weekday()].lower().startswith(weekday[0]), text
    return parsed


def test_every_target_is_the_sources_date_in_iso_form():
    pairs = D.date_pairs(3000, seed=0)
    for src, iso, fmt in pairs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", iso)
        assert D.FIRST_DAY <= date.fromisoformat(iso) <= D.LAST_DAY
        assert read_date(src, fmt) == date.fromisoformat(iso), (src, iso, fmt)
    assert {fmt for _, _, fmt in pairs} == set(D.FORMATS) and len(D.FORMATS) >= 8
    sources = [src for src, _, _ in pairs]
    assert any(s.isupper() for s in sources) and any(s.islower() for s in sources), "mixed case"
    assert any(s != s.lower() and s != s.upper() for s in sources)


def test_ordinals():
    assert [D.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]


def test_a_source_determines_its_date():
    by_source = {}
    for src, iso, _ in D.date_pairs(50_000, seed=1):
        assert by_source.setdefault(src, iso) == iso, src


def test_deterministic_and_seed_dependent():
    assert D.date_pairs(200, seed=5) == D.date_pairs(200, seed=5)
    assert D.date_pairs(200, seed=5) != D.date_pairs(200, seed=6)
    a, b = D.date_split(300, 100, seed=2), D.date_split(300, 100, seed=2)
    for t, u in zip(a.tensors(), b.tensors()):
        assert torch.equal(t, u)


def test_split_uses_split_seeds_and_overlaps_only_by_chance():
    split = D.date_split(10_000, 4_000, seed=1)
    assert (split.meta["train_seed"], split.meta["test_seed"]) == split_seeds(1)
    train = set(D.decode_sources(split.x_train))
    test = D.decode_sources(split.x_test)
    overlap = sum(s in train for s in test) / len(test)
    assert overlap == split.meta["overlap"]
    # expected about 0.0125 (numeric formats repeat most); binomial sd about 0.0018 at n_test = 4000
    assert abs(overlap - split.meta["overlap_chance"]) < 4 * (overlap * (1 - overlap) / len(test)) ** 0.5 + 1e-3
    assert 0.005 < split.meta["overlap_chance"] < 0.03


def test_tensors_round_trip():
    split = D.date_split(500, 200, seed=0)
    assert split.x_train.shape == (500, D.MAX_SRC_LEN) and split.y_train.shape == (500, D.TGT_LEN)
    assert split.x_train.dtype == split.y_train.dtype == torch.int64
    assert (split.y_train[:, -1] == D.EOS).all() and split.y_train[:, :-1].min() >= 3
    assert split.y_train.max() < D.TGT_VOCAB_SIZE and split.x_train.max() < D.SRC_VOCAB_SIZE
    lengths = (split.x_train != D.PAD).sum(1)
    positions = torch.arange(D.MAX_SRC_LEN)
    assert torch.equal(split.x_train != D.PAD, positions < lengths[:, None]), "padding only at the end"
    pairs = D.date_pairs(500, split_seeds(0)[0])
    assert D.decode_sources(split.x_train) == [s for s, _, _ in pairs]
    assert D.decode_targets(split.y_train) == [t for _, t, _ in pairs]
    assert [D.FORMAT_NAMES[i] for i in split.meta["train_format"]] == [f for _, _, f in pairs]


def test_max_source_length_is_reached_and_never_exceeded():
    longest = max(len(s) for s, _, _ in D.date_pairs(20_000, seed=3))
    assert longest <= D.MAX_SRC_LEN and longest >= D.MAX_SRC_LEN - 2


def test_bad_strings_are_refused():
    with pytest.raises(ValueError, match="unknown characters"):
        D.encode_sources(["3 März 1987"])
    with pytest.raises(ValueError, match="ISO"):
        D.encode_targets(["1987-3-3"])
