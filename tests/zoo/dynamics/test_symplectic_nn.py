"""SympNet: every map it can represent is symplectic (hypothesis); a residual MLP is not."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.dynamics.symplectic_nn import ResidualMap, SympNet, symplectic_defect


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 6), st.floats(0.1, 3.0))
def test_sympnet_is_symplectic_for_any_weights(seed, dof, n_modules, scale):
    g = torch.Generator().manual_seed(seed)
    net = SympNet(dof, width=8, modules=n_modules, generator=g).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    x = torch.randn(4, 2 * dof, generator=g, dtype=torch.float64)
    assert symplectic_defect(net, x) < 1e-8  # rounding grows with the weights drawn here


def test_residual_map_is_not_symplectic():
    net = ResidualMap(1, 16, generator=torch.Generator().manual_seed(0)).double()
    assert symplectic_defect(net, torch.randn(4, 2, dtype=torch.float64)) > 1e-3


def test_sympnet_preserves_phase_space_area():
    """det of the Jacobian = 1 (area preservation, implied by symplecticity in 2-D)."""
    net = SympNet(1, 8, 4, generator=torch.Generator().manual_seed(1)).double()
    x = torch.tensor([0.3, -0.8], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: net(v[None])[0], x)
    assert abs(torch.linalg.det(jac).item() - 1) < 1e-12
