"""Dynamic memory network: read the text with a GRU, then pass over its facts several times,
each pass attending to the facts that matter given the question and what was found so far.

Four modules. The input module runs a GRU over the words of the whole story and keeps its state at
the end of every sentence as that sentence's fact c_t. The question module runs a GRU over the
question, q. The episodic memory module makes several passes: in pass i a small network scores
every fact against q and the current memory m^{i-1}, a GRU runs over the facts with each update
scaled by its gate, its final state is the episode e^i, and a second GRU folds it into the memory.
The answer module decodes the final memory.

    g^i_t = G(c_t, m^{i-1}, q),   h^i_t = g^i_t \\mathrm{GRU}(c_t, h^i_{t-1}) + (1 - g^i_t) h^i_{t-1},
    e^i = h^i_{T},   m^i = \\mathrm{GRU}(e^i, m^{i-1}),   m^0 = q

Kumar, Irsoy, Ondruska, Iyyer, Bradbury, Gulrajani, Zhong, Paulus & Socher, "Ask Me Anything:
Dynamic Memory Networks for Natural Language Processing", ICML 2016 (arXiv 1506.07285). As in the
paper, the gates can be trained with the supporting facts as extra labels (the lab does this for
the first pass); unlike the paper, the gate scores are normalised over the facts with a softmax,
as the DMN+ of Xiong, Merity & Socher (ICML 2016) does. The answer is one word, so the answer GRU
takes one step. Its lab is memn2n/babi.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.data.babi import sentence_mask
from deepatlas.nn.recurrent import GRUCell
from deepatlas.registry import register_model


class DMN(nn.Module):
    """forward(story (B, S, W), question (B, Q)) -> (answer logits (B, vocab), the gates of every
    pass (B, passes, S)); the gates are returned so that training can supervise them."""

    def __init__(self, vocab_size: int, d: int = 32, passes: int = 2):
        super().__init__()
        if min(vocab_size, d, passes) < 1:
            raise ValueError("DMN needs vocab_size, d and passes >= 1")
        self.passes = passes
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)  # shared by the input and question modules
        self.input_gru = GRUCell(d, d)
        self.question_gru = GRUCell(d, d)
        self.W_b = nn.Parameter(torch.empty(d, d))  # the bilinear terms c^T W q and c^T W m of z
        nn.init.normal_(self.W_b, std=d ** -0.5)
        self.gate = nn.Sequential(nn.Linear(7 * d + 2, d), nn.Tanh(), nn.Linear(d, 1))
        self.episode_gru = GRUCell(d, d)
        self.memory_gru = GRUCell(d, d)
        self.answer_gru = GRUCell(d, d)
        self.answer = nn.Linear(d, vocab_size)

    def encode(self, gru: GRUCell, words: torch.Tensor) -> torch.Tensor:
        """GRU states over word ids (B, L) -> (B, L, d); a padding word leaves the state as it was."""
        x = self.embed(words)  # (B, L, d)
        h = x.new_zeros(x.shape[0], x.shape[2])
        states = []
        for t in range(words.shape[1]):
            h = torch.where(words[:, t, None].ne(0), gru(x[:, t], h), h)
            states.append(h)
        return torch.stack(states, 1)

    def features(self, c: torch.Tensor, m: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """z(c, m, q) for every fact: c (B, S, d), m and q (B, d) -> (B, S, 7d + 2)."""
        m, q = m[:, None].expand_as(c), q[:, None].expand_as(c)
        cWq = torch.einsum("bsd,de,bse->bs", c, self.W_b, q)[..., None]
        cWm = torch.einsum("bsd,de,bse->bs", c, self.W_b, m)[..., None]
        # z = [c, m, q, c \circ q, c \circ m, |c - q|, |c - m|, c^\top W q, c^\top W m]
        return torch.cat([c, m, q, c * q, c * m, (c - q).abs(), (c - m).abs(), cWq, cWm], -1)

    def forward(self, story: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        B, S, W = story.shape
        mask = sentence_mask(story)  # (B, S)
        # input module: facts are the GRU's states at the end of each sentence
        c = self.encode(self.input_gru, story.reshape(B, S * W))[:, W - 1::W]  # (B, S, d)
        q = self.encode(self.question_gru, question)[:, -1]  # (B, d)
        m = q  # m^0 = q
        gates = []
        for _ in range(self.passes):
            # g_t = G(c_t, m, q) = \mathrm{softmax}_t(W^{(2)} \tanh(W^{(1)} z + b^{(1)}) + b^{(2)})
            score = self.gate(self.features(c, m, q))[..., 0].masked_fill(~mask, float("-inf"))
            g = torch.softmax(score, dim=1)  # (B, S)
            h = torch.zeros_like(q)
            for t in range(S):
                # h_t = g_t \mathrm{GRU}(c_t, h_{t-1}) + (1 - g_t) h_{t-1}
                h = g[:, t, None] * self.episode_gru(c[:, t], h) + (1 - g[:, t, None]) * h
            # m^i = \mathrm{GRU}(e^i, m^{i-1}),  e^i = h_T
            m = self.memory_gru(h, m)
            gates.append(g)
        # answer module: one GRU step from a_0 = m with the question as input
        return self.answer(self.answer_gru(q, m)), torch.stack(gates, 1)


@register_model("dmn", card="dmn",
                example=lambda: (torch.randint(1, 20, (2, 4, 6)), torch.randint(1, 20, (2, 3))))
def dmn(vocab_size: int = 20, **kw) -> DMN:
    return DMN(vocab_size, **kw)
