"""Attention: every query takes a softmax-weighted average of the values, weighted by how well
it matches each key.

Scaled dot-product attention divides the scores by sqrt(d) so that their spread does not grow
with the key dimension; multi-head attention runs h such attentions on learned projections
of size d_model / h in parallel and mixes their outputs.

    \\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}(Q K^\\top / \\sqrt{d_k}) V
    \\mathrm{MultiHead}(Q, K, V) = [\\mathrm{head}_1; \\dots; \\mathrm{head}_h] W^O,
    \\mathrm{head}_i = \\mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V)

Vaswani et al., "Attention Is All You Need", NeurIPS 2017.

Masks are boolean and say where attention is *allowed* (True = may attend), except
`key_padding_mask`, which follows torch and marks the padding (True = ignore).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) bool, True on and below the diagonal: position t may attend to positions <= t."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                                 training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """q (B, H, Tq, d), k and v (B, H, Tk, d); mask bool broadcastable to (B, H, Tq, Tk), True = may attend.

    Returns the output (B, H, Tq, d) and the attention weights (B, H, Tq, Tk). A query row whose keys
    are all masked gets zero weights (and a zero output) rather than NaN."""
    # s_{ij} = q_i \cdot k_j / \sqrt{d_k}
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # \alpha_{ij} = \exp s_{ij} / \sum_{j'} \exp s_{ij'}
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.nan_to_num(0.0)  # rows with no allowed key
    if dropout_p > 0.0 and training:
        weights = nn.functional.dropout(weights, dropout_p, training=True)
    # o_i = \sum_j \alpha_{ij} v_j
    return weights @ v, weights


class MultiHeadAttention(nn.Module):
    """h heads of size d_model / h over learned projections; equal to nn.MultiheadAttention(batch_first=True)
    with the same weights (`in_proj` stacks W^Q, W^K, W^V like torch's in_proj_weight)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.dropout = d_model, n_heads, dropout
        self.in_proj = nn.Linear(d_model, 3 * d_model, bias=bias)  # [W^Q; W^K; W^V]
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # W^O
        nn.init.xavier_uniform_(self.in_proj.weight)
        if bias:
            nn.init.zeros_(self.in_proj.bias)
            nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d_model) -> (B, H, T, d_head)
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_model // self.n_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query (B, Tq, d_model); key, value (B, Tk, d_model), default query. attn_mask bool (Tq, Tk) or
        (B, Tq, Tk), True = may attend; key_padding_mask bool (B, Tk), True = padding.
        Returns (out (B, Tq, d_model), weights (B, H, Tq, Tk) if need_weights else None)."""
        key = query if key is None else key
        value = key if value is None else value
        B, Tq, _ = query.shape
        W_q, W_k, W_v = self.in_proj.weight.chunk(3)
        b_q, b_k, b_v = self.in_proj.bias.chunk(3) if self.in_proj.bias is not None else (None,) * 3
        # Q = X W^Q, K = X W^K, V = X W^V, each split into heads
        q = self._heads(nn.functional.linear(query, W_q, b_q))  # (B, H, Tq, d_head)
        k = self._heads(nn.functional.linear(key, W_k, b_k))  # (B, H, Tk, d_head)
        v = self._heads(nn.functional.linear(value, W_v, b_v))  # (B, H, Tk, d_head)
        mask = _combine(attn_mask, key_padding_mask)
        out, weights = scaled_dot_product_attention(q, k, v, mask, self.dropout, self.training)
        out = out.transpose(1, 2).reshape(B, Tq, self.d_model)  # concatenate the heads
        return self.out_proj(out), (weights if need_weights else None)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}"


def _combine(attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None) -> torch.Tensor | None:
    """One bool mask broadcastable to (B, H, Tq, Tk), True = may attend."""
    mask = None
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise TypeError("attn_mask must be bool (True = may attend)")
        mask = attn_mask[None, None] if attn_mask.dim() == 2 else attn_mask[:, None]
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise TypeError("key_padding_mask must be bool (True = padding)")
        keep = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, Tk)
        mask = keep if mask is None else mask & keep
    return mask
