"""MemN2N against a loop written from the paper's equations; the memory network's pieces."""

import math

import pytest
import torch

from deepatlas.data.babi import babi_task
from deepatlas.zoo.memory.memn2n import MemN2N, position_encoding, support_hits
from deepatlas.zoo.memory.memory_network import MemNN, margin_ranking_loss


def reference(net: MemN2N, story: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
    """One story at a time, one word at a time: Sukhbaatar et al., section 2 and 4.1."""
    d, K = net.d, net.hops

    def embed(k, words):
        words = [w for w in words.tolist() if w]
        J = len(words)
        out = torch.zeros(d, dtype=torch.float64)
        kk = torch.arange(1, d + 1, dtype=torch.float64)
        for j, w in enumerate(words, start=1):
            out = out + ((1 - j / J) - (kk / d) * (1 - 2 * j / J)) * net.E[k].weight[w]
        return out

    logits = []
    for b in range(len(story)):
        n = int(story[b].ne(0).any(-1).sum())
        u = embed(0, question[b])
        for k in range(1, K + 1):
            m = torch.stack([embed(k - 1, story[b, i]) + net.T[k - 1][n - 1 - i] for i in range(n)])
            c = torch.stack([embed(k, story[b, i]) + net.T[k][n - 1 - i] for i in range(n)])
            p = torch.softmax(m @ u, 0)
            u = u + p @ c
        logits.append(net.E[K].weight @ u)
    return torch.stack(logits)


@pytest.fixture
def stories():
    return babi_task(1, n=4, seed=0, max_sentences=5)


def test_forward_and_gradients_match_the_loop(stories):
    torch.manual_seed(0)
    net = MemN2N(len(stories.vocab), d=8, hops=3, memory_size=5).double()
    out = net(stories.story, stories.question)
    ref = reference(net, stories.story, stories.question)
    torch.testing.assert_close(out, ref)
    grads = torch.autograd.grad(out.square().sum(), list(net.parameters()))
    ref_grads = torch.autograd.grad(ref.square().sum(), list(net.parameters()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


def test_position_encoding_formula_and_padding():
    words = torch.tensor([[5, 7, 9, 0, 0]])
    ell = position_encoding(words, d=4)[0]  # (5, 4)
    for j in range(1, 4):
        for k in range(1, 5):
            assert math.isclose(ell[j - 1, k - 1].item(), (1 - j / 3) - (k / 4) * (1 - 2 * j / 3), abs_tol=1e-6)
    assert ell[3:].eq(0).all()


def test_padding_words_and_empty_slots_change_nothing(stories):
    torch.manual_seed(1)
    net = MemN2N(len(stories.vocab), d=8, hops=2, memory_size=7).double()
    out = net(stories.story, stories.question)
    wider = torch.nn.functional.pad(stories.story, (0, 2))  # two more padding words per sentence
    longer = torch.nn.functional.pad(stories.story, (0, 0, 0, 2))  # two more empty sentence slots
    torch.testing.assert_close(net(wider, stories.question), out)
    torch.testing.assert_close(net(longer, stories.question), out)
    attention = net.attention  # (B, K, 7)
    empty = ~longer.ne(0).any(-1)
    assert attention.masked_select(empty[:, None, :].expand_as(attention)).eq(0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[:2], dtype=torch.float64))


def test_adjacent_tying_parameter_count():
    V, d, K, S = 20, 16, 3, 10
    net = MemN2N(V, d, K, S)
    # K + 1 embeddings (A^1 = B, A^{k+1} = C^k, W^T = C^K) and K + 1 temporal tables
    assert sum(p.numel() for p in net.parameters()) == (K + 1) * V * d + (K + 1) * S * d


def test_bad_arguments():
    with pytest.raises(ValueError, match="hops"):
        MemN2N(20, hops=0)
    net = MemN2N(20, memory_size=4)
    with pytest.raises(ValueError, match="memory_size"):
        net(torch.ones(1, 5, 3, dtype=torch.int64), torch.ones(1, 3, dtype=torch.int64))


def test_support_hits():
    attention = torch.tensor([[[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]]])  # (B=1, K=2, S=3)
    hits, weights = support_hits(attention, torch.tensor([1]))
    assert hits == [1.0, 0.0]
    assert weights == pytest.approx([0.7, 0.3])


# --- the memory network of Weston et al. ---------------------------------------------------------

def test_margin_ranking_loss_by_hand():
    scores = torch.tensor([[1.0, 0.95, 0.5, float("-inf")]])
    # gamma - s(true) + s(wrong) for the two real wrong candidates: 0.1 - 1 + 0.95 = 0.05 and 0.1 - 1 + 0.5 < 0
    assert margin_ranking_loss(scores, torch.tensor([0])).item() == pytest.approx(0.05)


def test_memory_network_reads_the_memory_it_picks(stories):
    torch.manual_seed(0)
    net = MemNN(len(stories.vocab), d=8, memory_size=5).double()
    answer, memory = net(stories.story, stories.question)
    empty = ~stories.story.ne(0).any(-1)
    assert torch.isinf(memory[empty]).all() and torch.isfinite(memory[~empty]).all()
    picked = memory.argmax(1)
    torch.testing.assert_close(net(stories.story, stories.question, picked)[0], answer)
    other = (picked + 1) % stories.lengths
    assert not torch.allclose(net(stories.story, stories.question, other)[0], answer)
