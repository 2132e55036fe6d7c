"""HyperNetwork: generated weights drive the target exactly as loaded weights would; gradients reach g only."""

import torch

from deepatlas.zoo.meta.hypernetwork import HyperNetwork, task_embedding
from deepatlas.zoo.meta.maml import sinusoid_learner


def test_generated_weights_run_the_target():
    torch.manual_seed(0)
    hyper = HyperNetwork(sinusoid_learner(8), d_z=3, hidden=16).double()
    z, x = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 5, 1, dtype=torch.float64)
    out = hyper(z, x)
    weights = hyper.weights(z)
    for i in range(2):
        clone = sinusoid_learner(8).double()
        clone.load_state_dict({n: w[i] for n, w in weights.items()})
        torch.testing.assert_close(out[i], clone(x[i]))


def test_starts_from_the_targets_own_initialisation_and_trains_only_g():
    torch.manual_seed(0)
    target = sinusoid_learner(8)
    init = {n: p.detach().clone() for n, p in target.named_parameters()}
    hyper = HyperNetwork(target, d_z=3, hidden=16)
    with torch.no_grad():
        hyper.g[-1].weight.zero_()
    weights = hyper.weights(torch.randn(4, 3))
    for n, w in weights.items():
        torch.testing.assert_close(w, init[n].expand_as(w))
    hyper(torch.randn(4, 3), torch.randn(4, 5, 1)).sum().backward()
    assert all(p.grad is None for p in hyper.target.parameters())
    assert all(p.grad is not None for p in hyper.g.parameters())


def test_task_embedding():
    z = task_embedding(torch.tensor([2.0]), torch.tensor([torch.pi / 2]))
    torch.testing.assert_close(z, torch.tensor([[2.0, 1.0, 0.0]]), atol=1e-6, rtol=0)
