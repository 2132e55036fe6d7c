"""DMN: the input module against torch's GRU, gates over the facts, shapes."""

import pytest
import torch
from torch import nn

from deepatlas.data.babi import babi_task
from deepatlas.nn.recurrent import GRUCell
from deepatlas.zoo.memory.dmn import DMN


def torch_gru_like(cell: GRUCell) -> nn.GRU:
    gru = nn.GRU(cell.input_size, cell.hidden_size, batch_first=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(gru, f"{name}_l0").copy_(getattr(cell, name))
    return gru


def test_facts_are_gru_states_at_sentence_ends_of_the_whole_story():
    torch.manual_seed(0)
    data = babi_task(1, n=3, seed=0, max_sentences=4)
    net = DMN(len(data.vocab), d=6).double()
    gru = torch_gru_like(net.input_gru)
    states = net.encode(net.input_gru, data.story.flatten(1))  # (B, S*W, d)
    W = data.story.shape[2]
    for b in range(3):
        words = data.story[b].flatten()
        real = words[words.ne(0)]
        out, _ = gru(net.embed(real)[None])  # torch's GRU over the real words only
        ends = data.story[b].ne(0).sum(1).cumsum(0)[: int(data.lengths[b])] - 1  # index of each sentence's last word
        torch.testing.assert_close(states[b, W - 1::W][: int(data.lengths[b])], out[0, ends])


def test_gates_are_a_distribution_over_real_facts():
    torch.manual_seed(0)
    data = babi_task(1, n=5, seed=1, max_sentences=6)
    net = DMN(len(data.vocab), d=8, passes=3)
    logits, gates = net(data.story, data.question)
    assert logits.shape == (5, len(data.vocab)) and gates.shape == (5, 3, 6)
    torch.testing.assert_close(gates.sum(-1), torch.ones(5, 3))
    empty = ~data.story.ne(0).any(-1)
    assert gates.masked_select(empty[:, None, :].expand_as(gates)).eq(0).all()


def test_padding_words_in_the_question_change_nothing():
    torch.manual_seed(0)
    data = babi_task(1, n=4, seed=2)
    net = DMN(len(data.vocab), d=8).double()
    logits, _ = net(data.story, data.question)
    padded, _ = net(data.story, nn.functional.pad(data.question, (0, 3)))
    torch.testing.assert_close(padded, logits)


def test_bad_arguments():
    with pytest.raises(ValueError, match="passes"):
        DMN(20, passes=0)
