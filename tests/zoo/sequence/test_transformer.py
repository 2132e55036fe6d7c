"""The encoder-decoder Transformer: equal to nn.Transformer with copied weights, causal by gradient,
blind to padding, and the parameter count of its formula."""

import pytest
import torch
from torch import nn

from deepatlas.data.sequences import PAD
from deepatlas.nn.attention import causal_mask
from deepatlas.zoo.sequence.transformer import (
    BOS, LSTMSeq2Seq, Transformer, TransformerTagger, cpu_ms, growth_exponent, teacher_forcing,
)

V, D, H, F, N = 11, 16, 4, 32, 2


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def tokens(B: int, T: int, seed: int = 0, pad_from: list[int] | None = None) -> torch.Tensor:
    """Random symbol ids (B, T); row b is padded from position pad_from[b] on."""
    x = torch.randint(2, V, (B, T), generator=torch.Generator().manual_seed(seed))
    for b, start in enumerate(pad_from or []):
        x[b, start:] = PAD
    return x


def copy_attention(ours, theirs):
    theirs.in_proj_weight.copy_(ours.in_proj.weight)
    theirs.in_proj_bias.copy_(ours.in_proj.bias)
    theirs.out_proj.weight.copy_(ours.out_proj.weight)
    theirs.out_proj.bias.copy_(ours.out_proj.bias)


def copy_common(ours, theirs):
    theirs.linear1.load_state_dict(ours.ffn.w1.state_dict())
    theirs.linear2.load_state_dict(ours.ffn.w2.state_dict())
    theirs.norm1.load_state_dict(ours.norm1.state_dict())
    theirs.norm2.load_state_dict(ours.norm2.state_dict())


def torch_twin(model: Transformer, norm_first: bool) -> nn.Transformer:
    """nn.Transformer with our weights; post-LN stacks carry no final norm in the paper, so none here."""
    ref = nn.Transformer(D, H, N, N, F, dropout=0.0, batch_first=True, norm_first=norm_first)
    with torch.no_grad():
        for ours, theirs in zip(model.encoder.layers, ref.encoder.layers):
            copy_attention(ours.attn, theirs.self_attn)
            copy_common(ours, theirs)
        for ours, theirs in zip(model.decoder.layers, ref.decoder.layers):
            copy_attention(ours.self_attn, theirs.self_attn)
            copy_attention(ours.cross_attn, theirs.multihead_attn)
            copy_common(ours, theirs)
            theirs.norm3.load_state_dict(ours.norm3.state_dict())
        if norm_first:
            ref.encoder.norm.load_state_dict(model.encoder.norm.state_dict())
            ref.decoder.norm.load_state_dict(model.decoder.norm.state_dict())
        else:
            ref.encoder.norm = ref.decoder.norm = None
    return ref


@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_torch_transformer_with_masks(float64, norm_first):
    torch.manual_seed(0)
    model = Transformer(V, V, D, H, F, N, norm_first=norm_first)
    ref = torch_twin(model, norm_first)
    src, tgt = tokens(3, 7, 1, pad_from=[7, 4, 2]), tokens(3, 5, 2, pad_from=[5, 3, 5])
    tgt[:, 0] = BOS
    x = model.src_embed(src).detach().requires_grad_(True)  # (B, S, D)
    y = model.tgt_embed(tgt).detach().requires_grad_(True)  # (B, T, D)

    memory = model.encoder(x, src == PAD)
    ours = model.decoder(y, memory, tgt == PAD, src == PAD)
    theirs = ref(x, y, tgt_mask=~causal_mask(5), src_key_padding_mask=src == PAD,
                 tgt_key_padding_mask=tgt == PAD, memory_key_padding_mask=src == PAD)
    torch.testing.assert_close(ours, theirs)

    w = torch.randn_like(ours)
    g_ours = torch.autograd.grad((ours * w).sum(), (x, y, model.encoder.layers[0].attn.in_proj.weight))
    g_theirs = torch.autograd.grad((theirs * w).sum(), (x, y, ref.encoder.layers[0].self_attn.in_proj_weight))
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b)


def test_forward_is_embed_encode_decode_project(float64):
    torch.manual_seed(0)
    model = Transformer(V, V, D, H, F, N)
    src, tgt = tokens(2, 6, 3), teacher_forcing(tokens(2, 4, 4))
    memory = model.encoder(model.src_embed(src), src == PAD)
    expected = model.out(model.decoder(model.tgt_embed(tgt), memory, tgt == PAD, src == PAD))
    torch.testing.assert_close(model(src, tgt), expected)
    # X = E[tokens] sqrt(d_model) + PE
    torch.testing.assert_close(model.src_embed(src), model.src_embed.E(src) * D**0.5 + model.src_embed.positions(6))


def test_decoder_is_causal_by_gradient(float64):
    torch.manual_seed(0)
    model = Transformer(V, V, D, H, F, N)
    src, tgt = tokens(2, 6, 5), teacher_forcing(tokens(2, 5, 6))
    memory, src_pad = model.encode(src)
    y = model.tgt_embed(tgt).detach().requires_grad_(True)
    logits = model.out(model.decoder(y, memory, tgt == PAD, src_pad))  # (B, T, V)
    for t in range(5):
        (g,) = torch.autograd.grad(logits[:, t].sum(), y, retain_graph=True)
        reach = g.abs().sum(dim=(0, 2))  # (T,)
        assert (reach[t + 1:] == 0).all(), f"position {t} sees the future"
        assert (reach[:t + 1] > 0).all(), f"position {t} does not see its past"


def test_encoder_sees_the_whole_source_but_no_padding(float64):
    torch.manual_seed(0)
    model = Transformer(V, V, D, H, F, N)
    src = tokens(1, 6, 7, pad_from=[4])
    x = model.src_embed(src).detach().requires_grad_(True)
    memory = model.encoder(x, src == PAD)
    (g,) = torch.autograd.grad(memory[:, 0].sum(), x)
    reach = g.abs().sum(dim=(0, 2))
    assert (reach[:4] > 0).all() and (reach[4:] == 0).all()


def test_padding_changes_nothing(float64):
    torch.manual_seed(0)
    model = Transformer(V, V, D, H, F, N)
    src, tgt = tokens(2, 6, 8), teacher_forcing(tokens(2, 4, 9))
    logits = model(src, tgt)
    longer_src = torch.cat([src, torch.full((2, 3), PAD)], 1)
    longer_tgt = torch.cat([tgt, torch.full((2, 2), PAD)], 1)
    torch.testing.assert_close(model(longer_src, tgt), logits)
    torch.testing.assert_close(model(longer_src, longer_tgt)[:, :4], logits)
    # a batch of different lengths gives each row what it gets alone
    mixed = tokens(2, 6, 10, pad_from=[6, 3])
    both = model(mixed, tgt)
    torch.testing.assert_close(both[1:], model(mixed[1:, :3], tgt[1:]))


def test_greedy_decoding(float64):
    torch.manual_seed(0)
    model = Transformer(V, 7, D, H, F, N).eval()
    src = tokens(3, 5, 11)
    out = model.greedy(src, steps=6)
    assert out.shape == (3, 6) and out.dtype == torch.long and ((0 <= out) & (out < 7)).all()
    # each token is the argmax given the tokens before it
    logits = model(src, teacher_forcing(out))
    assert torch.equal(logits.argmax(-1), out)


@pytest.fixture
def one_thread():
    """A tiny model trains many times faster on one thread than on two shared ones."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_learns_to_reverse(one_thread):
    torch.manual_seed(0)
    model = Transformer(6, 6, 32, 4, 64, 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        x = torch.randint(2, 6, (32, 4))
        y = x.flip(1)
        loss = nn.functional.cross_entropy(model(x, teacher_forcing(y)).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.randint(2, 6, (200, 4), generator=torch.Generator().manual_seed(1))
    assert (model.eval().greedy(x, 4) == x.flip(1)).all(1).float().mean() > 0.9


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_parameter_count(norm_first, positions):
    Vs, Vt, max_len = 9, 7, 20
    model = Transformer(Vs, Vt, D, H, F, N, norm_first=norm_first, positions=positions, max_len=max_len)
    attn = 4 * D * D + 4 * D  # W^Q, W^K, W^V, W^O and their biases
    ffn = 2 * D * F + F + D
    enc_layer, dec_layer = attn + ffn + 2 * 2 * D, 2 * attn + ffn + 3 * 2 * D
    final_norms = 2 * 2 * D if norm_first else 0
    pos = 2 * max_len * D if positions == "learned" else 0  # one table per embedding
    expected = (Vs + Vt) * D + N * (enc_layer + dec_layer) + final_norms + D * Vt + Vt + pos
    assert sum(p.numel() for p in model.parameters()) == expected


def test_learned_positions_train_only_the_rows_they_see():
    model = Transformer(V, V, D, H, F, N, positions="learned", max_len=12)
    model(tokens(2, 6), teacher_forcing(tokens(2, 4, 1))).square().sum().backward()
    g = model.src_embed.positions.table.grad
    assert (g[:6].abs().sum(1) > 0).all() and (g[6:] == 0).all()


def test_tagger_shapes_and_padding(float64):
    torch.manual_seed(0)
    model = TransformerTagger(V, 3, D, H, F, N)
    x = tokens(2, 5)
    out = model(x)
    assert out.shape == (2, 5, 3)
    torch.testing.assert_close(model(torch.cat([x, torch.full((2, 2), PAD)], 1))[:, :5], out)


def test_lstm_baseline_shapes():
    out = LSTMSeq2Seq(V, 8, 16)(tokens(3, 6), teacher_forcing(tokens(3, 4, 1)))
    assert out.shape == (3, 4, V)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown positions"):
        Transformer(positions="rotary")
    with pytest.raises(ValueError, match="max_len"):
        Transformer(V, V, D, H, F, N, max_len=4)(tokens(1, 5), tokens(1, 3))
    with pytest.raises(ValueError, match="even d_model"):
        Transformer(V, V, 15, 3, F, N)
    with pytest.raises(ValueError, match="divisible"):
        Transformer(V, V, 16, 3, F, N)
    with pytest.raises(ValueError, match=">= 1"):
        Transformer(V, V, D, H, F, 0)


def test_timing_helpers():
    assert abs(growth_exponent([1, 2, 4, 8], [3.0, 12.0, 48.0, 192.0], fit_from=2) - 2.0) < 1e-9
    assert cpu_ms(lambda: sum(range(1000)), repeats=3) >= 0.0
