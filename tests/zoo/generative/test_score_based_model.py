"""Score-based models: the DSM optimum is the true score (Gaussian data, closed form), the noised
mixture's moments, annealed Langevin on a known score, the eps-to-score identity."""

import math

import pytest
import torch

from deepatlas.zoo.generative.score_based_model import (
    NCSN, annealed_langevin, dsm_loss, geometric_sigmas, noised_mixture,
)


def test_dsm_optimum_is_the_score_of_the_noised_gaussian():
    """For x ~ N(m, s^2) and x~ = x + sigma z, the least-squares minimiser of the DSM objective over linear
    functions a x~ + b (a family holding the answer) is the score of N(m, s^2 + sigma^2): -(x~ - m)/(s^2 + sigma^2)."""
    g = torch.Generator().manual_seed(0)
    m, s, sigma, n = 1.5, 0.7, 0.4, 400_000
    x = m + s * torch.randn(n, generator=g, dtype=torch.float64)
    x_noisy = x + sigma * torch.randn(n, generator=g, dtype=torch.float64)
    target = -(x_noisy - x) / sigma**2  # what DSM regresses s(x~) onto
    design = torch.stack([x_noisy, torch.ones_like(x_noisy)], 1)
    a, b = torch.linalg.lstsq(design, target[:, None]).solution[:, 0]
    var = s**2 + sigma**2
    assert a.item() == pytest.approx(-1 / var, rel=0.02)
    assert b.item() == pytest.approx(m / var, rel=0.03)


def test_dsm_loss_is_smallest_for_the_true_score():
    """dsm_loss of an NCSN whose net returns the exact noised-Gaussian score beats a perturbed one."""
    sigmas = geometric_sigmas(1.0, 0.1, 3)
    x = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1))  # N(0, I) data

    class Exact(NCSN):
        def __init__(self, shift):
            super().__init__(sigmas)
            self.shift = shift

        def forward(self, x, i):
            # \nabla \log N(0, (1 + \sigma^2) I) = -x / (1 + \sigma^2)
            return -x / (1 + self.sigmas[i][:, None] ** 2) + self.shift

    exact = dsm_loss(Exact(0.0), x, torch.Generator().manual_seed(2)).item()
    off = dsm_loss(Exact(0.3), x, torch.Generator().manual_seed(2)).item()
    assert exact < off


def test_noised_mixture_moments():
    means = torch.tensor([[2.0, 0.0], [-1.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    m_t, v_t = noised_mixture(0.64, means, 0.2)
    torch.testing.assert_close(m_t, 0.8 * means)
    assert v_t == pytest.approx(0.64 * 0.04 + 0.36)


def test_annealed_langevin_samples_a_known_gaussian():
    """With the exact score of N(mu, (s^2 + sigma^2) I) at every level, the chain ends at N(mu, s^2 I)."""
    mu, s = torch.tensor([1.0, -2.0]), 0.5
    sigmas = geometric_sigmas(2.0, 0.01, 6)

    class Exact(NCSN):
        def forward(self, x, i):
            return -(x - mu) / (s**2 + self.sigmas[i][:, None] ** 2)

    g = torch.Generator().manual_seed(0)
    x = annealed_langevin(Exact(sigmas), 3 * torch.randn(4000, 2, generator=g), 200, 2e-5, g, denoise=False)
    torch.testing.assert_close(x.mean(0), mu, atol=0.05, rtol=0)
    assert x.std(0).tolist() == pytest.approx([s, s], rel=0.08)


def test_geometric_sigmas_and_bad_arguments():
    sigmas = geometric_sigmas(1.0, 0.01, 3)
    torch.testing.assert_close(sigmas, torch.tensor([1.0, 0.1, 0.01]))
    assert math.isclose(float(sigmas[0] / sigmas[1]), float(sigmas[1] / sigmas[2]), rel_tol=1e-5)
    with pytest.raises(ValueError, match="sigma_max > sigma_min"):
        geometric_sigmas(0.1, 1.0, 5)
