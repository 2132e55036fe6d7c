"""ODE solvers against closed forms and torchdiffeq; adjoint gradients against backprop through the solver."""

import math

import pytest
import torch
import torchdiffeq

from deepatlas.zoo.dynamics.neural_ode import (SPIRAL_A, NeuralODE, ODEFunc, odeint, odeint_adjoint, saved_bytes,
                                                spiral_trajectory)

D = torch.float64


def linear_field(lam):
    return lambda t, y: lam * y


def test_fixed_step_orders_of_convergence():
    """Halving the step divides the error by 2 for Euler and by 16 for RK4."""
    lam, y0, t = torch.tensor([-1.0, 0.7], dtype=D), torch.tensor([1.0, -2.0], dtype=D), torch.tensor([0.0, 1.0], dtype=D)
    exact = y0 * torch.exp(lam)
    for method, order in (("euler", 1), ("rk4", 4)):
        e1, e2 = ((odeint(linear_field(lam), y0, t, method=method, step_size=h)[-1] - exact).abs().max()
                  for h in (0.02, 0.01))
        assert abs(math.log2(e1 / e2) - order) < 0.1


@pytest.mark.parametrize("rtol", [1e-4, 1e-7, 1e-10])
def test_dopri5_meets_its_tolerance_on_closed_forms(rtol):
    # y' = y^2 has y = y0 / (1 - y0 t); the harmonic oscillator y'' = -y has a rotation
    t = torch.linspace(0, 0.9, 7, dtype=D)
    y = odeint(lambda t, y: y**2, torch.tensor([1.0], dtype=D), t, rtol=rtol, atol=rtol * 1e-2)
    assert ((y[:, 0] - 1 / (1 - t)).abs() / (1 / (1 - t))).max() < 100 * rtol
    rot = lambda t, y: torch.stack([y[1], -y[0]])  # noqa: E731
    t = torch.linspace(0, 10, 5, dtype=D)
    y = odeint(rot, torch.tensor([1.0, 0.0], dtype=D), t, rtol=rtol, atol=rtol)
    assert (y[:, 0] - torch.cos(t)).abs().max() < 200 * rtol


def test_backwards_in_time_and_time_dependent_field():
    f = lambda t, y: torch.cos(t) * y  # noqa: E731  y = y0 exp(sin t)
    t = torch.tensor([2.0, 1.0, 0.0], dtype=D)
    y = odeint(f, torch.tensor([3.0], dtype=D), t, rtol=1e-10, atol=1e-12)
    assert torch.allclose(y[:, 0], 3.0 * torch.exp(torch.sin(t) - math.sin(2.0)), rtol=1e-8)


def test_against_torchdiffeq_on_the_spiral():
    a = torch.tensor(SPIRAL_A, dtype=D)
    f = lambda t, y: y**3 @ a  # noqa: E731
    y0, t = torch.tensor([[2.0, 0.0], [1.0, 0.5]], dtype=D), torch.linspace(0, 4, 17, dtype=D)
    # Euler takes the same steps in both: equal to rounding
    ts = torch.linspace(0, 2, 41, dtype=D)
    ours = odeint(f, y0, ts, method="euler", step_size=0.005)
    theirs = torchdiffeq.odeint(f, y0, ts, method="euler", options={"step_size": 0.005})
    assert torch.isfinite(ours).all() and torch.allclose(ours, theirs, atol=1e-9)
    # dopri5: different step sequences (torchdiffeq interpolates), the same solution to the tolerance
    exact = torchdiffeq.odeint(f, y0, t, rtol=1e-10, atol=1e-12)
    ours = odeint(f, y0, t, rtol=1e-6, atol=1e-8)
    theirs = torchdiffeq.odeint(f, y0, t, rtol=1e-6, atol=1e-8)
    assert (ours - exact).abs().max() < 1e-4 and (theirs - exact).abs().max() < 1e-4
    assert (ours - exact).abs().max() < 3 * (theirs - exact).abs().max()


def test_rk4_is_classical_rk4_not_torchdiffeqs_three_eighths_rule():
    """torchdiffeq's 'rk4' is the 3/8-rule variant; both are 4th order and agree as the step shrinks."""
    a = torch.tensor(SPIRAL_A, dtype=D)
    f = lambda t, y: y**3 @ a  # noqa: E731
    y0, t = torch.tensor([[2.0, 0.0]], dtype=D), torch.linspace(0, 2, 3, dtype=D)
    for h, tol in ((0.01, 1e-3), (0.001, 1e-7)):
        ours = odeint(f, y0, t, method="rk4", step_size=h)
        theirs = torchdiffeq.odeint(f, y0, t, method="rk4", options={"step_size": h})
        assert (ours - theirs).abs().max() < tol


def _grads(solve, func, y0, t, target):
    y0 = y0.clone().requires_grad_()
    loss = (solve(func, y0, t, rtol=1e-9, atol=1e-11) - target).pow(2).sum()
    return torch.autograd.grad(loss, [y0, *func.parameters()])


def test_adjoint_gradients_equal_direct_backprop_and_torchdiffeq():
    g = torch.Generator().manual_seed(0)
    func = ODEFunc(2, 16, depth=2, cube=True, generator=g).double()
    y0 = torch.tensor([[2.0, 0.0], [0.5, -1.0]], dtype=D)
    t = torch.linspace(0, 1.5, 4, dtype=D)
    target = torch.randn(4, 2, 2, generator=g, dtype=D)
    direct = _grads(odeint, func, y0, t, target)
    adjoint = _grads(odeint_adjoint, func, y0, t, target)
    reference = _grads(torchdiffeq.odeint_adjoint, func, y0, t, target)
    for d, a, r in zip(direct, adjoint, reference):
        assert torch.allclose(a, d, rtol=1e-6, atol=1e-8)
        assert torch.allclose(a, r, rtol=1e-6, atol=1e-8)


def test_adjoint_memory_does_not_grow_with_steps():
    func = ODEFunc(2, 16, cube=True, generator=torch.Generator().manual_seed(1)).double()
    y0, t = torch.tensor([[2.0, 0.0]], dtype=D), torch.linspace(0, 5, 3, dtype=D)
    sizes = {}
    for rtol in (1e-4, 1e-9):
        for name, solve in (("direct", odeint), ("adjoint", odeint_adjoint)):
            func.nfe = 0
            _, sizes[name, rtol] = saved_bytes(lambda: solve(func, y0, t, rtol=rtol, atol=rtol))
            sizes["nfe", rtol] = func.nfe
    assert sizes["nfe", 1e-9] > 2 * sizes["nfe", 1e-4]
    assert sizes["direct", 1e-9] > 2 * sizes["direct", 1e-4]
    assert sizes["adjoint", 1e-9] == sizes["adjoint", 1e-4] == (3 * 2 + 3) * 8  # just the outputs and times


def test_spiral_reference_and_model_shapes():
    t, y = spiral_trajectory(50, 5.0)
    assert y.shape == (50, 1, 2) and torch.allclose(y[0], torch.tensor([[2.0, 0.0]], dtype=D))
    model = NeuralODE(ODEFunc(3, 8), method="rk4", step_size=0.1)
    assert model(torch.randn(4, 3), torch.linspace(0, 1, 6)).shape == (6, 4, 3)


def test_bad_arguments():
    f = linear_field(torch.tensor(-1.0))
    y0 = torch.ones(2)
    with pytest.raises(ValueError, match="monotone|increasing"):
        odeint(f, y0, torch.tensor([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="unknown method"):
        odeint(f, y0, torch.tensor([0.0, 1.0]), method="rk45")
    with pytest.raises(ValueError, match="1-D"):
        odeint(f, y0, torch.tensor(1.0))
    with pytest.raises(RuntimeError, match="steps"):
        odeint(lambda t, y: y**2, torch.ones(1, dtype=D), torch.tensor([0.0, 2.0], dtype=D), max_steps=200)
