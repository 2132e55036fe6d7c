"""LTC: the fused step keeps the state within its reversal potentials, for any step size."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.dynamics.liquid_network import LTCCell, LTCNetwork


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 100.0))
def test_state_stays_bounded_by_reversal_potentials(seed, dt):
    g = torch.Generator().manual_seed(seed)
    cell = LTCCell(2, 6, generator=g).double()
    x = torch.zeros(3, 6, dtype=torch.float64)
    lo, hi = torch.minimum(cell.A, torch.zeros(6)), torch.maximum(cell.A, torch.zeros(6))
    for _ in range(20):
        x = cell(10 * torch.randn(3, 2, generator=g, dtype=torch.float64), x, dt)
        assert (x >= lo - 1e-9).all() and (x <= hi + 1e-9).all()


def test_fused_step_converges_to_the_ode_solution():
    """Many small fused steps agree with a fine explicit Euler solution of the LTC ODE."""
    g = torch.Generator().manual_seed(0)
    cell = LTCCell(1, 4, unfolds=500, generator=g).double()
    inp, x0 = torch.randn(1, 1, generator=g, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.float64)
    x = x0
    for _ in range(4000):
        f = torch.sigmoid(cell.w_in(inp) + cell.w_rec(x))
        x = x + 5e-4 * (-(torch.exp(-cell.log_tau) + f) * x + f * cell.A)
    assert torch.allclose(cell(inp, x0, 2.0), x, atol=3e-3)


def test_network_shapes_with_irregular_steps():
    net = LTCNetwork(2, 5, 3)
    assert net(torch.randn(4, 7, 2), torch.rand(7)).shape == (4, 7, 3)
