"""The NNGP-parameterised ReLU MLP: its prior matches the arc-cosine kernel, draws are reproducible."""

import pytest
import torch

from deepatlas.nn.kernels import arccos_relu
from deepatlas.zoo.bayesian.nngp import NNGPMLP


def test_resample_is_deterministic_and_follows_the_prior_variances():
    a = NNGPMLP(3, 500, 2, weight_var=2.0, bias_var=0.3, generator=torch.Generator().manual_seed(0))
    b = NNGPMLP(3, 500, 2, weight_var=2.0, bias_var=0.3, generator=torch.Generator().manual_seed(0))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    W = a.weights[1]  # (500, 500): fan-in 500
    assert abs(W.var().item() * 500 / 2.0 - 1) < 0.02
    assert abs(a.biases[1].var().item() / 0.3 - 1) < 0.2


def test_output_covariance_over_many_nets_is_the_nngp_kernel():
    # one hidden layer: E[f f^T] equals the arc-cosine kernel at any width; Monte Carlo over 4,000 nets
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 2, generator=g, dtype=torch.float64)
    net = NNGPMLP(2, 50, 1, weight_var=1.5, bias_var=0.2).double()
    outs = []
    with torch.no_grad():
        for _ in range(4000):
            net.resample(g)
            outs.append(net(x))
    f = torch.stack(outs)  # (S, 4)
    K = arccos_relu(x, x, 1, 1.5, 0.2)
    torch.testing.assert_close(f.T @ f / len(f), K, atol=0.06 * K.max().item(), rtol=0)


def test_empirical_kernel_is_the_conditional_covariance():
    net = NNGPMLP(2, 64, 2, generator=torch.Generator().manual_seed(2)).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    a = net.features(x)
    torch.testing.assert_close(net.empirical_kernel(x), net.bias_var + net.weight_var * a @ a.T / 64)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="depth"):
        NNGPMLP(depth=0)
