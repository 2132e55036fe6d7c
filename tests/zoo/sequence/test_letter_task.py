"""The task of the BERT and label-efficiency labs: scrambling keeps a line's characters, changes its spelling."""

from collections import Counter

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.sequence.bert import play_lines, scramble_line, scrambled_task

LINE = st.text(alphabet="abcdefghij ,.'ABC", min_size=0, max_size=60)


@settings(max_examples=100, deadline=None)
@given(line=LINE, seed=st.integers(0, 1000), keep_ends=st.booleans())
def test_scramble_keeps_characters_and_layout(line, seed, keep_ends):
    out = scramble_line(line, torch.Generator().manual_seed(seed), keep_ends)
    assert Counter(out) == Counter(line)  # a bag of characters cannot tell the two apart
    assert len(out) == len(line)
    assert [c.isalpha() for c in out] == [c.isalpha() for c in line]  # words stay where they were
    for w_in, w_out in zip(_words(line), _words(out)):
        assert Counter(w_in) == Counter(w_out)  # letters move only within their word
        if keep_ends:
            assert w_in[0] == w_out[0] and w_in[-1] == w_out[-1]
        if len(w_in) < (4 if keep_ends else 2):
            assert w_in == w_out


def _words(s: str) -> list[str]:
    return "".join(c if c.isalpha() else " " for c in s).split()


def test_scrambled_task_is_balanced_and_labels_are_right():
    lines = ["Now is the winter of our discontent", "Made glorious summer by this sun of York",
             "And all the clouds that lour'd upon our house", "To be or not"] * 100
    texts, y = scrambled_task(lines, torch.Generator().manual_seed(0), keep_ends=True)
    assert len(texts) == 300  # "To be or not" has no word that scrambling can change
    assert 0.4 < y.float().mean() < 0.6
    originals = set(lines)
    assert all((t in originals) == (label == 0) for t, label in zip(texts, y.tolist()))


def test_play_lines_reads_speeches_only():
    text = ("Macbeth\n\nACT I\n\nSCENE I. A heath.\n\nEnter three Witches\n\nFirst Witch:\n"
            "When shall we three meet again\nIn thunder, lightning, or in rain?\n\nExeunt\n"
            "\nOthello\n\nACT I\n\nIAGO:\nI am not what I am, my lord.\n")
    lines, labels = play_lines(text, ("Macbeth", "Othello"), 0)
    assert lines == ["When shall we three meet again", "In thunder, lightning, or in rain?",
                     "I am not what I am, my lord."]
    assert labels == [0, 0, 1]
