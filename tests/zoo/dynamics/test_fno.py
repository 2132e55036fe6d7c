"""FNO: the spectral convolution against an explicit DFT, resolution invariance, and bad grids."""

import math

import pytest
import torch

from deepatlas.zoo.dynamics.fno import FNO1d, SpectralConv1d, rel_l2


def test_spectral_conv_matches_explicit_fourier_sum():
    g = torch.Generator().manual_seed(0)
    conv = SpectralConv1d(2, 3, modes=4, generator=g).double()
    n = 16
    v = torch.randn(5, 2, n, generator=g, dtype=torch.float64)
    x = torch.arange(n, dtype=torch.float64) / n
    # out(x) = \frac1N \sum_{|k| < 4} R(k) \hat v(k) e^{2 \pi i k x}, with R(-k) = conj R(k) for a real output
    r = torch.view_as_complex(conv.weight.detach())  # (2, 3, 4)
    angle = 2 * math.pi * torch.arange(4, dtype=torch.float64)[:, None] * x[None, :]  # (4, N)
    basis = torch.polar(torch.ones_like(angle), -angle)  # e^{-2 pi i k x}, complex128
    v_hat = v.to(torch.complex128) @ basis.T  # (5, 2, 4)
    out_hat = torch.einsum("bik,iok->bok", v_hat, r)
    out = out_hat[..., :1].real.expand(-1, -1, n).clone() / n
    for k in range(1, 4):
        out += 2 * (out_hat[..., k:k + 1] * basis[k].conj()).real / n
    assert torch.allclose(conv(v), out, atol=1e-12)


def test_same_band_limited_function_on_two_grids_gives_the_same_output():
    """The spectral part sees only modes < k_max, so a band-limited input sampled on a 4x finer grid
    gives the coarse output at the shared points, up to the pointwise layers acting on finer samples."""
    g = torch.Generator().manual_seed(1)
    conv = SpectralConv1d(1, 1, modes=5, generator=g).double()
    f = lambda x: torch.sin(2 * math.pi * x) + 0.5 * torch.cos(6 * math.pi * x)  # noqa: E731
    coarse, fine = (f(torch.arange(n, dtype=torch.float64) / n)[None, None] for n in (32, 128))
    assert torch.allclose(conv(coarse)[..., :], conv(fine)[..., ::4], atol=1e-12)
    model = FNO1d(modes=5, width=8, layers=2, generator=g).double()
    assert model(coarse[:, 0]).shape == (1, 32) and model(fine[:, 0]).shape == (1, 128)


def test_too_coarse_grid_and_metric():
    with pytest.raises(ValueError, match="modes"):
        SpectralConv1d(1, 1, modes=10)(torch.randn(1, 1, 8))
    a = torch.tensor([[3.0, 4.0]])
    assert rel_l2(a * 1.1, a).item() == pytest.approx(0.1)
