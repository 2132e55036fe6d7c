"""A tiny probabilistic programming layer: models are Python functions, inference is generic.

A model calls `sample(name, dist)` for each latent variable and `observe(name, dist, value)` for
each observation. On their own these statements just draw or return values; effect handlers
(context managers on a stack, as in Pyro's poutine) intercept them: `trace` records every site
and its log density, `substitute` fixes latent values, `seeded` draws from a torch.Generator.
From these three, inference needs no knowledge of the model: the log joint density of any
latent values is a traced run with those values substituted, which HMC samples from, and
likelihood weighting is a traced run from the prior weighted by the observations.

    \\log p(z, y) = \\sum_{\\text{sample sites}} \\log p(z_i | \\cdot) + \\sum_{\\text{observe sites}} \\log p(y_j | \\cdot)

Goodman, Mansinghka, Roy, Bonawitz & Tenenbaum, "Church: a language for generative models",
UAI 2008; Bingham et al., "Pyro: Deep Universal Probabilistic Programming", JMLR 2019 (arXiv:1810.09538).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.distributions import Distribution, constraints

from deepatlas.labs import Check, Goal, lab
from deepatlas.zoo.bayesian import bayesian_linear_regression as blr
from deepatlas.zoo.bayesian.mcmc import hmc

_STACK: list[Handler] = []


class Handler:
    """An effect handler: `process` sees a site's message before its value is chosen (innermost
    handler first), `postprocess` after (outermost first). Used as a context manager."""

    def __enter__(self):
        _STACK.append(self)
        return self

    def __exit__(self, *exc):
        assert _STACK.pop() is self
        return False

    def process(self, msg: dict) -> None:
        """Leave the message as it is; a subclass overrides what it handles."""

    def postprocess(self, msg: dict) -> None:
        """Leave the message as it is; a subclass overrides what it handles."""


def sample(name: str, dist: Distribution, obs: torch.Tensor | None = None) -> torch.Tensor:
    """A random variable named `name` with distribution `dist` (observed if `obs` is given)."""
    msg = {"name": name, "fn": dist, "value": obs, "observed": obs is not None}
    for handler in reversed(_STACK):
        handler.process(msg)
    if msg["value"] is None:
        msg["value"] = dist.sample()
    for handler in _STACK:
        handler.postprocess(msg)
    return msg["value"]


def observe(name: str, dist: Distribution, value: torch.Tensor) -> torch.Tensor:
    """Condition on data: `value` was drawn from `dist`; it enters the joint as a likelihood term."""
    return sample(name, dist, obs=value)


class trace(Handler):
    """Records every site: trace.sites[name] = {'fn', 'value', 'observed', 'log_prob'}."""

    def __init__(self):
        self.sites: dict[str, dict] = {}

    def postprocess(self, msg: dict) -> None:
        if msg["name"] in self.sites:
            raise ValueError(f"site {msg['name']!r} appears twice in one run of the model")
        # \log p(\text{site}) summed over the site's elements
        self.sites[msg["name"]] = {**msg, "log_prob": msg["fn"].log_prob(msg["value"]).sum()}

    def log_joint(self) -> torch.Tensor:
        # \log p(z, y) = \sum_{\text{sites}} \log p(\text{site} | \text{its parents})
        return sum(site["log_prob"] for site in self.sites.values())

    def log_likelihood(self) -> torch.Tensor:
        return sum(site["log_prob"] for site in self.sites.values() if site["observed"])

    def latents(self) -> dict[str, torch.Tensor]:
        return {name: site["value"] for name, site in self.sites.items() if not site["observed"]}


class substitute(Handler):
    """Latent sites named in `values` take those values instead of a draw."""

    def __init__(self, values: dict[str, torch.Tensor]):
        self.values = values

    def process(self, msg: dict) -> None:
        if not msg["observed"] and msg["name"] in self.values:
            msg["value"] = self.values[msg["name"]]


class seeded(Handler):
    """Latent draws come from `generator` by inverting the CDF, so runs are reproducible."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def process(self, msg: dict) -> None:
        if msg["value"] is None:
            fn = msg["fn"]
            u = torch.rand(fn.batch_shape + fn.event_shape, generator=self.generator, dtype=fn.mean.dtype)
            # z = F^{-1}(u),   u \sim \mathcal{U}(0, 1)
            msg["value"] = fn.icdf(u.clamp(1e-12, 1 - 1e-12))


def run_traced(model: Callable, *args, values: dict[str, torch.Tensor] | None = None,
               generator: torch.Generator | None = None) -> trace:
    """One run of model(*args) under trace (+ substitute `values`, + draws from `generator`)."""
    with trace() as tr:
        with substitute(values or {}):
            if generator is None:
                model(*args)
            else:
                with seeded(generator):
                    model(*args)
    return tr


@dataclass
class Latents:
    """The latent sites of a model and how they sit in one flat vector (for HMC)."""

    shapes: dict[str, torch.Size]

    @classmethod
    def of(cls, model: Callable, *args, generator: torch.Generator | None = None) -> tuple[Latents, torch.Tensor]:
        """The layout of the latents and a flat vector (P,) of one prior draw."""
        tr = run_traced(model, *args, generator=generator)
        for name, site in tr.sites.items():
            if not site["observed"] and site["fn"].support is not constraints.real:
                raise ValueError(f"latent site {name!r} has support {site['fn'].support}; this layer samples "
                                 f"real-valued latents only (reparameterise, e.g. sample a log-scale)")
        values = tr.latents()
        return cls({n: v.shape for n, v in values.items()}), torch.cat([v.reshape(-1) for v in values.values()])

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            out[name] = theta[i:i + n].reshape(shape)
            i += n
        return out


def log_joint_fn(model: Callable, *args, layout: Latents) -> Callable[[torch.Tensor], torch.Tensor]:
    """theta (P,) -> log p(theta, y): the density an engine such as HMC needs, from the model alone."""
    return lambda theta: run_traced(model, *args, values=layout.unflatten(theta)).log_joint()


def infer_hmc(model: Callable, *args, n_samples: int = 1000, n_warmup: int = 300, step_size: float = 0.05,
              n_leapfrog: int = 20, generator: torch.Generator | None = None, progress=None
              ) -> tuple[dict[str, torch.Tensor], float]:
    """Posterior samples of every latent site by HMC: ({name: (n_samples, *shape)}, acceptance rate)."""
    layout, theta0 = Latents.of(model, *args, generator=generator)
    res = hmc(log_joint_fn(model, *args, layout=layout), theta0, n_samples, step_size=step_size,
              n_leapfrog=n_leapfrog, n_warmup=n_warmup, generator=generator, progress=progress)
    draws = [layout.unflatten(s) for s in res.samples]
    return {name: torch.stack([d[name] for d in draws]) for name in layout.shapes}, res.accept_rate


def infer_importance(model: Callable, *args, n_samples: int = 1000, generator: torch.Generator | None = None
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Likelihood weighting: prior draws of the latents, each weighted by p(y | z); returns
    ({name: (n_samples, *shape)}, normalised weights (n_samples,))."""
    runs = [run_traced(model, *args, generator=generator) for _ in range(n_samples)]
    # \log w_s = \log p(y | z_s),   z_s \sim p(z)
    log_w = torch.stack([tr.log_likelihood() for tr in runs])
    weights = torch.softmax(log_w, 0)
    names = list(runs[0].latents())
    return {n: torch.stack([tr.latents()[n] for tr in runs]) for n in names}, weights


def effective_sample_size(weights: torch.Tensor) -> float:
    # \mathrm{ESS} = 1 / \sum_s \bar w_s^2
    return 1.0 / (weights * weights).sum().item()


# --- probabilistic-programming/blr-posterior: the program recovers the conjugate posterior -------

def blr_model(x: torch.Tensor, y: torch.Tensor, prior_std: float, noise_std: float) -> None:
    """Bayesian linear regression as a program: w ~ N(0, prior_std^2 I), y ~ N(w_0 + w_1 x, noise_std^2)."""
    w = sample("w", torch.distributions.Normal(torch.zeros(2, dtype=x.dtype), prior_std, validate_args=False))
    # \mu_n = w_0 + w_1 x_n
    mu = w[0] + w[1] * x  # (N,)
    observe("y", torch.distributions.Normal(mu, noise_std, validate_args=False), y)


@dataclass
class BLRPosteriorConfig:
    n_points: int = 30
    prior_std: float = 1.0
    noise_std: float = 0.5
    hmc_samples: int = 3000
    hmc_warmup: int = 200
    n_leapfrog: int = 8
    is_samples: int = 1000  # likelihood weighting, for contrast


@lab(
    "probabilistic-programming/blr-posterior",
    card="probabilistic-programming",
    config=BLRPosteriorConfig,
    scales={
        "quick": {"hmc_samples": 100, "hmc_warmup": 50, "n_leapfrog": 4, "is_samples": 100},
        "default": {},
        "full": {"hmc_samples": 20_000, "hmc_warmup": 1000, "is_samples": 50_000},
    },
    goals=[Goal("hmc_mean_err_sd", "<=", 0.1), Goal("hmc_sd_rel_err", "<=", 0.1)],
    claims=[
        Check(
            "probabilistic-programming-blr",
            lambda m: m["hmc_mean_err_sd"] <= 0.1 and m["hmc_sd_rel_err"] <= 0.1,
            "Bayesian linear regression written as a program (sample w, observe y; {n_points} points) and handed "
            "to generic HMC ({hmc_samples} draws, acceptance {hmc_accept:.2f}) recovers the conjugate posterior: "
            "means within {hmc_mean_err_sd:.3f} posterior sd, sds within {hmc_sd_rel_err:.3f} relative, "
            "correlation {hmc_corr:.3f} vs {exact_corr:.3f}; likelihood weighting from the prior "
            "({is_samples} draws, effective sample size {is_ess:.0f}) is off by {is_mean_err_sd:.3f} sd",
        ),
    ],
    budget_s=45,
    threads=1,  # a two-weight model: per-step overhead, not arithmetic
)
def blr_posterior(run, cfg: BLRPosteriorConfig) -> dict:
    """A PPL's generic HMC on Bayesian linear regression matches the closed-form posterior."""
    g = torch.Generator().manual_seed(run.seed)
    x = (torch.rand(cfg.n_points, generator=g, dtype=torch.float64) * 4 - 2)  # (N,)
    w_true = torch.randn(2, generator=g, dtype=torch.float64) * cfg.prior_std
    y = w_true[0] + w_true[1] * x + cfg.noise_std * torch.randn(cfg.n_points, generator=g, dtype=torch.float64)
    args = (x, y, cfg.prior_std, cfg.noise_std)

    # the conjugate answer: S_N^{-1} = \alpha I + \beta \Phi^\top \Phi, m_N = \beta S_N \Phi^\top y
    phi = blr.linear_features(x[:, None])  # (N, 2)
    m, S = blr.posterior(phi, y, cfg.prior_std**-2, cfg.noise_std**-2)
    sd = S.diagonal().sqrt()

    draws, accept = infer_hmc(blr_model, *args, n_samples=cfg.hmc_samples, n_warmup=cfg.hmc_warmup,
                              n_leapfrog=cfg.n_leapfrog, generator=g,
                              progress=lambda it: run.progress(it, total=cfg.hmc_samples + cfg.hmc_warmup,
                                                               desc="HMC"))
    w = draws["w"]  # (S, 2)
    is_draws, weights = infer_importance(blr_model, *args, n_samples=cfg.is_samples, generator=g)
    is_mean = weights @ is_draws["w"]  # (2,)

    corr = lambda C: (C[0, 1] / (C[0, 0] * C[1, 1]).sqrt()).item()  # noqa: E731
    _plot_blr(run, w, is_draws["w"], weights, m, S)
    run.log(0, hmc_accept=accept)
    return {
        "hmc_mean_err_sd": ((w.mean(0) - m).abs() / sd).max().item(),
        "hmc_sd_rel_err": (w.std(0) / sd - 1).abs().max().item(),
        "hmc_corr": corr(torch.cov(w.T)), "exact_corr": corr(S), "hmc_accept": accept,
        "is_mean_err_sd": ((is_mean - m).abs() / sd).max().item(), "is_ess": effective_sample_size(weights),
        "n_points": cfg.n_points, "hmc_samples": cfg.hmc_samples, "is_samples": cfg.is_samples,
    }


def _plot_blr(run, w, is_w, weights, m, S) -> None:
    L = torch.linalg.cholesky(S)
    t = torch.linspace(0, 2 * math.pi, 200, dtype=m.dtype)
    circle = torch.stack([t.cos(), t.sin()])  # (2, 200)
    with run.figure("blr_posterior", ncols=2) as (fig, (ax, ax_hist)):
        ax.scatter(w[:, 0], w[:, 1], s=3, alpha=0.3, label="HMC draws")
        top = weights.argsort(descending=True)[:50]
        ax.scatter(is_w[top, 0], is_w[top, 1], s=12, marker="x", color="C3", label="heaviest prior draws (IS)")
        for k, ls in ((1, "-"), (2, "--")):
            e = m[:, None] + k * L @ circle
            ax.plot(e[0], e[1], "k", ls=ls, lw=1, label=f"exact {k}-sd contour")
        ax.set(xlabel="$w_0$ (intercept)", ylabel="$w_1$ (slope)", title="posterior of the weights")
        ax.legend(fontsize=7)
        grid = torch.linspace(m[1] - 4 * S[1, 1].sqrt(), m[1] + 4 * S[1, 1].sqrt(), 200, dtype=m.dtype)
        ax_hist.hist(w[:, 1].numpy(), bins=40, density=True, alpha=0.5, label="HMC")
        ax_hist.plot(grid, torch.distributions.Normal(m[1], S[1, 1].sqrt()).log_prob(grid).exp(), "k",
                     label="closed form")
        ax_hist.set(xlabel="$w_1$", ylabel="density", title="slope: HMC vs conjugate posterior")
        ax_hist.legend(fontsize=7)
