"""Mass-spring and pendulum trajectories: symplectic integration conserves the known energy."""

import math

import pytest
import torch

from deepatlas.data import physics


def test_mass_spring_matches_closed_form():
    tr = physics.trajectories("mass_spring", 4, seed=0, t_end=20.0, dt=0.1, substeps=20)
    # q(t) = A sin(t + phi): q(t) = q_0 cos t + p_0 sin t
    q0, p0 = tr.q[:, :1], tr.p[:, :1]
    exact = q0 * torch.cos(tr.t) + p0 * torch.sin(tr.t)
    assert (tr.q - exact).abs().max() < 1e-3


@pytest.mark.parametrize("system", physics.SYSTEMS)
def test_energy_conserved_over_long_rollouts(system):
    tr = physics.trajectories(system, 16, seed=1, t_end=200.0, dt=0.1)
    e = tr.energy()
    assert ((e - e[:, :1]).abs() / e[:, :1]).max() < 1e-3  # bounded, O(dt^2), never drifting
    assert e[:, 0].min() >= 0.3 - 1e-9 and e[:, 0].max() <= 1.5 + 1e-9


@pytest.mark.parametrize("system", physics.SYSTEMS)
def test_derivatives_are_hamiltons_equations(system):
    tr = physics.trajectories(system, 3, seed=2, t_end=1.0)
    q, p = tr.q.clone().requires_grad_(), tr.p.clone().requires_grad_()
    dh_dq, dh_dp = torch.autograd.grad(physics.energy(system, q, p).sum(), (q, p))
    assert torch.allclose(tr.dq, dh_dp) and torch.allclose(tr.dp, -dh_dq)


def test_leapfrog_is_time_reversible():
    q, p = torch.tensor([0.3, 1.0], dtype=torch.float64), torch.tensor([0.5, -0.2], dtype=torch.float64)
    qs, ps = physics.leapfrog("pendulum", q, p, 0.05, 100)
    back_q, back_p = physics.leapfrog("pendulum", qs[-1], -ps[-1], 0.05, 100)
    assert torch.allclose(back_q[-1], q, atol=1e-12) and torch.allclose(-back_p[-1], p, atol=1e-12)


def test_deterministic_and_bad_arguments():
    a = physics.trajectories("pendulum", 3, seed=4, t_end=1.0, noise=0.01)
    b = physics.trajectories("pendulum", 3, seed=4, t_end=1.0, noise=0.01)
    assert torch.equal(a.q, b.q)
    with pytest.raises(ValueError, match="unknown system"):
        physics.energy("spring", a.q, a.p)
    with pytest.raises(ValueError, match="separatrix|energy_range"):
        physics.trajectories("pendulum", 3, seed=0, energy_range=(1.0, 2 * physics.GRAVITY + 1))
    assert math.isclose(physics.GRAVITY, 3.0)
