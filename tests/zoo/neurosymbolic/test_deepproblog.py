"""DeepProbLog's compiled addition against the closed-form convolution of the two digit distributions."""

import importlib
import pytest
import torch
from torch import nn

from deepatlas.zoo.neurosymbolic.deepproblog import ADDITION, DeepProbLog, mnist_addition_model
from deepatlas.zoo.neurosymbolic.problog import Program


class Table(nn.Module):
    """A 'network' that returns learnable logits per input id, so the test controls the probabilities."""

    def __init__(self, n, k):
        super().__init__()
        self.logits = nn.Parameter(torch.randn(n, k, dtype=torch.float64))

    def forward(self, ids):
        return self.logits[ids]


def test_query_probabilities_are_the_convolution():
    torch.manual_seed(0)
    net = Table(4, 10)
    model = mnist_addition_model(net)
    a, b = torch.tensor([0, 1]), torch.tensor([2, 3])
    p = model(a, b)  # (2, 19)
    pa, pb = net(a).softmax(-1), net(b).softmax(-1)
    # P(z) = \sum_{n_1 + n_2 = z} p(n_1 | a) p(n_2 | b)
    conv = torch.stack([sum(pa[:, n] * pb[:, z - n] for n in range(10) if 0 <= z - n < 10) for z in range(19)], 1)
    assert torch.allclose(p, conv, atol=1e-14)
    assert torch.allclose(p.sum(1), torch.ones(2, dtype=torch.float64))
    g = torch.autograd.grad(p[:, 7].log().sum(), net.logits)[0]
    g_ref = torch.autograd.grad(conv[:, 7].log().sum(), net.logits)[0]
    assert torch.allclose(g, g_ref, atol=1e-12)


def test_same_numbers_as_problog_with_fixed_digit_probabilities():
    problog = importlib.import_module("problog")
    from problog.program import PrologString

    probs = [[0.2, 0.3, 0.5], [0.1, 0.6, 0.3]]
    text = "".join("; ".join(f"{probs[i][d]}::digit({x}, {d})" for d in range(3)) + ".\n"
                   for i, x in enumerate("ab")) + ADDITION + "\n"
    ref = problog.get_evaluatable().create_from(
        PrologString(text + "".join(f"query(addition(a, b, {z})).\n" for z in range(5)))).evaluate()
    ours = Program.parse(text)
    for term, p in ref.items():
        assert ours.probability(str(term)).item() == pytest.approx(p, abs=1e-9)


def test_errors():
    model = DeepProbLog(ADDITION, Table(2, 3), "digit", [0, 1, 2], ("a", "b"), ["addition(a, b, 1)"])
    with pytest.raises(ValueError, match="expected 2 inputs"):
        model(torch.tensor([0]))
