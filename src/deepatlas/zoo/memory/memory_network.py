"""Memory network: store every sentence in its own memory slot, pick the supporting one with a
learned score, and answer from the question and that memory.

The network has four parts: I turns input into features (here a bag of words), G writes each new
sentence into the next slot, O scores every memory against the question and takes the best one
with a hard argmax, and R scores every word of the vocabulary as the answer given the question and
the chosen memory. Because argmax has no gradient, O is trained with the supporting fact given:
a margin ranking loss pushes the true supporting memory above every other, and the true answer
above every other word.

    s(x, y) = \\Phi_x(x)^\\top U^\\top U \\Phi_y(y),   o_1 = \\arg\\max_i s_O(x, m_i),
    r = \\arg\\max_w s_R([x, m_{o_1}], w),
    \\mathcal{L} = \\sum_{\\bar f \\ne m_{o_1}} [\\gamma - s_O(x, m_{o_1}) + s_O(x, \\bar f)]_+
                 + \\sum_{\\bar r \\ne r} [\\gamma - s_R([x, m_{o_1}], r) + s_R([x, m_{o_1}], \\bar r)]_+

Weston, Chopra & Bordes, "Memory Networks", ICLR 2015 (arXiv 1410.3916). One supporting memory
(k = 1), enough for single-supporting-fact questions. The paper orders memories by write time
with extra pairwise features; here the time a memory was written is one more feature of it
(a learned vector per age, as in MemN2N's temporal encoding). Its lab is memn2n/babi.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.data.babi import age, sentence_mask
from deepatlas.registry import register_model


class MemNN(nn.Module):
    """A k = 1 memory network over bag-of-words sentences.

    forward(story (B, S, W), question (B, Q), support=None) -> (answer scores (B, V), memory
    scores (B, S)). R reads the memory O picks, or the given `support` (B,) during training."""

    def __init__(self, vocab_size: int, d: int = 32, memory_size: int = 10):
        super().__init__()
        if min(vocab_size, d, memory_size) < 1:
            raise ValueError("MemNN needs vocab_size, d and memory_size >= 1")
        # U Phi(.) for each feature slot: the question's words, a memory's words, its write time
        self.o_question = nn.Embedding(vocab_size, d, padding_idx=0)
        self.o_memory = nn.Embedding(vocab_size, d, padding_idx=0)
        self.o_time = nn.Embedding(memory_size, d)
        self.r_question = nn.Embedding(vocab_size, d, padding_idx=0)
        self.r_memory = nn.Embedding(vocab_size, d, padding_idx=0)
        self.r_time = nn.Embedding(memory_size, d)
        self.r_answer = nn.Embedding(vocab_size, d)
        for p in self.parameters():
            nn.init.normal_(p, std=0.1)

    def forward(self, story: torch.Tensor, question: torch.Tensor, support: torch.Tensor | None = None):
        mask = sentence_mask(story)  # (B, S)
        when = age(mask)  # (B, S)
        # s_O(x, m_i) = (U_O \Phi_x(x))^\top (U_O \Phi_y(m_i))
        x_o = self.o_question(question).sum(1)  # (B, d)
        m_o = self.o_memory(story).sum(2) + self.o_time(when)  # (B, S, d)
        memory_scores = torch.einsum("bd,bsd->bs", x_o, m_o).masked_fill(~mask, float("-inf"))
        # o_1 = \arg\max_i s_O(x, m_i)
        o1 = memory_scores.argmax(1) if support is None else support  # (B,)
        rows = torch.arange(len(story), device=story.device)
        # s_R([x, m_{o_1}], w) = (U_R \Phi_x([x, m_{o_1}]))^\top (U_R \Phi_y(w))
        x_r = self.r_question(question).sum(1) + self.r_memory(story[rows, o1]).sum(1) + self.r_time(when[rows, o1])
        return x_r @ self.r_answer.weight.T, memory_scores


def margin_ranking_loss(scores: torch.Tensor, target: torch.Tensor, gamma: float = 0.1) -> torch.Tensor:
    """sum over wrong candidates of max(0, gamma - s(true) + s(wrong)), averaged over the batch.

    scores (B, C) with -inf on candidates that do not exist (empty memory slots)."""
    true = scores.gather(1, target[:, None])  # (B, 1)
    # [\gamma - s(x, y) + s(x, \bar y)]_+ for every \bar y \ne y
    hinge = (gamma - true + scores).clamp(min=0)
    wrong = torch.ones_like(scores, dtype=torch.bool).scatter(1, target[:, None], False)
    return hinge.masked_fill(~wrong, 0).sum(1).mean()


@register_model("memnn", card="memory-network",
                example=lambda: (torch.randint(1, 20, (2, 10, 6)), torch.randint(1, 20, (2, 3))))
def memnn(vocab_size: int = 20, **kw) -> MemNN:
    return MemNN(vocab_size, **kw)
