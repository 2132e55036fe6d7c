"""The bidirectional tagger: equal to torch's bidirectional LSTM, sees both sides; the lab's helpers."""

import torch
from torch import nn

from deepatlas.data.tagging import IGNORE
from deepatlas.registry import create_model
from deepatlas.zoo.sequence.birnn import Reversed
from deepatlas.zoo.sequence.rnn import RecurrentTagger, count, matched_hidden, tag_accuracy


def test_birnn_tagger_equals_torch_bidirectional_lstm():
    torch.manual_seed(0)
    model = create_model("birnn_tagger").double()
    ref = nn.LSTM(16, 32, batch_first=True, bidirectional=True).double()
    ref.load_state_dict(model.rnn.state_dict())
    x = torch.randint(0, 4, (3, 10))
    expected = model.head(ref(model.embed(x))[0])
    torch.testing.assert_close(model(x), expected, rtol=1e-10, atol=1e-12)
    assert model(x).shape == (3, 10, 16)


def _reach(model, x, t):
    """Which input positions the tag at t depends on (gradient through the embedding)."""
    emb = model.tagger.embed if isinstance(model, Reversed) else model.embed
    seen = []
    hook = emb.register_forward_hook(lambda m, i, out: seen.append(out.retain_grad() or out))
    out = model(x)
    hook.remove()
    out[:, t].sum().backward()
    grad = seen[0].grad.abs().sum((0, 2))
    return grad.flip(0) if isinstance(model, Reversed) else grad


def test_directions_see_what_they_should():
    torch.manual_seed(0)
    x, t = torch.randint(0, 4, (2, 9)), 4
    one_way = RecurrentTagger(4, 3, 5, 6, "gru").double()
    bi = RecurrentTagger(4, 3, 5, 6, "gru", bidirectional=True).double()
    fwd, bwd, both = _reach(one_way, x, t), _reach(Reversed(one_way), x, t), _reach(bi, x, t)
    assert (fwd[: t + 1] > 0).all() and (fwd[t + 1:] == 0).all()
    assert (bwd[t:] > 0).all() and (bwd[:t] == 0).all()
    assert (both > 0).all()


def test_matched_hidden_equalises_parameters():
    def make(h, bi=False):
        return RecurrentTagger(4, 16, 16, h, "lstm", bidirectional=bi)
    target = count(make(32, bi=True))
    h = matched_hidden(target, make)
    gaps = {d: abs(count(make(h + d)) - target) for d in (-1, 0, 1)}
    assert gaps[0] == min(gaps.values()) and gaps[0] / target < 0.02


def test_tag_accuracy_skips_ignored_positions():
    y = torch.tensor([[IGNORE, 1, 2, IGNORE]])
    logits = torch.zeros(1, 4, 3)
    logits[0, 1, 1] = logits[0, 2, 0] = 1.0
    assert tag_accuracy(logits, y) == 0.5
