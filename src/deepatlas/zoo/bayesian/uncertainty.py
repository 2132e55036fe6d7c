"""Predictive uncertainty on 1-D regression with a gap: a GP against the practical approximations of a BNN.

The same data (training inputs on both sides of a gap, test inputs everywhere) for an exact
GP with marginal-likelihood hyper-parameters, Bayes by backprop, MC dropout, a deep ensemble,
SWAG, SGLD, a last-layer Laplace approximation and HMC on the full network, and a MAP network
with a fitted noise level as the baseline without weight uncertainty. Each method yields a
Gaussian predictive N(mu(x), sigma^2(x)) (mixtures summarised by their mean and variance); they
are scored by test negative log-likelihood and by how often y falls in the central 90% interval.

    \\mathrm{NLL} = \\tfrac1M \\sum_m \\big[\\tfrac12 \\log 2\\pi\\sigma^2(x_m) + (y_m - \\mu(x_m))^2 / 2\\sigma^2(x_m)\\big],
    \\quad \\mathrm{coverage} = \\tfrac1M \\sum_m [\\,|y_m - \\mu(x_m)| \\le z_{0.95}\\, \\sigma(x_m)\\,]

Foong, Li, Hernández-Lobato & Turner, "'In-Between' Uncertainty in Bayesian Neural Networks",
ICML 2019 UDL workshop (arXiv:1906.11537), for the gap; the methods' papers are in their files.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector

from deepatlas.data.regression1d import X_RANGE, gap_regression, true_function
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import Adam
from deepatlas.zoo.bayesian.bayes_by_backprop import BayesByBackpropMLP, train_bayes_by_backprop
from deepatlas.zoo.bayesian.deep_ensembles import DeepEnsemble, gaussian_nll, train_ensemble
from deepatlas.zoo.bayesian.gaussian_process import GPRegression, fit_marginal_likelihood
from deepatlas.zoo.bayesian.laplace_approximation import LastLayerLaplace
from deepatlas.zoo.bayesian.mc_dropout import DropoutMLP, train_mc_dropout
from deepatlas.zoo.bayesian.mcmc import hmc
from deepatlas.zoo.bayesian.sgld import SGLD, polynomial_step
from deepatlas.zoo.bayesian.swag import SWAG, run_swag
from deepatlas.zoo.fundamentals.mlp import MLP

NOMINAL = 0.9
Z90 = 1.6448536269514722  # \Phi^{-1}(0.95): the central 90% interval is \mu \pm z \sigma
METHODS = ("gp", "map", "bbb", "mc_dropout", "ensemble", "swag", "sgld", "laplace", "hmc")
TITLES = {"gp": "GP (exact)", "map": "MAP net (no weight uncertainty)", "bbb": "Bayes by backprop",
          "mc_dropout": "MC dropout", "ensemble": "deep ensemble", "swag": "SWAG", "sgld": "SGLD",
          "laplace": "last-layer Laplace", "hmc": "HMC (full network)"}


@dataclass
class UncertaintyConfig:
    n_train: int = 100
    n_test: int = 1000
    noise: float = 0.2
    gap: float = 0.5  # training inputs avoid (-gap, gap)
    hidden: int = 50  # two hidden ReLU layers of this width for every network
    prior_std: float = 1.0  # p(w) = N(0, prior_std^2) wherever a method has a prior
    lr: float = 1e-2
    gp_steps: int = 200
    map_steps: int = 2000
    bbb_steps: int = 4000
    dropout_p: float = 0.1
    dropout_steps: int = 3000
    ensemble_size: int = 5
    ensemble_steps: int = 2000
    swag_epochs: int = 200
    swag_lr: float = 2e-3
    sgld_steps: int = 4000
    sgld_burnin: int = 2000
    sgld_step: float = 2e-5  # a in eps_t = a (b + t)^{-0.55}, with b = 100 and eps_t scaled to a at t = 0
    hmc_samples: int = 150
    hmc_warmup: int = 300
    hmc_leapfrog: int = 10
    n_pred_samples: int = 100  # weight draws per sampling method


def _sizes(cfg: UncertaintyConfig) -> list[int]:
    return [1, cfg.hidden, cfg.hidden, 1]


def potential(net: MLP, x: torch.Tensor, y: torch.Tensor, noise_var: float, prior_std: float,
              n_data: int) -> torch.Tensor:
    """U(theta) = -log p(y | x, theta) * (n_data / n) - log p(theta) up to constants (n = len(x))."""
    # U = \frac{N}{n} \sum_{i} \frac{(y_i - f(x_i))^2}{2\sigma^2} + \frac{\lVert\theta\rVert^2}{2 s^2}
    sq = ((y - net(x)[:, 0]) ** 2).sum() / (2 * noise_var) * (n_data / len(x))
    return sq + sum((p * p).sum() for p in net.parameters()) / (2 * prior_std**2)


def train_map(net: MLP, x: torch.Tensor, y: torch.Tensor, cfg: UncertaintyConfig, log) -> float:
    """MAP weights and a fitted noise variance: Adam on the Gaussian NLL plus the Gaussian prior."""
    log_noise_var = torch.zeros((), requires_grad=True)
    opt = Adam([*net.parameters(), log_noise_var], lr=cfg.lr)
    for step in range(cfg.map_steps):
        f = net(x)[:, 0]
        # -\tfrac1N \log p(\theta | D) = \mathrm{NLL} + \lVert\theta\rVert^2 / 2 s^2 N
        loss = gaussian_nll(f, log_noise_var.exp().expand_as(f), y) \
            + sum((p * p).sum() for p in net.parameters()) / (2 * cfg.prior_std**2 * len(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0:
            log(step, map_loss=loss)
    return log_noise_var.exp().item()


def sampled_predictive(net: MLP, thetas: list[torch.Tensor], x: torch.Tensor,
                       noise_var: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the mixture of N(f(x; theta_s), noise_var) over weight samples."""
    net = copy.deepcopy(net)
    fs = []
    with torch.no_grad():
        for theta in thetas:
            SWAG.load(net, theta)
            fs.append(net(x)[:, 0])
    f = torch.stack(fs)  # (S, N)
    return f.mean(0), noise_var + f.var(0, correction=0)


def run_sgld(net: MLP, x, y, noise_var: float, cfg: UncertaintyConfig, g: torch.Generator, log) -> list[torch.Tensor]:
    """SGLD from the MAP weights on minibatches of 20; keeps evenly spaced iterates after burn-in."""
    net = copy.deepcopy(net)
    opt = SGLD(net.parameters(), lr=cfg.sgld_step, generator=g)
    keep_every = max(1, (cfg.sgld_steps - cfg.sgld_burnin) // cfg.n_pred_samples)
    thetas = []
    for t in range(cfg.sgld_steps):
        # \epsilon_t = a (b + t)^{-\gamma}, scaled so that \epsilon_0 = a
        opt.param_groups[0]["lr"] = polynomial_step(t, cfg.sgld_step * 100**0.55, 100.0)
        idx = torch.randint(len(x), (20,), generator=g)
        U = potential(net, x[idx], y[idx], noise_var, cfg.prior_std, len(x))
        opt.zero_grad()
        U.backward()
        opt.step()
        if t % 500 == 0:
            log(t, sgld_potential=U)
        if t >= cfg.sgld_burnin and (t - cfg.sgld_burnin) % keep_every == 0:
            thetas.append(parameters_to_vector(net.parameters()).detach().clone())
    return thetas


def run_hmc(net: MLP, x, y, noise_var: float, cfg: UncertaintyConfig, g: torch.Generator, progress
            ) -> tuple[list[torch.Tensor], float]:
    """HMC on every weight of the network, started at the MAP; the full-data potential."""
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]

    def log_prob(theta: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = theta[i:i + shape.numel()].reshape(shape)
            i += shape.numel()
        f = functional_call(net, params, (x,))[:, 0]
        # \log p(\theta | D) = -\sum_i (y_i - f(x_i))^2 / 2\sigma^2 - \lVert\theta\rVert^2 / 2 s^2 + \text{const}
        return -((y - f) ** 2).sum() / (2 * noise_var) - (theta * theta).sum() / (2 * cfg.prior_std**2)

    theta0 = parameters_to_vector(net.parameters()).detach()
    res = hmc(log_prob, theta0, cfg.hmc_samples, step_size=1e-3, n_leapfrog=cfg.hmc_leapfrog,
              n_warmup=cfg.hmc_warmup, target_accept=0.75, generator=g, progress=progress)
    stride = max(1, cfg.hmc_samples // cfg.n_pred_samples)
    return list(res.samples[::stride]), res.accept_rate


def scores(mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor, in_gap: torch.Tensor) -> dict:
    sd = var.sqrt()
    return {
        "nll": gaussian_nll(mean, var, y).item(),
        "coverage": ((y - mean).abs() <= Z90 * sd).float().mean().item(),
        "gap_coverage": ((y - mean).abs() <= Z90 * sd)[in_gap].float().mean().item(),
        # how much wider the intervals are where no training data lies
        "gap_sd_ratio": (sd[in_gap].mean() / sd[~in_gap].mean()).item(),
    }


def _usable(m: dict, name: str) -> bool:
    """Calibrated within 0.1 of nominal, and a better test NLL than ignoring weight uncertainty."""
    return abs(m[f"{name}_coverage"] - NOMINAL) <= 0.1 and m[f"{name}_nll"] < m["map_nll"]


def _usable_evidence(name: str, label: str) -> str:
    return (f"{label}: 90% intervals cover {{{name}_coverage:.3f}} of {{n_test}} test points (in the gap "
            f"{{{name}_gap_coverage:.3f}}, intervals {{{name}_gap_sd_ratio:.2f}}x wider there), test NLL "
            f"{{{name}_nll:.3f}} against {{map_nll:.3f}} for the MAP net without weight uncertainty and "
            f"{{gp_nll:.3f}} for the exact GP; 'usable' here: coverage within 0.1 of 0.9 and NLL below the MAP net's")


@lab(
    "gaussian-process/uncertainty",
    card="gaussian-process",
    config=UncertaintyConfig,
    scales={
        "quick": {"n_train": 40, "n_test": 200, "hidden": 16, "gp_steps": 30, "map_steps": 100, "bbb_steps": 100,
                  "dropout_steps": 100, "ensemble_size": 2, "ensemble_steps": 80, "swag_epochs": 10,
                  "sgld_steps": 150, "sgld_burnin": 100, "hmc_samples": 10, "hmc_warmup": 10, "hmc_leapfrog": 5,
                  "n_pred_samples": 10},
        "default": {},
        "full": {"n_train": 400, "hidden": 100, "map_steps": 5000, "bbb_steps": 20_000, "dropout_steps": 10_000,
                 "ensemble_size": 10, "ensemble_steps": 5000, "swag_epochs": 500, "sgld_steps": 20_000,
                 "sgld_burnin": 10_000, "hmc_samples": 1000, "hmc_warmup": 500, "n_pred_samples": 200},
    },
    goals=[Goal("gp_coverage_err", "<=", 0.05)],
    claims=[
        Check(
            "gaussian-process-calibrated-intervals",
            lambda m: m["gp_coverage_err"] <= 0.05,
            "with an RBF kernel fitted by marginal likelihood (lengthscale {gp_lengthscale:.2f}, noise sd "
            "{gp_noise_sd:.3f}; true {noise}), the GP's 90% predictive intervals cover {gp_coverage:.3f} of "
            "{n_test} test points ({gp_gap_coverage:.3f} inside the gap), test NLL {gp_nll:.3f}",
        ),
        Check(
            "bnn-predictive-intervals",
            lambda m: abs(m["bbb_coverage"] - NOMINAL) <= 0.1 and m["bbb_gap_sd_ratio"] > 1,
            "a BNN trained by Bayes by backprop predicts a distribution: its 90% intervals cover {bbb_coverage:.3f} "
            "of test points (within 0.1 of nominal is the bar) and are {bbb_gap_sd_ratio:.2f}x wider in the gap than "
            "near data (GP: {gp_gap_sd_ratio:.2f}x), test NLL {bbb_nll:.3f}; the same network sampled by a short HMC "
            "chain (acceptance {hmc_accept:.2f}) covers {hmc_coverage:.3f}, {hmc_gap_sd_ratio:.2f}x wider in the gap",
        ),
        Check("deep-ensembles-practical-uncertainty", lambda m: _usable(m, "ensemble"),
              _usable_evidence("ensemble", "a deep ensemble of {ensemble_size} Gaussian-NLL nets")),
        Check("swag-practical-uncertainty", lambda m: _usable(m, "swag"),
              _usable_evidence("swag", "SWAG (diagonal + low-rank, {n_pred_samples} draws)")),
        Check("laplace-approximation-practical-uncertainty", lambda m: _usable(m, "laplace"),
              _usable_evidence("laplace", "last-layer Laplace (GGN, prior precision {laplace_prior_precision:.2f} "
                                          "by evidence)")),
        Check("sgld-bayesian-approximation", lambda m: _usable(m, "sgld"),
              _usable_evidence("sgld", "SGLD ({sgld_steps} steps from the MAP, {n_pred_samples} kept)")),
    ],
    budget_s=90,
    threads=1,
)
def uncertainty(run, cfg: UncertaintyConfig) -> dict:
    """GP, BNN approximations and a MAP baseline on 1-D regression with a gap: test NLL and 90% coverage."""
    data = gap_regression(cfg.n_train, cfg.n_test, seed=run.seed, noise=cfg.noise, gap=cfg.gap)
    x, y, x_test, y_test = data.tensors()  # (N, 1), (N,), (M, 1), (M,)
    in_gap = data.meta["in_gap"]
    grid = torch.linspace(X_RANGE[0] - 0.5, X_RANGE[1] + 0.5, 300)[:, None]
    both = torch.cat([x_test, grid])  # predict test points and the plotting grid together
    g = torch.Generator().manual_seed(run.seed)
    preds, extra = {}, {}
    steps = run.progress(total=len(METHODS), desc="methods")

    # exact GP, hyper-parameters by type-II maximum likelihood (float64 for the Cholesky)
    gp = GPRegression("rbf", lengthscale=1.0, variance=1.0, noise_var=0.1).double()
    fit_marginal_likelihood(gp, x.double(), y.double(), steps=cfg.gp_steps, lr=0.05)
    with torch.no_grad():
        mean, var = gp(x.double(), y.double(), both.double())
        preds["gp"] = (mean.float(), (var + gp.noise_var).float())
    extra.update(gp_lengthscale=gp.lengthscale.item(), gp_noise_sd=gp.noise_var.sqrt().item())
    steps.update()

    net = MLP(_sizes(cfg), activation="relu", generator=g)
    noise_var = train_map(net, x, y, cfg, run.log)
    with torch.no_grad():
        preds["map"] = (net(both)[:, 0], torch.full((len(both),), noise_var))
    steps.update()

    bbb = BayesByBackpropMLP(_sizes(cfg), prior_std=cfg.prior_std, generator=g)
    train_bayes_by_backprop(bbb, x, y, cfg.bbb_steps, cfg.lr, log=run.log)
    preds["bbb"] = bbb.predictive(both, cfg.n_pred_samples)
    steps.update()

    # the same N(0, s^2) prior as an L2 penalty on the per-point loss: \nabla \lVert w \rVert^2 / 2 s^2 N = w / s^2 N
    decay = 1 / (cfg.prior_std**2 * len(x))
    dropout = DropoutMLP(_sizes(cfg), p=cfg.dropout_p, generator=g)
    train_mc_dropout(dropout, x, y, cfg.dropout_steps, cfg.lr, weight_decay=decay, log=run.log)
    preds["mc_dropout"] = dropout.predictive(both, cfg.n_pred_samples)
    steps.update()

    ensemble = DeepEnsemble(_sizes(cfg)[:-1], cfg.ensemble_size, generator=g)
    train_ensemble(ensemble, x, y, cfg.ensemble_steps, cfg.lr, weight_decay=decay, log=run.log)
    with torch.no_grad():
        preds["ensemble"] = ensemble(both)
    steps.update()

    swag_net = copy.deepcopy(net)
    swag = run_swag(swag_net, lambda m, xb, yb: potential(m, xb, yb, noise_var, cfg.prior_std, len(x)) / len(x),
                    x, y, epochs=cfg.swag_epochs, batch_size=20, lr=cfg.swag_lr, generator=g)
    preds["swag"] = sampled_predictive(net, [swag.sample(g) for _ in range(cfg.n_pred_samples)], both, noise_var)
    steps.update()

    preds["sgld"] = sampled_predictive(net, run_sgld(net, x, y, noise_var, cfg, g, run.log), both, noise_var)
    steps.update()

    laplace = LastLayerLaplace(net)
    extra["laplace_prior_precision"] = laplace.fit_posterior(x, y, noise_var)
    with torch.no_grad():
        preds["laplace"] = laplace(both)
    steps.update()

    thetas, extra["hmc_accept"] = run_hmc(net, x, y, noise_var, cfg, g, progress=None)
    preds["hmc"] = sampled_predictive(net, thetas, both, noise_var)
    steps.update()
    steps.close()

    metrics = {}
    for name, (mean, var) in preds.items():
        for key, value in scores(mean[:cfg.n_test], var[:cfg.n_test], y_test, in_gap).items():
            metrics[f"{name}_{key}"] = value
    metrics["gp_coverage_err"] = abs(metrics["gp_coverage"] - NOMINAL)
    _plot(run, x, y, grid, {k: (m[cfg.n_test:], v[cfg.n_test:]) for k, (m, v) in preds.items()}, metrics, cfg)
    return {**metrics, **extra, "map_noise_sd": math.sqrt(noise_var), "n_test": cfg.n_test, "noise": cfg.noise,
            "ensemble_size": cfg.ensemble_size, "n_pred_samples": cfg.n_pred_samples, "sgld_steps": cfg.sgld_steps}


def _plot(run, x, y, grid, preds: dict, metrics: dict, cfg: UncertaintyConfig) -> None:
    g = grid[:, 0]
    with run.figure("uncertainty", ncols=3, nrows=3, size=(13, 10)) as (fig, axes):
        for ax, name in zip(axes, METHODS):
            mean, var = preds[name]
            sd = var.sqrt()
            ax.axvspan(-cfg.gap, cfg.gap, color="0.92")
            ax.fill_between(g, mean - Z90 * sd, mean + Z90 * sd, alpha=0.3, label="90% interval")
            ax.plot(g, true_function(g), "k--", lw=1, label="true f")
            ax.plot(g, mean, lw=1.5, label="predictive mean")
            ax.scatter(x[:, 0], y, s=6, color="k")
            ax.set_ylim(-3.5, 3.5)
            ax.set_title(f"{TITLES[name]}\nNLL {metrics[f'{name}_nll']:.2f}, coverage "
                         f"{metrics[f'{name}_coverage']:.2f}", fontsize=9)
        axes[0].legend(fontsize=7, loc="upper left")
