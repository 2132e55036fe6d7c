"""The MLP against a torch.nn.Sequential twin in float64, the linear collapse, and the labs' helpers."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepatlas.registry import create_model
from deepatlas.zoo.fundamentals.neuron import shifted_blobs
from deepatlas.zoo.fundamentals.mlp import (
    ACTIVATIONS, MLP, accuracy, best_linear_layer, collapse,
)

TORCH_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "identity": nn.Identity}


def twin(net: MLP) -> nn.Sequential:
    """The same weights in torch.nn.Linear layers with torch's activation modules between them."""
    layers = []
    for layer in net.layers:
        ref = nn.Linear(layer.in_features, layer.out_features).double()
        with torch.no_grad():
            ref.weight.copy_(layer.weight)
            ref.bias.copy_(layer.bias)
        layers += [ref, TORCH_ACTIVATIONS[net.activation]()]
    return nn.Sequential(*layers[:-1])


def test_every_activation_has_a_torch_twin():
    assert set(ACTIVATIONS) == set(TORCH_ACTIVATIONS)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("sizes", [[3, 1], [3, 7, 2], [5, 8, 8, 4]], ids=str)
def test_values_and_gradients_match_torch(activation, sizes):
    net = MLP(sizes, activation, generator=torch.Generator().manual_seed(0)).double()
    ref = twin(net)
    x = torch.randn(16, sizes[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out, out_ref = net(x), ref(x)
    torch.testing.assert_close(out, out_ref, rtol=1e-13, atol=1e-14)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = torch.autograd.grad(out, list(net.parameters()), upstream)
    grads_ref = torch.autograd.grad(out_ref, list(ref.parameters()), upstream)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-14)


def test_global_seed_draws_the_same_weights_as_nn_linear():
    # perceptron/xor builds MLP([2, 8, 1]) under the runner's global seed: same start as before
    torch.manual_seed(0)
    net = MLP([2, 8, 1])
    torch.manual_seed(0)
    ref = [nn.Linear(2, 8), nn.Linear(8, 1)]
    for mine, theirs in zip(net.layers, ref):
        torch.testing.assert_close(mine.weight, theirs.weight)
        torch.testing.assert_close(mine.bias, theirs.bias)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=6), seed=st.integers(0, 2**31 - 1))
def test_without_activation_the_stack_is_one_affine_map(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    net = MLP(sizes, "identity", generator=g).double()
    w, b = collapse(net)
    assert w.shape == (sizes[-1], sizes[0]) and b.shape == (sizes[-1],)
    x = torch.randn(10, sizes[0], generator=g, dtype=torch.float64)
    torch.testing.assert_close(net(x), x @ w.T + b, rtol=1e-12, atol=1e-12)


def test_with_tanh_the_stack_is_not_affine():
    net = MLP([2, 16, 1], "tanh", generator=torch.Generator().manual_seed(0)).double()
    w, b = collapse(net)  # what the layers would compute without their activation
    x = 2 * torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert (net(x) - (x @ w.T + b)).abs().max() > 1e-2


def test_best_linear_layer_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g, dtype=torch.float64)
    y = ((x[:, 0] + 0.5 * x[:, 1] + 0.8 * torch.randn(200, generator=g, dtype=torch.float64)) > 0.3).long()
    net = best_linear_layer(x, y)
    ref = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(x.numpy(), y.numpy())  # C=1e12: no penalty
    torch.testing.assert_close(net.layers[0].weight, torch.from_numpy(ref.coef_), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net.layers[0].bias, torch.from_numpy(ref.intercept_), rtol=1e-5, atol=1e-6)


def test_accuracy_for_one_logit_and_for_many():
    assert accuracy(torch.tensor([[2.0], [-1.0], [0.5]]), torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)
    assert accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5


def test_shifted_blobs_are_balanced_and_reproducible():
    x, y = shifted_blobs(100, 0.35, torch.Generator().manual_seed(0))
    x2, _ = shifted_blobs(100, 0.35, torch.Generator().manual_seed(0))
    assert x.shape == (100, 2) and y.sum() == 50 and torch.equal(x, x2)
    # the class means sit at (1, 1) and (2.5, 2.5)
    torch.testing.assert_close(x[y == 1].mean(0) - x[y == 0].mean(0), torch.tensor([1.5, 1.5]), atol=0.2, rtol=0)


def test_clear_errors_and_registry():
    with pytest.raises(ValueError, match="at least input and output sizes"):
        MLP([4])
    with pytest.raises(ValueError, match="unknown activation 'step'"):
        MLP([2, 1], "step")  # a threshold has no useful gradient
    net = create_model("mlp", sizes=[4, 3, 2], activation="relu")
    assert net(torch.randn(5, 4)).shape == (5, 2)
