"""The GAN objective against torch's BCE, its closed-form optimum, and the training step's bookkeeping."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.generative.gan import (
    MINIMAX,
    NON_SATURATING,
    MLPDiscriminator,
    MLPGenerator,
    Objective,
    discriminator_loss,
    generator_loss_non_saturating,
    generator_loss_saturating,
    train_step,
)


def test_discriminator_loss_is_binary_cross_entropy():
    real = torch.randn(7, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(5, dtype=torch.float64, requires_grad=True)
    ours = discriminator_loss(real, fake)
    ref = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
           + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(ours, ref)
    g_ours = torch.autograd.grad(ours, (real, fake))
    g_ref = torch.autograd.grad(ref, (real, fake))
    torch.testing.assert_close(g_ours, g_ref)


def test_generator_losses_and_their_gradients_in_closed_form():
    s = torch.linspace(-20, 20, 41, dtype=torch.float64, requires_grad=True)
    d = torch.sigmoid(s).detach()
    sat = generator_loss_saturating(s)
    torch.testing.assert_close(sat, torch.log1p(-d).mean())
    (g_sat,) = torch.autograd.grad(sat, s)
    torch.testing.assert_close(g_sat, -d / len(s))  # -D(G(z)): vanishes where D says "fake"
    ns = generator_loss_non_saturating(s)
    torch.testing.assert_close(ns, -torch.log(d).mean())
    (g_ns,) = torch.autograd.grad(ns, s)
    torch.testing.assert_close(g_ns, -(1 - d) / len(s))  # -(1 - D(G(z))): largest where D says "fake"
    assert abs(g_sat[0]) < 1e-9 < 0.02 < abs(g_ns[0])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=2, max_size=6), st.data())
def test_optimal_discriminator_gives_minus_log4_plus_2jsd(counts_p, data):
    """On K atoms with counts n_p, n_q, the best logits are log(n_p / n_q) and the loss is log 4 - 2 JSD."""
    counts_q = data.draw(st.permutations(counts_p))
    n_p, n_q = torch.tensor(counts_p, dtype=torch.float64), torch.tensor(counts_q, dtype=torch.float64)
    s_star = torch.log(n_p / n_q).requires_grad_(True)
    real = s_star.repeat_interleave(n_p.long())  # one logit per real sample, read at its atom
    fake = s_star.repeat_interleave(n_q.long())
    loss = discriminator_loss(real, fake)
    (grad,) = torch.autograd.grad(loss, s_star)
    torch.testing.assert_close(grad, torch.zeros_like(grad), atol=1e-12, rtol=0)
    p, q = n_p / n_p.sum(), n_q / n_q.sum()
    m = (p + q) / 2
    jsd = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    torch.testing.assert_close(loss.detach(), math.log(4) - 2 * jsd)


def test_train_step_runs_n_critic_d_steps_and_moves_only_g_with_opt_g():
    g = torch.Generator().manual_seed(0)
    G, D = MLPGenerator(hidden=8, generator=g), MLPDiscriminator(hidden=8, generator=g)
    calls = {"d": 0, "constrain": 0}

    def d_loss(d, x_real, x_fake):
        calls["d"] += 1
        assert not x_fake.requires_grad  # G is fixed during D's steps
        return discriminator_loss(d(x_real), d(x_fake))

    def constrain(d):
        calls["constrain"] += 1

    objective = Objective("test", d_loss, generator_loss_non_saturating, n_critic=3, constrain=constrain)
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1)
    x = torch.randn(64, 2, generator=g)
    real, noise = (lambda: x[:16]), (lambda: torch.randn(16, 2, generator=g))
    d_before = [p.clone() for p in D.parameters()]
    train_step(G, D, opt_g, opt_d, objective, real, noise)
    assert calls == {"d": 3, "constrain": 3}
    d_after_d_steps = [p.clone() for p in D.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(d_before, d_after_d_steps))
    g_before = [p.clone() for p in G.parameters()]
    objective = Objective("test", d_loss, generator_loss_non_saturating, n_critic=1)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.0)  # D frozen: only G's step can change anything
    train_step(G, D, opt_g, opt_d, objective, real, noise)
    assert all(torch.equal(a, b) for a, b in zip(d_after_d_steps, D.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(g_before, G.parameters()))


def test_objectives_differ_only_in_the_generator_loss():
    assert MINIMAX.d_loss is NON_SATURATING.d_loss
    assert MINIMAX.g_loss is generator_loss_saturating and NON_SATURATING.g_loss is generator_loss_non_saturating


def test_mlps_have_the_right_shapes():
    G, D = MLPGenerator(z_dim=3, x_dim=2, hidden=16, depth=2), MLPDiscriminator(x_dim=2, hidden=16, depth=2)
    assert G(torch.randn(5, 3)).shape == (5, 2)
    assert D(torch.randn(5, 2)).shape == (5,)


@pytest.mark.parametrize("bad", [{"hidden": 0}, {"z_dim": -1}])
def test_bad_sizes_raise(bad):
    with pytest.raises(ValueError):
        MLPGenerator(**bad)
