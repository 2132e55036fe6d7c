"""Typed-span tagging: tags follow the cues, every gold sequence obeys the BIO rules, invalid ones are caught."""

import pytest
import torch

from deepatlas.data.span_tagging import invalid_sequences, span_split, span_tags


def test_tags_follow_cues_and_rules():
    x, y, meta = span_tags(200, length=20, n_types=3, max_span=6, n_outside=4, n_entity=5, seed=2)
    cue0 = 4 + 5
    assert not invalid_sequences(y, 3).any()
    for row, tags in zip(x.tolist(), y.tolist()):
        t = 0
        while t < len(tags):
            if tags[t] % 2 == 1:  # B-k: the span runs while I-k follows; exactly one cue, of type k
                k, end = (tags[t] - 1) // 2, t + 1
                while end < len(tags) and tags[end] == tags[t] + 1:
                    end += 1
                assert [w for w in row[t:end] if w >= cue0] == [cue0 + k] and 2 <= end - t <= 6
                t = end
            else:
                assert tags[t] == 0 and row[t] < 4
                t += 1
    assert meta["n_tags"] == 7 and meta["vocab_size"] == 12


def test_hidden_cues_invalid_detection_and_split():
    x, y, _ = span_tags(100, p_hidden=1.0, seed=0)
    assert (x < 6 + 6).all()  # no cue words at all
    bad = torch.tensor([[0, 2, 2], [1, 4, 0], [1, 2, 0], [3, 4, 4]])
    assert invalid_sequences(bad, 3).tolist() == [True, True, False, False]
    s = span_split(50, 30, seed=1)
    assert s.x_train.shape == (50, 24) and not torch.equal(s.x_train[:30], s.x_test)
    with pytest.raises(ValueError, match="p_hidden"):
        span_tags(p_hidden=2.0)
