"""Flow plumbing: every layer's inverse and log-det against autograd Jacobians (float64), the flow's
density integrating to 1, the logit transform, the fit loop."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.nn.flows import (
    AffineCoupling, Flow, Logit, Permute, alternating_masks, standard_normal_log_prob,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread avoids the many-fold slowdown of spinning threads on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def check_layer(layer, x: torch.Tensor, atol: float = 1e-8) -> None:
    """f^{-1}(f(x)) = x, and the layer's log-det equals log|det| of the autograd Jacobian, per sample."""
    y, log_det = layer(x)
    assert y.shape == x.shape and log_det.shape == (len(x),)
    torch.testing.assert_close(layer.inverse(y), x, atol=atol, rtol=0)
    for xi, ld in zip(x, log_det):
        jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], xi)  # (*s, *s)
        jac = jac.reshape(xi.numel(), xi.numel())
        torch.testing.assert_close(torch.linalg.slogdet(jac).logabsdet, ld, atol=atol, rtol=1e-9)


def _randomise(module: torch.nn.Module, g: torch.Generator, scale: float = 0.5) -> None:
    """Move every parameter off its identity initialisation so the checks see a non-trivial map."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))


@settings(max_examples=15, deadline=None)
@given(dim=st.integers(2, 7), seed=st.integers(0, 10_000), parity=st.integers(0, 1), ctx=st.sampled_from([0, 3]))
def test_affine_coupling_inverse_and_log_det(dim, seed, parity, ctx):
    g = torch.Generator().manual_seed(seed)
    layer = AffineCoupling(alternating_masks(dim, 2)[parity], hidden=8, context=ctx, generator=g).double()
    _randomise(layer, g)
    x = torch.randn(3, dim, generator=g, dtype=torch.float64)
    if ctx:
        c = torch.randn(3, ctx, generator=g, dtype=torch.float64)
        y, ld = layer(x, c)
        torch.testing.assert_close(layer.inverse(y, c), x, atol=1e-10, rtol=0)
        for xi, ci, ldi in zip(x, c, ld):
            jac = torch.autograd.functional.jacobian(lambda v: layer(v[None], ci[None])[0][0], xi)
            torch.testing.assert_close(torch.linalg.slogdet(jac).logabsdet, ldi)
    else:
        check_layer(layer, x)
        kept = layer.mask.bool()
        torch.testing.assert_close(layer(x)[0][:, kept], x[:, kept])


@settings(max_examples=10, deadline=None)
@given(dim=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_permutations_are_volume_preserving_inverses(dim, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, dim, generator=g, dtype=torch.float64)
    for layer in (Permute.reverse(dim), Permute.shuffle(dim, g)):
        check_layer(layer, x)
    torch.testing.assert_close(Permute.reverse(dim)(x)[0], x.flip(1))


def test_logit_transform(float64):
    layer = Logit(17, alpha=0.05)
    x = torch.rand(4, 5, dtype=torch.float64) * 17
    check_layer(layer, x)
    with pytest.raises(ValueError, match="alpha"):
        Logit(17, alpha=0.5)


def test_standard_normal_log_prob_matches_torch(float64):
    z = torch.randn(6, 3, 2)
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum((1, 2))
    torch.testing.assert_close(standard_normal_log_prob(z), ref)


def test_untrained_flow_density_integrates_to_one(float64):
    """A random (untrained, non-trivial) 2-D flow's density sums to ~1 on a fine grid."""
    g = torch.Generator().manual_seed(0)
    flow = Flow([AffineCoupling(b, hidden=16, generator=g) for b in alternating_masks(2, 4)], (2,)).double()
    _randomise(flow, g, scale=0.2)
    n, lim = 600, 9.0
    c = torch.linspace(-lim, lim, n + 1)
    c = (c[1:] + c[:-1]) / 2
    grid = torch.cartesian_prod(c, c)
    with torch.no_grad():
        total = flow.log_prob(grid).exp().sum() * (2 * lim / n) ** 2
    assert abs(total.item() - 1) < 2e-3
    with torch.no_grad():  # and the flow is not the identity: its density is not the base density
        assert (flow.log_prob(grid[::997]) - standard_normal_log_prob(grid[::997])).abs().max() > 0.1


def test_flow_sample_inverts_forward(float64):
    g = torch.Generator().manual_seed(1)
    flow = Flow([AffineCoupling(b, hidden=8, generator=g) for b in alternating_masks(3, 3)], (3,)).double()
    _randomise(flow, g)
    x = flow.sample(5, torch.Generator().manual_seed(2))
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(flow(x)[0], z)


def test_flow_rejects_bad_shapes():
    flow = Flow([Permute.reverse(2)], (2,))
    with pytest.raises(ValueError, match="shape"):
        flow(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="at least one layer"):
        Flow([], (2,))
