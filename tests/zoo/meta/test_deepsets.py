"""DeepSets: permutation invariance (and equivariance of the equivariant layer), masks, pooling."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.meta.deepsets import DeepSets, EquivariantLayer


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 10_000), pool=st.sampled_from(["sum", "mean"]))
def test_permutation_invariant(n, seed, pool):
    torch.manual_seed(0)
    net = DeepSets(3, 2, hidden=16, d_code=8, pool=pool).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, n, 3, generator=g, dtype=torch.float64)
    perm = torch.randperm(n, generator=g)
    torch.testing.assert_close(net(x), net(x[:, perm]), rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_equivariant_layer(n, seed):
    torch.manual_seed(0)
    layer = EquivariantLayer(3, 5).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, 3, generator=g, dtype=torch.float64)
    perm = torch.randperm(n, generator=g)
    torch.testing.assert_close(layer(x)[:, perm], layer(x[:, perm]), rtol=1e-12, atol=1e-12)


def test_sum_decomposition_and_mask():
    torch.manual_seed(0)
    net = DeepSets(2, 3, hidden=8, d_code=4, pool="mean").double()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    torch.testing.assert_close(net(x), net.rho(net.phi(x).mean(1)))
    mask = torch.tensor([[True, True, True, False, False]] * 2)
    torch.testing.assert_close(net(x, mask), net(x[:, :3]))  # padding is ignored


def test_bad_pool():
    with pytest.raises(ValueError, match="pool"):
        DeepSets(2, 2, pool="max")
