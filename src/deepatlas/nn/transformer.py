"""The Transformer's layers: sinusoidal positions, the position-wise feed-forward network, and
the encoder and decoder layers that wrap attention and the FFN in residual connections with
LayerNorm.

The original layer normalises after each residual sum ("Add & Norm", post-LN); GPT-2, ViT and
most later models normalise the input of each sublayer instead (pre-LN), which trains without
a learning-rate warm-up.

    post-LN:  x = \\mathrm{LN}(x + \\mathrm{Sublayer}(x))
    pre-LN:   x = x + \\mathrm{Sublayer}(\\mathrm{LN}(x))

Vaswani et al., "Attention Is All You Need", NeurIPS 2017; Xiong et al., "On Layer
Normalization in the Transformer Architecture", ICML 2020.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.nn.attention import MultiHeadAttention

ACTIVATIONS = {"relu": nn.functional.relu, "gelu": nn.functional.gelu}


def sinusoidal_positions(T: int, d_model: int) -> torch.Tensor:
    """(T, d_model): PE(pos, 2i) = sin(pos / 10000^{2i/d}), PE(pos, 2i+1) = cos(pos / 10000^{2i/d})."""
    if d_model % 2:
        raise ValueError(f"sinusoidal positions need an even d_model, got {d_model}")
    pos = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    # \omega_i = 10000^{-2i/d}
    omega = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (d/2,)
    pe = torch.empty(T, d_model)
    pe[:, 0::2] = torch.sin(pos * omega)
    pe[:, 1::2] = torch.cos(pos * omega)
    return pe


class FeedForward(nn.Module):
    """FFN(x) = W_2 \\phi(W_1 x + b_1) + b_2, applied to every position independently."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        self.w1, self.w2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.phi, self.drop = ACTIVATIONS[activation], nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d_model) -> (B, T, d_model)
        return self.w2(self.drop(self.phi(self.w1(x))))


class EncoderLayer(nn.Module):
    """Self-attention then FFN, each in a residual connection with LayerNorm (post-LN by default)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = False,
                 activation: str = "relu"):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.norm_first = norm_first
        self.last_weights: torch.Tensor | None = None

    def _self_attention(self, x, attn_mask, key_padding_mask, need_weights):
        out, self.last_weights = self.attn(x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                           need_weights=need_weights)
        return self.drop(out)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = False) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model); masks as in MultiHeadAttention."""
        if self.norm_first:
            # x = x + \mathrm{MHA}(\mathrm{LN}(x));  x = x + \mathrm{FFN}(\mathrm{LN}(x))
            x = x + self._self_attention(self.norm1(x), attn_mask, key_padding_mask, need_weights)
            return x + self.drop(self.ffn(self.norm2(x)))
        # x = \mathrm{LN}(x + \mathrm{MHA}(x));  x = \mathrm{LN}(x + \mathrm{FFN}(x))
        x = self.norm1(x + self._self_attention(x, attn_mask, key_padding_mask, need_weights))
        return self.norm2(x + self.drop(self.ffn(x)))


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder's memory, then FFN; each residual + LayerNorm."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = False,
                 activation: str = "relu"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drop = nn.Dropout(dropout)
        self.norm_first = norm_first
        self.last_self_weights: torch.Tensor | None = None
        self.last_cross_weights: torch.Tensor | None = None

    def _self(self, x, attn_mask, key_padding_mask, need_weights):
        out, self.last_self_weights = self.self_attn(x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                                     need_weights=need_weights)
        return self.drop(out)

    def _cross(self, x, memory, memory_key_padding_mask, need_weights):
        out, self.last_cross_weights = self.cross_attn(x, memory, memory, key_padding_mask=memory_key_padding_mask,
                                                       need_weights=need_weights)
        return self.drop(out)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, attn_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = False) -> torch.Tensor:
        """x (B, T, d_model) the target so far, memory (B, S, d_model) the encoder output -> (B, T, d_model).
        attn_mask is the target's self-attention mask (usually causal_mask(T))."""
        if self.norm_first:
            x = x + self._self(self.norm1(x), attn_mask, key_padding_mask, need_weights)
            x = x + self._cross(self.norm2(x), memory, memory_key_padding_mask, need_weights)
            return x + self.drop(self.ffn(self.norm3(x)))
        x = self.norm1(x + self._self(x, attn_mask, key_padding_mask, need_weights))
        x = self.norm2(x + self._cross(x, memory, memory_key_padding_mask, need_weights))
        return self.norm3(x + self.drop(self.ffn(x)))
