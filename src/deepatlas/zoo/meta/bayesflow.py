"""Amortised posterior inference in the spirit of BayesFlow: a summary network and a conditional
normalising flow, trained once on simulations, give the posterior for any new dataset in one pass.

Simulate: draw parameters theta from the prior and a dataset x from the model. A DeepSets summary
network h(x) compresses the dataset, in any order and of any size, into a vector; a conditional
invertible network f(theta; h) maps theta to a standard normal z. Maximum likelihood on the
simulations (the change of variables below) makes f^{-1}(z; h(x)), z ~ N(0, I), a sample of the
posterior p(theta | x), with no MCMC for new data. The flow here is a stack of affine coupling
layers (RealNVP) whose scales and shifts also see h(x).

    \\min_{\\phi,\\psi} \\mathbb{E}_{p(\\theta) p(x \\mid \\theta)} \\big[\\tfrac12 \\|f_\\phi(\\theta; h_\\psi(x))\\|^2
        - \\log |\\det J_{f_\\phi}(\\theta; h_\\psi(x))|\\big]

Radev, Mertens, Voss, Ardizzone & Köthe, "BayesFlow: Learning complex stochastic models with
invertible neural networks", IEEE TNNLS 2022 (arXiv 2003.06281); Dinh, Sohl-Dickstein & Bengio,
"Density estimation using Real NVP", ICLR 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data import split_seeds
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import Adam
from deepatlas.optim.schedules import CosineAnnealingLR
from deepatlas.registry import register_model
from deepatlas.zoo.meta.deepsets import DeepSets, mlp

LOG_2PI = math.log(2 * math.pi)


# --- the conditional flow ------------------------------------------------------------------------

class ConditionalCoupling(nn.Module):
    """Affine coupling: the dimensions in `mask` pass through and, with the condition c, set a scale and
    shift for the others. theta (B, D), c (B, C) -> (z (B, D), log|det J| (B,))."""

    def __init__(self, dim: int, d_cond: int, mask: torch.Tensor, hidden: int = 64, clamp: float = 2.0):
        super().__init__()
        self.register_buffer("mask", mask.float())  # (D,) 1 = passes through
        self.net = mlp([dim + d_cond, hidden, hidden, 2 * dim])
        self.clamp = clamp
        nn.init.zeros_(self.net[-1].weight)  # starts as the identity
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, kept: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(torch.cat([kept, c], -1)).chunk(2, -1)
        s = self.clamp * torch.tanh(s / self.clamp)  # soft-clamped log-scale, for stable training
        return s * (1 - self.mask), t * (1 - self.mask)

    def forward(self, theta: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(theta * self.mask, c)
        # z_b = \theta_b \odot e^{s(\theta_a, c)} + t(\theta_a, c),   z_a = \theta_a
        z = theta * self.mask + (1 - self.mask) * (theta * s.exp() + t)
        return z, s.sum(-1)

    def inverse(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        s, t = self._scale_shift(z * self.mask, c)
        # \theta_b = (z_b - t) \odot e^{-s}
        return z * self.mask + (1 - self.mask) * (z - t) * (-s).exp()


class ConditionalFlow(nn.Module):
    """Coupling layers alternating which half passes through: theta (B, D), c (B, C) -> z, log|det J|."""

    def __init__(self, dim: int, d_cond: int, n_layers: int = 6, hidden: int = 64):
        super().__init__()
        if dim < 2:
            raise ValueError("an affine coupling flow needs at least 2 dimensions")
        half = (torch.arange(dim) < dim // 2)
        self.layers = nn.ModuleList(ConditionalCoupling(dim, d_cond, half if i % 2 == 0 else ~half, hidden)
                                    for i in range(n_layers))

    def forward(self, theta: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = theta.new_zeros(len(theta))
        for layer in self.layers:
            theta, ld = layer(theta, c)
            log_det = log_det + ld
        return theta, log_det

    def inverse(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z, c)
        return z


class AmortisedPosterior(nn.Module):
    """A DeepSets summary of the data (mean-pooled, with log n beside it) conditioning a coupling flow.

    forward(theta (B, D), x (B, n, d_x)) -> log q(theta | x) (B,); sample(x, n_samples, g) -> (B, S, D)."""

    def __init__(self, dim: int, d_x: int = 1, d_summary: int = 16, n_layers: int = 6, hidden: int = 64):
        super().__init__()
        self.summary = DeepSets(d_x, d_summary, hidden=hidden, d_code=hidden, pool="mean")
        self.flow = ConditionalFlow(dim, d_summary + 1, n_layers, hidden)
        self.dim = dim

    def condition(self, x: torch.Tensor) -> torch.Tensor:
        """h(x) and the size of the set: (B, n, d_x) -> (B, d_summary + 1)."""
        n = x.new_full((len(x), 1), x.shape[1])
        return torch.cat([self.summary(x), n.log()], -1)

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z, log_det = self.flow(theta, self.condition(x))
        # \log q(\theta \mid x) = \log \mathcal{N}(f(\theta; h(x)); 0, I) + \log|\det J_f|
        return -0.5 * (z.square().sum(-1) + self.dim * LOG_2PI) + log_det

    @torch.no_grad()
    def sample(self, x: torch.Tensor, n_samples: int, g: torch.Generator | None = None) -> torch.Tensor:
        c = self.condition(x).repeat_interleave(n_samples, 0)  # (B * S, C)
        z = torch.randn(len(c), self.dim, generator=g).to(c)
        # \theta = f^{-1}(z; h(x)),  z \sim \mathcal{N}(0, I)
        return self.flow.inverse(z, c).view(len(x), n_samples, self.dim)


@register_model("bayesflow-gaussian", card="bayesflow", example=lambda: (torch.randn(4, 2), torch.randn(4, 9, 1)))
def bayesflow_gaussian(**kw) -> AmortisedPosterior:
    return AmortisedPosterior(dim=2, d_x=1, **kw)


# --- the simulator: a Gaussian with unknown mean and variance, normal-inverse-gamma prior -----------

@dataclass(frozen=True)
class NormalInverseGamma:
    """sigma^2 ~ InvGamma(a0, b0), mu | sigma^2 ~ N(m0, sigma^2 / kappa0), x_i ~ N(mu, sigma^2).
    Parameters are theta = (mu, log sigma); the posterior is normal-inverse-gamma again."""

    m0: float = 0.0
    kappa0: float = 1.0
    a0: float = 3.0
    b0: float = 2.0

    def simulate(self, n_sims: int, n_obs: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """theta (B, 2) from the prior and x (B, n_obs, 1) from the model."""
        gamma = torch.distributions.Gamma(torch.full((n_sims,), self.a0), torch.full((n_sims,), self.b0))
        var = 1 / _sample(gamma, g)  # \sigma^2 \sim \mathrm{InvGamma}(a_0, b_0)
        mu = self.m0 + (var / self.kappa0).sqrt() * torch.randn(n_sims, generator=g)
        x = mu[:, None] + var.sqrt()[:, None] * torch.randn(n_sims, n_obs, generator=g)
        return torch.stack([mu, 0.5 * var.log()], -1), x[..., None]

    def posterior(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The conjugate update for x (B, n, 1): m_n, kappa_n, a_n, b_n, each (B,)."""
        x = x[..., 0].double()
        n, xbar = x.shape[1], x.mean(1)
        # \kappa_n = \kappa_0 + n,  m_n = (\kappa_0 m_0 + n \bar x) / \kappa_n,  a_n = a_0 + n/2
        kappa = self.kappa0 + n
        m = (self.kappa0 * self.m0 + n * xbar) / kappa
        a = torch.full_like(xbar, self.a0 + n / 2)
        # b_n = b_0 + \tfrac12 \sum_i (x_i - \bar x)^2 + \frac{\kappa_0 n (\bar x - m_0)^2}{2 \kappa_n}
        b = self.b0 + 0.5 * (x - xbar[:, None]).square().sum(1) + self.kappa0 * n * (xbar - self.m0).square() / (2 * kappa)
        return {"m": m, "kappa": torch.full_like(xbar, kappa), "a": a, "b": b}

    def posterior_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior mean and standard deviation of theta = (mu, log sigma): (B, 2), (B, 2)."""
        p = self.posterior(x)
        # \mu \mid x \sim t_{2 a_n}(m_n, b_n / (a_n \kappa_n)):  \mathrm{Var} = b_n / ((a_n - 1) \kappa_n)
        mu_sd = (p["b"] / ((p["a"] - 1) * p["kappa"])).sqrt()
        # \log\sigma = \tfrac12 (\log b_n - \log G),  G \sim \mathrm{Gamma}(a_n, 1)
        ls_mean = 0.5 * (p["b"].log() - torch.special.digamma(p["a"]))
        ls_sd = 0.5 * torch.special.polygamma(1, p["a"]).sqrt()
        return torch.stack([p["m"], ls_mean], -1), torch.stack([mu_sd, ls_sd], -1)

    def posterior_sample(self, x: torch.Tensor, n_samples: int, g: torch.Generator) -> torch.Tensor:
        """Exact posterior draws of theta: (B, S, 2)."""
        p = self.posterior(x)
        shape = (n_samples, len(x))
        gamma = torch.distributions.Gamma(p["a"].expand(shape), p["b"].expand(shape))
        var = 1 / _sample(gamma, g)  # (S, B)
        mu = p["m"] + (var / p["kappa"]).sqrt() * torch.randn(shape, generator=g, dtype=var.dtype)
        return torch.stack([mu, 0.5 * var.log()], -1).transpose(0, 1)


def _sample(dist: torch.distributions.Distribution, g: torch.Generator) -> torch.Tensor:
    """dist.sample() drawn from `g`: torch.distributions uses the global RNG, so fork it, seeded from g."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
        return dist.sample()


# --- bayesflow/amortised-posterior: one network, the posterior of every new dataset ------------------

@dataclass
class AmortisedConfig:
    steps: int = 3000
    batch: int = 256  # simulations per step
    min_obs: int = 5  # dataset sizes U{min_obs..max_obs}, the same within a step
    max_obs: int = 50
    lr: float = 1e-3  # Adam, cosine-annealed
    hidden: int = 64
    n_layers: int = 6  # coupling layers
    n_test: int = 500  # held-out datasets per size
    test_obs: str = "5,20,50"
    n_samples: int = 500  # posterior draws per dataset


@lab(
    "bayesflow/amortised-posterior",
    card="bayesflow",
    config=AmortisedConfig,
    scales={
        "quick": {"steps": 20, "batch": 32, "n_test": 20, "n_samples": 50, "hidden": 16, "n_layers": 2},
        "default": {},
        "full": {"steps": 30000, "n_test": 2000, "n_samples": 2000},
    },
    goals=[Goal("sd_ratio_err", "<=", 0.1), Goal("coverage_err", "<=", 0.05)],  # calibrated; the mean is in the claims
    claims=[
        Check(
            "bayesflow-amortised-posterior",
            lambda m: m["mean_err"] <= 0.1 and m["sd_ratio_err"] <= 0.1 and m["coverage_err"] <= 0.05,
            "one network trained for {steps} steps on simulations of a Gaussian with unknown mean and variance "
            "(normal-inverse-gamma prior) gives, for held-out datasets of 5, 20 and 50 points, posteriors of "
            "(mu, log sigma) whose means are {mean_err:.3f} exact posterior standard deviations from the analytic "
            "ones (RMS) and whose standard deviations are off by {sd_ratio_err:.3f} (mean |ratio - 1|); the true "
            "parameters fall in its central 90% intervals {coverage:.3f} of the time, and the ranks of the truth "
            "among its draws are uniform to a KS distance of {sbc_ks:.3f}. Rule: mean error <= 0.1 sd, scale error "
            "<= 0.1, coverage within 0.05 of 0.9",
        ),
        Check(
            "deepsets-summary-for-inference",
            lambda m: m["permutation_err"] <= 1e-4 and m["mean_err"] <= 0.1 and m["sd_ratio_err"] <= 0.1,
            "the DeepSets summary of each dataset gives the same posterior in any order of the points (largest "
            "change of log q under a shuffle {permutation_err:.1e}), and the flow it conditions matches the exact "
            "posterior to {mean_err:.3f} sd in the mean and {sd_ratio_err:.3f} in the scale. Rule: order changes "
            "log q by at most 1e-4, mean error <= 0.1 sd, scale error <= 0.1",
        ),
    ],
    budget_s=90,
    threads=1,
)
def amortised_posterior(run, cfg: AmortisedConfig) -> dict:
    """BayesFlow-style amortised inference on a conjugate model: the posterior of every new dataset."""
    model_prior = NormalInverseGamma()
    train_seed, test_seed = split_seeds(run.seed)
    torch.manual_seed(train_seed)
    net = AmortisedPosterior(2, hidden=cfg.hidden, n_layers=cfg.n_layers).to(run.device)
    opt = Adam(net.parameters(), lr=cfg.lr)
    schedule = CosineAnnealingLR(opt, T_max=cfg.steps)
    g = torch.Generator().manual_seed(train_seed)
    curve, total = [], torch.zeros((), device=run.device)
    for step in run.progress(range(cfg.steps), desc="simulations"):
        n = int(torch.randint(cfg.min_obs, cfg.max_obs + 1, (1,), generator=g))
        theta, x = (t.to(run.device) for t in model_prior.simulate(cfg.batch, n, g))
        # \mathcal{L} = -\log q(\theta \mid x) over simulations (\theta, x) \sim p(\theta) p(x \mid \theta)
        loss = -net(theta, x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        total += loss.detach()
        if (step + 1) % 100 == 0:
            curve.append(total.item() / 100)
            run.log(step + 1, loss=curve[-1])
            total.zero_()

    net.eval()
    gt = torch.Generator().manual_seed(test_seed)
    z_err, ratio_err, inside, ranks, perm_err, per_n, shown = [], [], [], [], [], {}, None
    for n in (int(v) for v in cfg.test_obs.split(",")):
        theta, x = model_prior.simulate(cfg.n_test, n, gt)
        draws = net.sample(x.to(run.device), cfg.n_samples, gt).double().cpu()  # (B, S, 2)
        mean, sd = model_prior.posterior_moments(x)
        z_err.append(((draws.mean(1) - mean) / sd).flatten())
        ratio_err.append((draws.std(1) / sd - 1).abs().flatten())
        lo, hi = draws.quantile(0.05, dim=1), draws.quantile(0.95, dim=1)  # (B, 2)
        inside.append(((theta >= lo) & (theta <= hi)).double().flatten())
        # simulation-based calibration: the rank of the true theta among the posterior draws
        ranks.append((draws < theta[:, None].double()).double().mean(1).flatten())
        with torch.no_grad():
            shuffled = x[:, torch.randperm(n, generator=gt)]
            perm_err.append((net(theta.to(run.device), x.to(run.device))
                             - net(theta.to(run.device), shuffled.to(run.device))).abs().max().item())
        per_n[n] = {"mean_err": z_err[-1].square().mean().sqrt().item(), "coverage": inside[-1].mean().item()}
        if shown is None:
            shown = (x[:1], draws[0], model_prior.posterior_sample(x[:1], cfg.n_samples, gt)[0], theta[0])
    ranks = torch.cat(ranks).sort().values
    uniform = (torch.arange(1, len(ranks) + 1, dtype=ranks.dtype)) / len(ranks)
    coverage = torch.cat(inside).mean().item()
    metrics = {
        "steps": cfg.steps, "mean_err": torch.cat(z_err).square().mean().sqrt().item(),
        "sd_ratio_err": torch.cat(ratio_err).mean().item(), "coverage": coverage, "coverage_err": abs(coverage - 0.9),
        "sbc_ks": (ranks - uniform).abs().max().item(), "permutation_err": max(perm_err),
    }
    for n, values in per_n.items():
        metrics.update({f"{k}_n{n}": v for k, v in values.items()})
    _plot(run, shown, ranks, curve)
    return metrics


def _plot(run, shown, ranks: torch.Tensor, curve: list[float]) -> None:
    x, draws, exact, theta = shown
    with run.figure("amortised_posterior", ncols=3, size=(13, 3.8)) as (fig, (ax_post, ax_sbc, ax_loss)):
        ax_post.scatter(exact[:, 0], exact[:, 1], s=4, alpha=0.4, label="exact posterior")
        ax_post.scatter(draws[:, 0], draws[:, 1], s=4, alpha=0.4, label="amortised (one pass)")
        ax_post.plot(theta[0], theta[1], "k*", ms=12, label="true parameters")
        ax_post.set(xlabel="mu", ylabel="log sigma", title=f"one held-out dataset of {x.shape[1]} points")
        ax_post.legend(fontsize=8)
        ax_sbc.hist(ranks.numpy(), bins=20, density=True)
        ax_sbc.axhline(1.0, color="k", ls="--", lw=1)
        ax_sbc.set(xlabel="rank of the truth among posterior draws", ylabel="density",
                   title="calibration (uniform = calibrated)")
        ax_loss.plot(range(100, 100 * len(curve) + 1, 100), curve)
        ax_loss.set(xlabel="step", ylabel="-log q(theta | x)", title="training on simulations")
