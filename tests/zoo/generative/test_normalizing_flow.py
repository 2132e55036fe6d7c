"""MADE is autoregressive (gradient test), its sampler inverts its density, and the flow-vs-MADE models."""

import torch

from deepatlas.zoo.generative.normalizing_flow import MADE, MadeDensity


def test_made_outputs_depend_only_on_earlier_inputs():
    made = MADE(6, hidden=32, depth=2, generator=torch.Generator().manual_seed(0)).double()
    x = torch.randn(1, 6, dtype=torch.float64)
    jac_mu = torch.autograd.functional.jacobian(lambda v: made(v)[0][0], x)[:, 0]  # (6 outputs, 6 inputs)
    jac_alpha = torch.autograd.functional.jacobian(lambda v: made(v)[1][0], x)[:, 0]
    for jac in (jac_mu, jac_alpha):
        assert (jac.triu() == 0).all()  # output d ignores inputs >= d
        assert (jac.tril(-1) != 0).sum() > 0  # and does use earlier ones


def test_made_sampler_matches_its_density():
    """Sequential sampling is the inverse of the autoregressive map: z = (x - mu(x)) e^{-alpha(x)} recovers it."""
    made = MADE(4, hidden=16, generator=torch.Generator().manual_seed(1)).double()
    with torch.no_grad():
        for p in made.parameters():
            p.add_(0.3 * torch.randn_like(p))
    g = torch.Generator().manual_seed(2)
    x = made.sample(5, g)
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mu, alpha = made(x)
    torch.testing.assert_close((x - mu) * torch.exp(-alpha), z)
    ref = torch.distributions.Normal(mu, alpha.exp()).log_prob(x).sum(1)
    torch.testing.assert_close(made.log_prob(x), ref)


def test_made_density_on_pixels_is_finite():
    model = MadeDensity(4, 17, hidden=16)
    x = torch.randint(0, 17, (3, 4)).float() + 0.5
    assert torch.isfinite(model.log_prob(x)).all()
    s = model.sample(3, torch.Generator().manual_seed(0))
    # the logit's inverse maps R onto (-\alpha K, (1 - \alpha) K) / (1 - 2\alpha), a little wider than [0, K)
    a = model.logit.alpha
    assert ((s > -a * 17 / (1 - 2 * a)) & (s < (1 - a) * 17 / (1 - 2 * a))).all()
