"""T5: span corruption (statistics and round trip), the text-to-text tasks, causality and decoding."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.data.real import CharVocab
from deepatlas.registry import create_model
from deepatlas.zoo.sequence.t5 import (EOS, N_SENTINELS, N_SPECIAL, PAD, SENTINEL0, T5, TASKS, decode_ids,
                                       encode_text, noise_spans, pad_batch, span_corruption, t5_loss,
                                       task_batch, uncorrupt)


def test_paper_example_layout():
    """'Thank you <X> me to your party <Y> week.' -> '<X> for inviting <Y> last <Z>', here on ids."""
    ids = list(range(100, 120))
    g = torch.Generator().manual_seed(0)
    inputs, targets = span_corruption(ids, g)
    spans = noise_spans(20, torch.Generator().manual_seed(0))
    assert len(spans) == 1 and spans[0][1] - spans[0][0] == 3  # round(20 * 0.15) = 3 noise tokens, one span
    a, b = spans[0]
    assert inputs == ids[:a] + [SENTINEL0] + ids[b:] + [EOS]
    assert targets == [SENTINEL0] + ids[a:b] + [SENTINEL0 + 1, EOS]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 56), seed=st.integers(0, 10_000), density=st.sampled_from([0.15, 0.3, 0.5]))
def test_round_trip(n, seed, density):
    ids = torch.randint(N_SPECIAL, 90, (n,), generator=torch.Generator().manual_seed(seed)).tolist()
    inputs, targets = span_corruption(ids, torch.Generator().manual_seed(seed), noise_density=density,
                                      mean_span=2.0 if density > 0.15 else 3.0)
    assert uncorrupt(inputs, targets) == ids
    sentinels_in = [t for t in inputs if SENTINEL0 <= t < N_SPECIAL]
    assert sentinels_in == list(range(SENTINEL0, SENTINEL0 + len(sentinels_in)))  # in order, each once
    assert inputs[0] == ids[0]  # the sequence starts with a kept run


def test_noise_statistics():
    g = torch.Generator().manual_seed(1)
    lengths, noise = [], 0
    for _ in range(300):
        spans = noise_spans(100, g)
        noise += sum(b - a for a, b in spans)
        lengths += [b - a for a, b in spans]
        assert all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))  # kept runs between spans
    assert noise == 300 * 15  # exactly round(100 * 0.15) per sequence
    assert abs(sum(lengths) / len(lengths) - 3.0) < 0.01  # 15 noise tokens in 5 spans


def test_span_errors():
    with pytest.raises(ValueError, match="at least 2"):
        noise_spans(1, torch.Generator())
    with pytest.raises(ValueError, match="sentinels"):
        span_corruption(list(range(N_SPECIAL, N_SPECIAL + 400)), torch.Generator(), mean_span=1.0)
    assert N_SENTINELS == 16


def test_decoder_is_causal_and_encoder_padding_is_ignored():
    torch.manual_seed(0)
    model = T5(40, d_model=16, n_head=2, n_encoder=1, n_decoder=2).double().eval()
    src = torch.randint(N_SPECIAL, 40, (1, 7))
    tgt = torch.randint(N_SPECIAL, 40, (1, 6))
    emb = model._embed(tgt).detach().requires_grad_(True)
    memory = model.encode(src)

    def logits_from(x):
        mask = torch.ones(6, 6, dtype=torch.bool).tril()
        for layer in model.decoder:
            x = layer(x, memory, attn_mask=mask, memory_key_padding_mask=src == PAD)
        return torch.nn.functional.linear(model.dec_norm(x), model.embed.weight)

    torch.testing.assert_close(logits_from(emb), model(src, tgt))
    for t in range(6):
        (g,) = torch.autograd.grad(logits_from(emb)[0, t].sum(), emb)
        assert (g[0, t + 1:] == 0).all() and (g[0, :t + 1].norm(dim=-1) > 0).all()
    padded = torch.cat([src, torch.full((1, 3), PAD)], 1)
    torch.testing.assert_close(model(padded, tgt), model(src, tgt))


def test_loss_ignores_padding_and_greedy_stops_at_eos():
    torch.manual_seed(0)
    model = T5(40, d_model=16, n_head=2, n_encoder=1, n_decoder=1).eval()
    src = torch.randint(N_SPECIAL, 40, (2, 5))
    tgt = torch.tensor([[20, 21, EOS, PAD], [22, 23, 24, EOS]])
    tgt_in = torch.cat([torch.full((2, 1), PAD), tgt[:, :-1]], 1)
    logits = model(src, tgt_in)
    keep = tgt != PAD
    torch.testing.assert_close(t5_loss(model, src, tgt),
                               torch.nn.functional.cross_entropy(logits[keep], tgt[keep]))
    with torch.no_grad():  # the last LayerNorm outputs e_1 whatever its input, and EOS's embedding is 10 e_1
        model.dec_norm.weight.zero_()
        model.dec_norm.bias.copy_(torch.eye(16)[0])
        model.embed.weight[EOS] = 10 * torch.eye(16)[0]
    out = model.greedy(src, 5)
    assert out.shape[1] <= 5 and (out[:, 0] == EOS).all()


def test_tasks_and_text_codec():
    vocab = CharVocab("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789: ")
    assert TASKS["rev"]("night") == "thgin" and TASKS["upper"]("night") == "NIGHT" and TASKS["count"]("night") == "5"
    assert decode_ids(encode_text("rev: abc", vocab) + [EOS, 30], vocab) == "rev: abc"
    src, tgt = task_batch(["night", "day"], vocab, 32, torch.Generator().manual_seed(0))
    for s, t in zip(src.tolist(), tgt.tolist()):
        task, word = decode_ids(s, vocab).split(": ")
        assert decode_ids(t, vocab) == TASKS[task](word)
    assert pad_batch([[5], [6, 7]]).tolist() == [[5, PAD], [6, 7]]


def test_registered_variant_and_errors():
    assert isinstance(create_model("t5_char"), T5)
    with pytest.raises(ValueError, match="divisible"):
        T5(40, d_model=10, n_head=4)
    with pytest.raises(ValueError, match="max_len"):
        T5(40, d_model=8, n_head=2, max_len=4).encode(torch.ones(1, 5, dtype=torch.long))
