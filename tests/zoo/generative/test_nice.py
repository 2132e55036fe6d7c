"""NICE: additive coupling and scaling against autograd Jacobians; volume preservation."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.nn.flows import alternating_masks
from deepatlas.zoo.generative.nice import AdditiveCoupling, Scaling, nice_flow
from tests.nn.test_flows import _randomise, check_layer


@settings(max_examples=10, deadline=None)
@given(dim=st.integers(2, 6), seed=st.integers(0, 10_000), parity=st.integers(0, 1))
def test_additive_coupling_is_volume_preserving(dim, seed, parity):
    g = torch.Generator().manual_seed(seed)
    layer = AdditiveCoupling(alternating_masks(dim, 2)[parity], hidden=8, generator=g).double()
    _randomise(layer, g)
    x = torch.randn(3, dim, generator=g, dtype=torch.float64)
    check_layer(layer, x)
    assert layer(x)[1].abs().max() == 0  # \det J = 1


def test_scaling_and_whole_flow():
    g = torch.Generator().manual_seed(0)
    scaling = Scaling(3).double()
    _randomise(scaling, g)
    check_layer(scaling, torch.randn(4, 3, generator=g, dtype=torch.float64))
    flow = nice_flow(3, 4, hidden=8, generator=g).double()
    _randomise(flow, g, 0.3)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    check_layer(flow, x)
    # the whole flow's log-det is the scaling's alone
    torch.testing.assert_close(flow(x)[1], flow.layers[-1].log_s.sum().expand(4))
