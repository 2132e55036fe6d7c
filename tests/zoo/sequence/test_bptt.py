"""BPTT helpers: autograd's dL/dh_t equals the hand-written Jacobian product; the rate fit is right."""

import math

import torch

from deepatlas.nn.recurrent import LSTMCell
from deepatlas.zoo.sequence.bptt import fit_rate, jacobian_product, orthogonal_rnn, state_gradients


def setup(radius, scale=1.0, T=25, H=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    cell = orthogonal_rnn(4, H, radius, g)
    x = scale * torch.randn(3, T, 4, generator=g, dtype=torch.float64)
    u = torch.randn(H, generator=g, dtype=torch.float64)
    return cell, x, u


def test_orthogonal_cell_has_every_singular_value_at_the_radius():
    cell, _, _ = setup(1.7)
    s = torch.linalg.svdvals(cell.weight_hh.detach())
    torch.testing.assert_close(s, torch.full_like(s, 1.7))
    assert abs(torch.linalg.eigvals(cell.weight_hh.detach()).abs().max().item() - 1.7) < 1e-9


def test_autograd_equals_the_explicit_product_of_jacobians():
    for radius in (0.5, 1.0, 2.5):
        cell, x, u = setup(radius)
        grads, hs = state_gradients(cell, x, u)
        assert grads.shape == hs.shape == (25, 3, 12)
        torch.testing.assert_close(grads[-1], u.expand(3, -1))  # dL/dh_T = u
        torch.testing.assert_close(jacobian_product(cell, hs, grads[-1]), grads, rtol=1e-10, atol=1e-14)


def test_lstm_gradients_cover_h_and_c():
    torch.manual_seed(0)
    cell = LSTMCell(4, 6).double()
    x = torch.randn(2, 7, 4, dtype=torch.float64)
    grads, hs = state_gradients(cell, x, torch.ones(6, dtype=torch.float64))
    assert grads.shape == (7, 2, 12) and hs.shape == (7, 2, 6)
    assert (grads[-1, :, 6:] != 0).any()  # dL/dc_T flows through h_T = o tanh(c_T)


def test_fit_rate_recovers_an_exact_exponential():
    k = torch.arange(30, dtype=torch.float64)
    norms = torch.exp(-0.3 * k).flip(0)  # by time: the last step (lag 0) has norm 1
    grads = norms[:, None, None] * torch.tensor([[[3.0, 4.0]]], dtype=torch.float64) / 5
    log_norm, rate, r2 = fit_rate(grads)
    assert abs(rate + 0.3) < 1e-12 and abs(r2 - 1) < 1e-12 and abs(log_norm[0]) < 1e-12


def test_linear_regime_rate_is_log_radius_and_never_above_it():
    for radius in (0.5, 0.8):
        cell, x, u = setup(radius, scale=1e-4, T=40)
        _, rate, _ = fit_rate(state_gradients(cell, x, u)[0])
        assert abs(rate - math.log(radius)) < 0.01  # tanh' = 1 near zero: the factor is W_hh itself
    for radius in (0.7, 1.5, 3.0):
        cell, x, u = setup(radius)
        _, rate, _ = fit_rate(state_gradients(cell, x, u)[0])
        assert rate <= math.log(radius) + 1e-9
