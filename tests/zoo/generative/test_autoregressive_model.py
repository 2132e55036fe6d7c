"""The autoregressive algorithm: one-pass scoring is the sum of the step-by-step conditionals, sampling
follows the (tempered) conditionals, and the diversity measures."""

import math

import pytest
import torch

from deepatlas.zoo.generative.autoregressive_model import distinct_ngrams, sample_sequences, score, unigram_entropy
from deepatlas.zoo.sequence.gpt import GPT


def test_one_pass_score_equals_the_step_by_step_chain_rule():
    torch.manual_seed(0)
    net = GPT(7, 16, 1, 2, 16).double().eval()
    x = torch.randint(0, 7, (3, 10))
    with torch.no_grad():
        steps = sum(net(x[:, :t])[:, -1].log_softmax(-1).gather(-1, x[:, t:t + 1])[:, 0] for t in range(1, 10))
        assert torch.allclose(score(net, x), steps)


class _Fixed(torch.nn.Module):
    """A 'network' whose next-token logits are always log(0.7), log(0.2), log(0.1)."""
    block_size = 8

    def forward(self, x):
        return torch.tensor([0.7, 0.2, 0.1]).log().expand(*x.shape, 3)


def test_sampling_follows_the_tempered_conditionals():
    g = torch.Generator().manual_seed(0)
    prompt = torch.zeros(4000, 1, dtype=torch.long)
    for tau in (0.5, 1.0, 2.0):
        seqs, top = sample_sequences(_Fixed(), prompt, 2, tau, g)
        p = torch.tensor([0.7, 0.2, 0.1]) ** (1 / tau)
        p = p / p.sum()
        freq = torch.bincount(seqs[:, 1:].flatten(), minlength=3).float() / seqs[:, 1:].numel()
        assert (freq - p).abs().max() < 0.02
        assert abs(top.float().mean() - p[0]) < 0.02  # 'picked the most likely' happens with probability p_0


def test_distinct_ngrams_and_entropy():
    rep = torch.tensor([[1, 2, 1, 2, 1, 2]])
    assert distinct_ngrams(rep, 2) == pytest.approx(2 / 5)
    assert distinct_ngrams(torch.arange(6)[None], 3) == 1.0
    assert unigram_entropy(torch.tensor([[0, 1, 2, 3]]), 5) == pytest.approx(math.log(4))
