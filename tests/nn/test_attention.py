"""Attention and Transformer layers against torch's modules with copied weights, in float64."""

import math

import pytest
import torch
from torch import nn

from deepatlas.nn.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from deepatlas.nn.transformer import DecoderLayer, EncoderLayer, FeedForward, sinusoidal_positions

D, H = 16, 4


def copy_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        ours.in_proj.weight.copy_(theirs.in_proj_weight)
        ours.in_proj.bias.copy_(theirs.in_proj_bias)
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


def test_sdpa_matches_torch_with_mask(float64):
    q, k, v = (torch.randn(2, 3, 5, 8, requires_grad=True) for _ in range(3))
    mask = torch.rand(5, 5) > 0.3
    mask[:, 0] = True  # every query keeps one key
    out, w = scaled_dot_product_attention(q, k, v, mask)
    ref = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))
    assert (w[..., ~mask] == 0).all()
    g = torch.autograd.grad(out.square().sum(), (q, k, v))
    g_ref = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b)


def test_fully_masked_row_gives_zeros_not_nan(float64):
    q = k = v = torch.randn(1, 1, 3, 4)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and (w[0, 0, 1] == 0).all() and (out[0, 0, 1] == 0).all()


def test_scaling_is_by_sqrt_of_key_dimension(float64):
    q, k = torch.randn(1, 1, 2, 9), torch.randn(1, 1, 3, 9)
    _, w = scaled_dot_product_attention(q, k, torch.randn(1, 1, 3, 9))
    torch.testing.assert_close(w, torch.softmax(q @ k.transpose(-2, -1) / 3.0, -1))


def test_causal_mask():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.sum() == 10 and m[2, :3].all() and not m[2, 3]


@pytest.mark.parametrize("masks", ["none", "attn", "padding", "both", "batched_attn"])
def test_multi_head_attention_matches_torch(float64, masks):
    torch.manual_seed(0)
    ours, theirs = MultiHeadAttention(D, H), nn.MultiheadAttention(D, H, batch_first=True)
    copy_mha(ours, theirs)
    q = torch.randn(3, 5, D, requires_grad=True)
    kv = torch.randn(3, 7, D, requires_grad=True)
    allowed = torch.rand(5, 7) > 0.4
    allowed[:, 0] = True
    if masks == "batched_attn":
        allowed = allowed.expand(3, 5, 7).clone()
        allowed[1, :, 3] = False
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 5:] = padding[2, 4:] = True
    attn = allowed if masks in ("attn", "both", "batched_attn") else None
    pad = padding if masks in ("padding", "both") else None
    out, w = ours(q, kv, kv, attn_mask=attn, key_padding_mask=pad, need_weights=True)
    torch_attn = None if attn is None else (~attn if attn.dim() == 2 else (~attn).repeat_interleave(H, 0))
    ref, w_ref = theirs(q, kv, kv, attn_mask=torch_attn, key_padding_mask=pad, need_weights=True,
                        average_attn_weights=False)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w, w_ref)
    g = torch.autograd.grad(out.square().sum(), (q, kv, *ours.parameters()))
    g_ref = torch.autograd.grad(ref.square().sum(), (q, kv, theirs.in_proj_weight, theirs.in_proj_bias,
                                                     theirs.out_proj.weight, theirs.out_proj.bias))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b)


def test_multi_head_attention_errors():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    mha = MultiHeadAttention(D, H)
    with pytest.raises(TypeError, match="bool"):
        mha(torch.randn(1, 2, D), attn_mask=torch.zeros(2, 2))


def test_causal_self_attention_sees_no_future():
    mha = MultiHeadAttention(D, H)
    x = torch.randn(1, 6, D, requires_grad=True)
    out, _ = mha(x, attn_mask=causal_mask(6))
    (grad,) = torch.autograd.grad(out[0, 2].sum(), x)
    assert grad[0, 3:].abs().max() == 0 and grad[0, :3].abs().max() > 0


def test_sinusoidal_positions():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16)
    torch.testing.assert_close(pe[0, 0::2], torch.zeros(8))
    torch.testing.assert_close(pe[0, 1::2], torch.ones(8))
    torch.testing.assert_close(pe[7, 2], torch.tensor(math.sin(7 / 10000 ** (2 / 16))))
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 5)


def test_feed_forward_errors():
    with pytest.raises(ValueError, match="unknown activation"):
        FeedForward(4, 8, activation="swish")


def copy_ffn_norms(ours, theirs, norms):
    with torch.no_grad():
        ours.ffn.w1.weight.copy_(theirs.linear1.weight)
        ours.ffn.w1.bias.copy_(theirs.linear1.bias)
        ours.ffn.w2.weight.copy_(theirs.linear2.weight)
        ours.ffn.w2.bias.copy_(theirs.linear2.bias)
        for n in norms:
            getattr(ours, n).load_state_dict(getattr(theirs, n).state_dict())


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(float64, norm_first, activation):
    torch.manual_seed(1)
    ours = EncoderLayer(D, H, 32, norm_first=norm_first, activation=activation)
    theirs = nn.TransformerEncoderLayer(D, H, 32, dropout=0.0, activation=activation, batch_first=True,
                                        norm_first=norm_first)
    copy_mha(ours.attn, theirs.self_attn)
    copy_ffn_norms(ours, theirs, ["norm1", "norm2"])
    x = torch.randn(2, 6, D)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    out = ours(x, attn_mask=causal_mask(6), key_padding_mask=pad)
    ref = theirs(x, src_mask=~causal_mask(6), src_key_padding_mask=pad)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(float64, norm_first):
    torch.manual_seed(2)
    ours = DecoderLayer(D, H, 32, norm_first=norm_first)
    theirs = nn.TransformerDecoderLayer(D, H, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
    copy_mha(ours.self_attn, theirs.self_attn)
    copy_mha(ours.cross_attn, theirs.multihead_attn)
    copy_ffn_norms(ours, theirs, ["norm1", "norm2", "norm3"])
    x, memory = torch.randn(2, 5, D), torch.randn(2, 7, D)
    mem_pad = torch.zeros(2, 7, dtype=torch.bool)
    mem_pad[0, 6:] = True
    out = ours(x, memory, attn_mask=causal_mask(5), memory_key_padding_mask=mem_pad, need_weights=True)
    ref = theirs(x, memory, tgt_mask=~causal_mask(5), memory_key_padding_mask=mem_pad)
    torch.testing.assert_close(out, ref)
    assert ours.last_cross_weights.shape == (2, H, 5, 7)
    assert (ours.last_cross_weights[0, :, :, 6] == 0).all()
