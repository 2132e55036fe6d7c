"""WGAN's critic loss and clipping, and WGAN-GP's gradient penalty in closed form and by gradcheck."""

import pytest
import torch
from torch import nn

from deepatlas.zoo.generative.gan import MLPDiscriminator
from deepatlas.zoo.generative.wgan import clip_weights, critic_loss, generator_loss, wgan_mlp_critic, wgan_objective
from deepatlas.zoo.generative.wgan_gp import gradient_penalty, wgan_gp_objective


def test_critic_loss_is_the_negated_wasserstein_estimate():
    real, fake = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, -0.5])
    assert critic_loss(real, fake).item() == pytest.approx(0.0 - 2.0)
    assert generator_loss(fake).item() == pytest.approx(0.0)


def test_clipping_bounds_every_parameter():
    critic = MLPDiscriminator(hidden=16)
    clip_weights(critic, 0.01)
    assert all(p.abs().max() <= 0.01 for p in critic.parameters())
    assert all(p.abs().max() <= 0.05 for p in wgan_mlp_critic(clip=0.05).parameters())


def test_wgan_objective_clips_after_every_critic_step():
    obj = wgan_objective(clip=0.02, n_critic=4)
    critic = MLPDiscriminator(hidden=8)
    obj.constrain(critic)
    assert obj.n_critic == 4 and all(p.abs().max() <= 0.02 for p in critic.parameters())


@pytest.mark.parametrize("kw", [{"clip": 0.0}, {"n_critic": 0}])
def test_wgan_objective_rejects_bad_settings(kw):
    with pytest.raises(ValueError):
        wgan_objective(**kw)


@pytest.mark.parametrize("kw", [{"lam": -1.0}, {"n_critic": 0}])
def test_wgan_gp_objective_rejects_bad_settings(kw):
    with pytest.raises(ValueError):
        wgan_gp_objective(**kw)


def test_penalty_of_a_linear_critic_is_its_slope_minus_one_squared():
    critic = nn.Linear(3, 1).double()
    x_real, x_fake = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    gp = gradient_penalty(lambda x: critic(x)[:, 0], x_real, x_fake)
    torch.testing.assert_close(gp, (critic.weight.norm() - 1).square())


def test_penalty_on_images_uses_the_norm_over_all_pixels():
    """f(x) = |x|^2 / 2 has gradient x, so the penalty is the mean of (|x_hat| - 1)^2 at the same x_hat."""
    x_real = torch.randn(6, 1, 4, 4, dtype=torch.float64)
    x_fake = torch.randn(6, 1, 4, 4, dtype=torch.float64)
    gp = gradient_penalty(lambda x: 0.5 * x.flatten(1).square().sum(1), x_real, x_fake,
                          generator=torch.Generator().manual_seed(3))
    eps = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(3)).double()
    x_hat = eps * x_real + (1 - eps) * x_fake
    torch.testing.assert_close(gp, (x_hat.flatten(1).norm(dim=1) - 1).square().mean())


def test_penalty_gradient_reaches_the_critic_weights():
    """The penalty is a function of the critic's weights through a first derivative; gradcheck its gradient."""
    g = torch.Generator().manual_seed(0)
    x_real, x_fake = torch.randn(5, 2, generator=g).double(), torch.randn(5, 2, generator=g).double()
    w1 = torch.randn(2, 6, generator=g).double().requires_grad_(True)
    w2 = torch.randn(6, generator=g).double().requires_grad_(True)

    def penalty(w1, w2):
        return gradient_penalty(lambda x: torch.tanh(x @ w1) @ w2, x_real, x_fake,
                                generator=torch.Generator().manual_seed(1))

    assert torch.autograd.gradcheck(penalty, (w1, w2))


def test_penalty_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(lambda x: x.sum(1), torch.randn(4, 2), torch.randn(3, 2))
