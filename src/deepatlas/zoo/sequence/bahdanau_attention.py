"""Bahdanau (additive) attention: the decoder looks back at every encoder state at every step.

Instead of one context vector for the whole input, the decoder state s_{t-1} scores each encoder
state h_j with a one-hidden-layer network; a softmax over the source turns the scores into an
alignment alpha_t, and the context c_t is the alpha-weighted average of the encoder states. The
alignment is learned with the rest of the model, and plotted it shows which input the decoder read.

    e_{tj} = v_a^\\top \\tanh(W_a s_{t-1} + U_a h_j),   \\alpha_{tj} = \\frac{\\exp e_{tj}}{\\sum_k \\exp e_{tk}},
    c_t = \\sum_j \\alpha_{tj} h_j

Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to Align and Translate",
ICLR 2015 (arXiv 1409.0473). The model that uses it is deepatlas.zoo.sequence.seq2seq.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis of scores (B, S); mask (B, S) bool, True = a real source position.
    Padded positions get weight exactly 0 (and no gradient)."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


class BahdanauAttention(nn.Module):
    """Additive attention of a query (the decoder state, size query_size) over keys (encoder states,
    size key_size) through a hidden layer of size attn_size.

    forward(query (B, Dq), keys (B, S, Dk), mask (B, S) bool True = attend, projected_keys=None)
        -> (context (B, Dk), weights (B, S))
    `project_keys(keys)` computes U_a h_j once per source sentence: it does not depend on t, so the
    decoder passes it back in at every step (the paper's own remark on the cost)."""

    def __init__(self, query_size: int, key_size: int, attn_size: int):
        super().__init__()
        if min(query_size, key_size, attn_size) < 1:
            raise ValueError(f"BahdanauAttention sizes must be >= 1, got {query_size}, {key_size}, {attn_size}")
        self.W_a = nn.Linear(query_size, attn_size, bias=False)
        self.U_a = nn.Linear(key_size, attn_size)
        self.v_a = nn.Linear(attn_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:  # (B, S, Dk) -> (B, S, A)
        return self.U_a(keys)

    def score(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        # e_{tj} = v_a^\top \tanh(W_a s_{t-1} + U_a h_j)
        return self.v_a(torch.tanh(self.W_a(query)[:, None, :] + projected_keys))[..., 0]  # (B, S)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None,
                projected_keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        # \alpha_{tj} = \mathrm{softmax}_j(e_{tj})
        alpha = masked_softmax(self.score(query, projected_keys), mask)  # (B, S)
        # c_t = \sum_j \alpha_{tj} h_j
        context = torch.einsum("bs,bsd->bd", alpha, keys)  # (B, Dk)
        return context, alpha
