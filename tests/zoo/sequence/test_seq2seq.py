"""The encoder-decoder: its bidirectional encoder against nn.GRU, padding, causality, decoding, sizes."""

import pytest
import torch
from torch import nn

from deepatlas.data import dates
from deepatlas.registry import create_model
from deepatlas.zoo.sequence.seq2seq import ATTENTIONS, Encoder, Seq2Seq, reverse_padded

E, H = 6, 8


def _batch(seed=0, B=4, S=9, T=5):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(1, dates.SRC_VOCAB_SIZE, (B, S), generator=g)
    lengths = torch.tensor([S, 3, 7, 1])[:B]
    src[torch.arange(S) >= lengths[:, None]] = dates.PAD
    tgt = torch.randint(3, dates.TGT_VOCAB_SIZE, (B, T), generator=g)
    return src, lengths, tgt


def _model(attention, seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(emb_size=E, hidden_size=H, attention=attention).double()


def test_reverse_padded():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])[..., None]
    lengths = torch.tensor([3, 2])
    assert reverse_padded(x, lengths)[..., 0].tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    assert torch.equal(reverse_padded(reverse_padded(x, lengths), lengths), x)


def test_encoder_equals_bidirectional_nn_gru_on_each_unpadded_source():
    torch.manual_seed(0)
    enc = Encoder(dates.SRC_VOCAB_SIZE, E, H).double()
    for rnn in (enc.forward_rnn, enc.backward_rnn):
        rnn.fused = False  # the readable loop; the fused path is tested by deepatlas.nn.recurrent
    ref = nn.GRU(E, H // 2, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, f"{name}_l0").copy_(getattr(enc.forward_rnn, f"{name}_l0"))
            getattr(ref, f"{name}_l0_reverse").copy_(getattr(enc.backward_rnn, f"{name}_l0"))
    src, lengths, _ = _batch()
    states, c, mask = enc(src)
    assert states.shape == (4, 9, H) and c.shape == (4, H) and torch.equal(mask, src != dates.PAD)
    for b, n in enumerate(lengths.tolist()):
        out, h_n = ref(enc.embed(src[b:b + 1, :n]))  # the source alone, without padding
        torch.testing.assert_close(states[b, :n], out[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c[b], torch.cat([h_n[0, 0], h_n[1, 0]]), rtol=1e-12, atol=1e-12)


def test_fused_and_readable_encoders_agree():
    torch.manual_seed(0)
    enc = Encoder(dates.SRC_VOCAB_SIZE, E, H).double()
    src, _, _ = _batch()
    fused = enc(src)
    for rnn in (enc.forward_rnn, enc.backward_rnn):
        rnn.fused = False
    for a, b in zip(fused, enc(src)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_padding_changes_nothing(attention):
    model = _model(attention)
    src, lengths, tgt = _batch()
    logits, weights = model(src, tgt)
    wider = torch.cat([src, torch.zeros(len(src), 5, dtype=src.dtype)], 1)
    logits_wide, weights_wide = model(wider, tgt)
    torch.testing.assert_close(logits_wide, logits)
    if attention != "none":
        assert weights.shape == (4, 5, 9)
        assert (weights[src[:, None, :].expand_as(weights) == dates.PAD] == 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(4, 5, dtype=torch.float64))
        torch.testing.assert_close(weights_wide[..., :9], weights)
    else:
        assert weights is None


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_padded_source_positions_get_no_gradient(attention):
    model = _model(attention)
    src, _, tgt = _batch()
    emb = model.encoder.embed
    captured = {}
    handle = emb.register_forward_hook(lambda m, i, out: captured.setdefault("x", out))
    logits, _ = model(src, tgt)
    handle.remove()
    (grad,) = torch.autograd.grad(logits.sum(), captured["x"])  # (B, S, E)
    pad = src == dates.PAD
    assert (grad[pad] == 0).all() and (grad[~pad].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_decoder_is_causal(attention):
    model = _model(attention)
    src, _, tgt = _batch()
    captured = {}
    handle = model.embed.register_forward_hook(lambda m, i, out: captured.setdefault("e", []).append(out))
    logits, _ = model(src, tgt)
    handle.remove()
    t = 2
    grads = torch.autograd.grad(logits[:, t].sum(), captured["e"])  # one (B, E) per decoder input
    for k, g in enumerate(grads):
        assert (g.abs().sum() > 0) == (k <= t), f"logits at step {t} and input {k}"


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_greedy_equals_teacher_forcing_on_its_own_outputs(attention):
    model = _model(attention)
    src, _, _ = _batch()
    tokens, weights = model.greedy(src, 6)
    tgt_in = torch.cat([torch.full((len(src), 1), dates.BOS), tokens[:, :-1]], 1)
    logits, forced_weights = model(src, tgt_in)
    assert torch.equal(logits.argmax(-1), tokens)
    if attention != "none":
        torch.testing.assert_close(weights, forced_weights)


def test_without_attention_only_the_fixed_vector_reaches_the_decoder():
    model = _model("none")
    src, _, tgt = _batch()
    mem = model.start(src)
    mem["states"] = torch.randn_like(mem["states"])  # every per-position state replaced
    z, _ = model.step(tgt[:, 0], mem)
    torch.testing.assert_close(z, model(src, tgt[:, :1])[0][:, 0])
    attentive = _model("bahdanau")
    mem = attentive.start(src)
    mem["states"] = torch.randn_like(mem["states"])
    assert not torch.allclose(attentive.step(tgt[:, 0], mem)[0], attentive(src, tgt[:, :1])[0][:, 0])


def _gru_cell(i, h):
    return 3 * h * (i + h) + 6 * h


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_parameter_count(attention):
    Vs, Vt, A = dates.SRC_VOCAB_SIZE, dates.TGT_VOCAB_SIZE, H
    shared = Vs * E + 2 * _gru_cell(E, H // 2) + Vt * E + (H * H + H) + _gru_cell(E + H, H)
    extra = {"none": 2 * H * Vt + Vt,
             "bahdanau": H * A + (H * A + A) + A + 2 * H * Vt + Vt,  # W_a, U_a, v_a, then the output layer
             "luong": 2 * H * H + H * Vt + Vt}[attention]  # dot score: only W_c and the output layer
    assert sum(p.numel() for p in _model(attention).parameters()) == shared + extra


def test_registered_variants():
    assert create_model("seq2seq").attention == "none"
    assert create_model("seq2seq_bahdanau").attention == "bahdanau"
    luong = create_model("seq2seq_luong")
    assert luong.attention == "luong" and luong.attn.score_name == "dot"


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown attention"):
        Seq2Seq(attention="cosine")
    with pytest.raises(ValueError, match="must be even"):
        Seq2Seq(hidden_size=7)
