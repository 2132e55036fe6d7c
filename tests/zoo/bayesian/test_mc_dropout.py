"""MC dropout: the predictive moments from masks, the learned noise, reproducible masks."""

import pytest
import torch

from deepatlas.zoo.bayesian.mc_dropout import DropoutMLP, train_mc_dropout


def test_predictive_is_the_moments_of_the_passes_plus_noise():
    net = DropoutMLP([1, 16, 1], p=0.3, noise_var=0.05, generator=torch.Generator().manual_seed(0)).double()
    x = torch.randn(4, 1, dtype=torch.float64)
    mean, var = net.predictive(x, n_samples=50)
    net.generator.manual_seed(0)
    f = torch.stack([net.sample_function(x) for _ in range(50)])
    net2 = DropoutMLP([1, 16, 1], p=0.3, noise_var=0.05, generator=torch.Generator().manual_seed(0)).double()
    mean2, var2 = net2.predictive(x, n_samples=50)
    torch.testing.assert_close(mean, mean2)  # same generator seed, same masks
    assert f.shape == (50, 4)
    assert (var >= 0.05 - 1e-12).all()


def test_without_dropout_every_pass_agrees():
    net = DropoutMLP([1, 16, 1], p=0.0)
    x = torch.randn(4, 1)
    mean, var = net.predictive(x, 10)
    torch.testing.assert_close(var, net.noise_var.detach().expand(4))


def test_dropout_rate_and_scaling():
    # inverted dropout: a unit survives with probability 1 - p and is scaled by 1 / (1 - p)
    net = DropoutMLP([1, 2000, 1], p=0.25, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        net.layers[0].weight.fill_(1.0)
        net.layers[0].bias.zero_()
        net.layers[1].weight.fill_(1 / 2000)
        net.layers[1].bias.zero_()
        f = net.sample_function(torch.ones(1, 1))
    assert abs(f.item() - 1.0) < 0.05


def test_training_learns_the_noise_level():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(100, 1, generator=g) * 4 - 2
    y = torch.sin(2 * x[:, 0]) + 0.3 * torch.randn(100, generator=g)
    net = DropoutMLP([1, 32, 32, 1], p=0.05, generator=g)
    train_mc_dropout(net, x, y, steps=500, lr=2e-2)
    assert 0.2 < net.noise_var.sqrt().item() < 0.45


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="one output"):
        DropoutMLP([1, 8, 2])
    with pytest.raises(ValueError, match="dropout probability"):
        DropoutMLP([1, 8, 1], p=1.0)
