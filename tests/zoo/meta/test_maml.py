"""MAML, first-order MAML and Reptile against closed forms on linear regression, in float64."""

import pytest
import torch
from torch import nn

from deepatlas.zoo.meta.maml import MAML, adaptation_curve, inner_loop, per_task, task_losses
from deepatlas.zoo.meta.reptile import Reptile, reptile_step


def linear_tasks(B=3, K=4, Q=5, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_s, x_q = torch.randn(B, K, d, generator=g, dtype=torch.float64), torch.randn(B, Q, d, generator=g, dtype=torch.float64)
    y_s, y_q = torch.randn(B, K, 1, generator=g, dtype=torch.float64), torch.randn(B, Q, 1, generator=g, dtype=torch.float64)
    return x_s, y_s, x_q, y_q


def linear_learner(d=3, seed=1):
    torch.manual_seed(seed)
    return nn.Linear(d, 1, bias=False).double()


def closed_form_meta_gradient(w, x_s, y_s, x_q, y_q, alpha, first_order):
    """For f(x) = x w: w_i' = (I - 2a X^T X / K) w + 2a X^T y / K; grad = mean_i A_i^T (2/Q) X_q^T (X_q w_i' - y_q)."""
    B, K, d = x_s.shape
    grads = []
    for i in range(B):
        X, Xq = x_s[i], x_q[i]
        A = torch.eye(d, dtype=w.dtype) - 2 * alpha / K * X.T @ X
        w_i = w - alpha * 2 / K * X.T @ (X @ w - y_s[i])
        g_q = 2 / Xq.shape[0] * Xq.T @ (Xq @ w_i - y_q[i])
        grads.append(g_q if first_order else A.T @ g_q)
    return torch.stack(grads).mean(0)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_closed_form(first_order):
    x_s, y_s, x_q, y_q = linear_tasks()
    model = MAML(linear_learner(), alpha=0.1, first_order=first_order)
    model.meta_loss(x_s, y_s, x_q, y_q).backward()
    w = model.learner.weight.detach().T  # (d, 1)
    expected = closed_form_meta_gradient(w, x_s, y_s, x_q, y_q, 0.1, first_order)
    torch.testing.assert_close(model.learner.weight.grad, expected.T, rtol=1e-10, atol=1e-12)


def test_second_order_differs_from_first_order():
    x_s, y_s, x_q, y_q = linear_tasks()
    grads = []
    for fo in (False, True):
        model = MAML(linear_learner(), alpha=0.1, first_order=fo)
        model.meta_loss(x_s, y_s, x_q, y_q).backward()
        grads.append(model.learner.weight.grad)
    assert (grads[0] - grads[1]).abs().max() > 1e-3


def test_batched_inner_loop_equals_one_task_at_a_time():
    torch.manual_seed(0)
    learner = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    x, y = torch.randn(4, 6, 1, dtype=torch.float64), torch.randn(4, 6, 1, dtype=torch.float64)
    params = dict(learner.named_parameters())
    batched = inner_loop(learner, per_task(params, 4), x, y, 0.05, steps=3, create_graph=False)
    for i in range(4):
        clone = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).double()
        clone.load_state_dict(learner.state_dict())
        opt = torch.optim.SGD(clone.parameters(), lr=0.05)
        for _ in range(3):
            opt.zero_grad()
            (clone(x[i]) - y[i]).square().mean().backward()
            opt.step()
        for name, p in clone.named_parameters():
            torch.testing.assert_close(batched[name][i], p, rtol=1e-12, atol=1e-12)


def test_per_parameter_rates_and_curve():
    x_s, y_s, x_q, y_q = linear_tasks()
    model = MAML(linear_learner(), alpha=0.1)
    scalar = inner_loop(model.learner, per_task(dict(model.learner.named_parameters()), 3), x_s, y_s, 0.1, 1, False)
    rates = {"weight": torch.full((1, 3), 0.1, dtype=torch.float64)}
    vector = inner_loop(model.learner, per_task(dict(model.learner.named_parameters()), 3), x_s, y_s, rates, 1, False)
    torch.testing.assert_close(scalar["weight"], vector["weight"])
    curve = adaptation_curve(model, x_s, y_s, x_s, y_s, max_steps=5, batch=2)
    assert len(curve) == 6 and all(a >= b for a, b in zip(curve, curve[1:])), "support loss falls with small steps"
    start = task_losses(model.learner, per_task(dict(model.learner.named_parameters()), 3), x_s, y_s).mean()
    assert curve[0] == pytest.approx(start.item())


def test_reptile_one_task_one_step_is_sgd():
    x_s, y_s, _, _ = linear_tasks(B=1)
    model = Reptile(linear_learner(), alpha=0.1, steps=1)
    w = model.learner.weight.detach().T.clone()
    expected = w - 0.1 * 2 / 4 * x_s[0].T @ (x_s[0] @ w - y_s[0])
    reptile_step(model, x_s, y_s, epsilon=1.0)
    torch.testing.assert_close(model.learner.weight.detach(), expected.T)


def test_reptile_moves_towards_the_mean_of_adapted_weights():
    x_s, y_s, _, _ = linear_tasks(B=3)
    model = Reptile(linear_learner(), alpha=0.1, steps=2)
    w0 = model.learner.weight.detach().clone()
    adapted = inner_loop(model.learner, {n: p.detach().requires_grad_() for n, p in
                                         per_task(dict(model.learner.named_parameters()), 3).items()},
                         x_s, y_s, 0.1, 2, False)["weight"].mean(0)
    reptile_step(model, x_s, y_s, epsilon=0.25)
    torch.testing.assert_close(model.learner.weight.detach(), w0 + 0.25 * (adapted - w0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        MAML(linear_learner(), steps=0)
    with pytest.raises(ValueError, match="alpha"):
        MAML(linear_learner(), alpha=-1.0)
