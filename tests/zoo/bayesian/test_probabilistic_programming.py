"""The effect handlers, and generic inference on Bayesian linear regression against its closed form."""

import math

import pytest
import torch
from torch.distributions import HalfNormal, Normal

from deepatlas.zoo.bayesian import bayesian_linear_regression as blr
from deepatlas.zoo.bayesian.probabilistic_programming import (
    Latents, blr_model, effective_sample_size, infer_hmc, infer_importance, log_joint_fn, observe, run_traced,
    sample, seeded, substitute, trace,
)


def _data(n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g, dtype=torch.float64) * 4 - 2
    y = 0.5 - 1.2 * x + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    return x, y


def test_trace_records_sites_and_the_log_joint():
    x, y = _data()
    w = torch.tensor([0.3, -1.0], dtype=torch.float64)
    tr = run_traced(blr_model, x, y, 1.0, 0.5, values={"w": w})
    assert set(tr.sites) == {"w", "y"} and tr.sites["y"]["observed"] and not tr.sites["w"]["observed"]
    expected = Normal(0.0, 1.0).log_prob(w).sum() + Normal(w[0] + w[1] * x, 0.5).log_prob(y).sum()
    torch.testing.assert_close(tr.log_joint(), expected)
    torch.testing.assert_close(tr.log_likelihood(), Normal(w[0] + w[1] * x, 0.5).log_prob(y).sum())
    assert torch.equal(tr.latents()["w"], w)


def test_handlers_leave_plain_calls_alone_and_unwind():
    assert observe("y", Normal(0.0, 1.0), torch.tensor(2.0)) == 2.0
    with substitute({"z": torch.tensor(5.0)}):
        assert sample("z", Normal(0.0, 1.0)) == 5.0
        assert sample("other", Normal(0.0, 1e-12)).abs() < 1e-6  # not substituted: drawn
    with trace() as tr:
        sample("a", Normal(0.0, 1.0))
    assert list(tr.sites) == ["a"]
    from deepatlas.zoo.bayesian import probabilistic_programming as ppl
    assert ppl._STACK == []


def test_seeded_draws_are_reproducible_and_follow_the_prior():
    def model():
        return sample("z", Normal(torch.full((20_000,), 3.0), 2.0))

    with seeded(torch.Generator().manual_seed(0)):
        a = model()
    with seeded(torch.Generator().manual_seed(0)):
        b = model()
    assert torch.equal(a, b)
    assert abs(a.mean().item() - 3) < 0.05 and abs(a.std().item() - 2) < 0.05


def test_log_joint_fn_flattens_the_latents():
    x, y = _data()
    layout, theta0 = Latents.of(blr_model, x, y, 1.0, 0.5, generator=torch.Generator().manual_seed(0))
    assert layout.shapes == {"w": torch.Size([2])} and theta0.shape == (2,)
    theta = torch.tensor([0.1, 0.2], dtype=torch.float64)
    expected = run_traced(blr_model, x, y, 1.0, 0.5, values={"w": theta}).log_joint()
    torch.testing.assert_close(log_joint_fn(blr_model, x, y, 1.0, 0.5, layout=layout)(theta), expected)


def test_hmc_over_the_program_matches_the_conjugate_posterior():
    x, y = _data()
    m, S = blr.posterior(blr.linear_features(x[:, None]), y, 1.0, 4.0)
    draws, accept = infer_hmc(blr_model, x, y, 1.0, 0.5, n_samples=800, n_warmup=150, n_leapfrog=8,
                              generator=torch.Generator().manual_seed(1))
    w = draws["w"]
    sd = S.diagonal().sqrt()
    assert accept > 0.5
    assert ((w.mean(0) - m).abs() / sd).max() < 0.15
    assert ((w.std(0) / sd) - 1).abs().max() < 0.15


def test_importance_sampling_matches_the_conjugate_posterior_when_the_data_are_few():
    x, y = _data(3, seed=2)
    m, S = blr.posterior(blr.linear_features(x[:, None]), y, 1.0, 4.0)
    draws, weights = infer_importance(blr_model, x, y, 1.0, 0.5, n_samples=2000,
                                      generator=torch.Generator().manual_seed(3))
    assert effective_sample_size(weights) > 50
    mean = weights @ draws["w"]
    assert ((mean - m).abs() / S.diagonal().sqrt()).max() < 0.15


def test_errors_are_clear():
    def twice():
        sample("a", Normal(0.0, 1.0))
        sample("a", Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="appears twice"):
        run_traced(twice)

    def positive():
        sample("s", HalfNormal(1.0))

    with pytest.raises(ValueError, match="real-valued latents only"):
        Latents.of(positive)
    assert math.isfinite(run_traced(positive).log_joint().item())
