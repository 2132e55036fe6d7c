"""Meta-SGD: the learned per-parameter step is used in the inner update and receives a meta-gradient."""

import torch
from torch import nn

from deepatlas.zoo.meta.maml import MAML
from deepatlas.zoo.meta.meta_sgd import MetaSGD


def tasks():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(3, k, d, generator=g, dtype=torch.float64) for k, d in ((4, 2), (4, 1), (5, 2), (5, 1))]


def test_uniform_rates_equal_maml_and_alpha_gets_the_closed_form_gradient():
    x_s, y_s, x_q, y_q = tasks()
    torch.manual_seed(0)
    learner = nn.Linear(2, 1, bias=False).double()
    maml, meta = MAML(learner, 0.1), MetaSGD(learner, 0.1)
    torch.testing.assert_close(maml.meta_loss(x_s, y_s, x_q, y_q), meta.meta_loss(x_s, y_s, x_q, y_q))
    meta.meta_loss(x_s, y_s, x_q, y_q).backward()
    # d L_q(w - a * g) / d a = -g * grad L_q(w'), averaged over tasks (elementwise in a)
    w = learner.weight.detach().T
    expected = []
    for i in range(3):
        g = 2 / 4 * x_s[i].T @ (x_s[i] @ w - y_s[i])
        w_i = w - 0.1 * g
        g_q = 2 / 5 * x_q[i].T @ (x_q[i] @ w_i - y_q[i])
        expected.append(-g * g_q)
    torch.testing.assert_close(meta.alphas[0].grad, torch.stack(expected).mean(0).T)


def test_rates_have_the_parameters_shapes():
    meta = MetaSGD(nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1)), 0.02)
    rates = meta.rates()
    assert {n: r.shape for n, r in rates.items()} == {n: p.shape for n, p in meta.learner.named_parameters()}
    assert all((r == 0.02).all() for r in rates.values())
