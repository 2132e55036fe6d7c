"""Luong (multiplicative) attention: score the decoder's current state against every encoder state.

Luong, Pham and Manning simplified Bahdanau's attention: the decoder first takes its step, then its
new state h_t queries the encoder states; the score is a plain dot product, a bilinear form with one
matrix ("general"), or a small network on the concatenation ("concat"). The context is mixed with
h_t into an attentional state h~_t that predicts the word and is fed to the next step (input feeding).

    \\mathrm{score}(h_t, \\bar h_s) = h_t^\\top \\bar h_s \\;|\\; h_t^\\top W_a \\bar h_s \\;|\\;
        v_a^\\top \\tanh(W_a [h_t; \\bar h_s]),
    \\alpha_{ts} = \\mathrm{softmax}_s(\\mathrm{score}),  c_t = \\sum_s \\alpha_{ts} \\bar h_s,
    \\tilde h_t = \\tanh(W_c [c_t; h_t])

Luong, Pham & Manning, "Effective Approaches to Attention-based Neural Machine Translation",
EMNLP 2015 (arXiv 1508.04025). The model that uses it is deepatlas.zoo.sequence.seq2seq.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.zoo.sequence.bahdanau_attention import masked_softmax

SCORES = ("dot", "general", "concat")


class LuongAttention(nn.Module):
    """Global attention with one of Luong's three scores.

    forward(query (B, Dq), keys (B, S, Dk), mask (B, S) bool True = attend, projected_keys=None)
        -> (context (B, Dk), weights (B, S))
    "dot" needs Dq == Dk and has no parameters; "general" learns W_a (Dq, Dk); "concat" learns
    W_a (A, Dq + Dk) and v_a (A,). `project_keys` precomputes W_a \\bar h_s for "general"."""

    def __init__(self, query_size: int, key_size: int, score: str = "general", attn_size: int | None = None):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"unknown Luong score {score!r}; choose one of {', '.join(SCORES)}")
        if score == "dot" and query_size != key_size:
            raise ValueError(f"the dot score needs query_size == key_size, got {query_size} and {key_size}")
        self.score_name = score
        if score == "general":
            self.W_a = nn.Linear(key_size, query_size, bias=False)  # \bar h_s \mapsto W_a \bar h_s
        elif score == "concat":
            attn_size = attn_size or query_size
            self.W_a = nn.Linear(query_size + key_size, attn_size, bias=False)
            self.v_a = nn.Linear(attn_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:  # (B, S, Dk) -> (B, S, Dq) for "general"
        return self.W_a(keys) if self.score_name == "general" else keys

    def score(self, query: torch.Tensor, keys: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        if self.score_name == "concat":
            pairs = torch.cat([query[:, None, :].expand(-1, keys.shape[1], -1), keys], dim=-1)  # (B, S, Dq+Dk)
            # \mathrm{score} = v_a^\top \tanh(W_a [h_t; \bar h_s])
            return self.v_a(torch.tanh(self.W_a(pairs)))[..., 0]  # (B, S)
        # \mathrm{score} = h_t^\top \bar h_s  (dot)  or  h_t^\top W_a \bar h_s  (general)
        return torch.einsum("bd,bsd->bs", query, projected_keys)  # (B, S)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None,
                projected_keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        # \alpha_{ts} = \mathrm{softmax}_s(\mathrm{score}(h_t, \bar h_s))
        alpha = masked_softmax(self.score(query, keys, projected_keys), mask)  # (B, S)
        # c_t = \sum_s \alpha_{ts} \bar h_s
        context = torch.einsum("bs,bsd->bd", alpha, keys)  # (B, Dk)
        return context, alpha

    def extra_repr(self) -> str:
        return f"score={self.score_name}"
