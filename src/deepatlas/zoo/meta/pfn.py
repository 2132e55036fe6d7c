"""Prior-data fitted network (PFN): a Transformer that learns to do Bayesian prediction by being
trained on datasets drawn from a prior.

Draw a function from the prior (here a Gaussian process), draw points from it, show the network
some of them as context (x, y pairs) and ask it for the distribution of y at the others. Every
token is a point; context tokens carry x and y, query tokens carry only x; context tokens attend
to one another and every query attends to the context only (not to other queries), so each
query's prediction depends on the dataset alone. Minimising the NLL over prior draws minimises the
expected KL from the true posterior predictive, so a trained PFN approximates it in one forward
pass. The output is a Riemann ("bar") distribution, a softmax over bins of y with piecewise-constant
density, or a Gaussian.

    \\ell_\\theta = \\mathbb{E}_{D \\cup \\{(x, y)\\} \\sim p(\\mathcal{D})} [-\\log q_\\theta(y \\mid x, D)]
              = \\mathbb{E}_{x, D}[\\mathrm{KL}(p(\\cdot \\mid x, D) \\,\\|\\, q_\\theta(\\cdot \\mid x, D))] + \\mathrm{const}

Müller, Hollmann, Pineda Arango, Grabocka & Hutter, "Transformers Can Do Bayesian Inference", ICLR 2022.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data import split_seeds
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.kernels import rbf
from deepatlas.nn.transformer import EncoderLayer
from deepatlas.optim.optimizers import AdamW
from deepatlas.optim.schedules import WarmupCosine
from deepatlas.registry import register_model
from deepatlas.zoo.bayesian.gaussian_process import exact_posterior, sample_prior

LOG_2PI = math.log(2 * math.pi)


# --- output distributions ----------------------------------------------------------------------------

class BarDistribution(nn.Module):
    """A Riemann distribution over y: bins between `borders` (n_bins + 1,), logits (..., n_bins) ->
    density p_b / w_b on bin b. y beyond the outer borders counts in the outer bins."""

    def __init__(self, borders: torch.Tensor):
        super().__init__()
        if borders.dim() != 1 or len(borders) < 3 or not (borders.diff() > 0).all():
            raise ValueError("borders must be an increasing 1-D tensor of at least 3 values")
        self.register_buffer("borders", borders)
        self.n_out = len(borders) - 1

    @property
    def widths(self) -> torch.Tensor:
        return self.borders.diff()  # (n_bins,)

    def nll(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """-\\log q(y) for logits (..., n_bins) and y (...) -> (...)."""
        b = (torch.searchsorted(self.borders, y.contiguous(), right=True) - 1).clamp(0, self.n_out - 1)
        # -\log q(y) = -\log \mathrm{softmax}(z)_b + \log w_b
        return -F.log_softmax(logits, -1).gather(-1, b[..., None])[..., 0] + self.widths.log()[b]

    def mean_var(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of the piecewise-uniform density: (..., n_bins) -> (...), (...)."""
        p = logits.softmax(-1)
        lo, hi = self.borders[:-1], self.borders[1:]
        mean = (p * (lo + hi) / 2).sum(-1)
        second = (p * (lo * lo + lo * hi + hi * hi) / 3).sum(-1)
        return mean, second - mean * mean


class GaussianHead(nn.Module):
    """q(y) = N(mu, sigma^2) from two outputs (mu, log sigma^2)."""

    n_out = 2

    def nll(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu, log_var = out[..., 0], out[..., 1]
        # -\log \mathcal{N}(y; \mu, \sigma^2) = \tfrac12 (\log 2\pi + \log\sigma^2 + (y - \mu)^2 / \sigma^2)
        return 0.5 * (LOG_2PI + log_var + (y - mu).square() / log_var.exp())

    def mean_var(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return out[..., 0], out[..., 1].exp()


# --- the network ---------------------------------------------------------------------------------------

def context_mask(n_ctx: int, T: int, device=None) -> torch.Tensor:
    """(T, T) bool, True = may attend: every token (context or query) attends to the n_ctx context tokens only."""
    mask = torch.zeros(T, T, dtype=torch.bool, device=device)
    mask[:, :n_ctx] = True
    return mask


class PFN(nn.Module):
    """forward(x_ctx (B, n, d_x), y_ctx (B, n), x_query (B, m, d_x)) -> outputs (B, m, n_out) of `head`.

    No positional encoding: the prediction is invariant to the order of the context and each query's
    does not depend on the other queries."""

    def __init__(self, head: nn.Module, d_x: int = 1, d_model: int = 64, n_heads: int = 4, n_layers: int = 4,
                 d_ff: int = 128):
        super().__init__()
        self.head = head
        self.embed_x = nn.Linear(d_x, d_model)
        self.embed_y = nn.Linear(1, d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, norm_first=True, activation="gelu")
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, head.n_out)

    def forward(self, x_ctx: torch.Tensor, y_ctx: torch.Tensor, x_query: torch.Tensor) -> torch.Tensor:
        n = x_ctx.shape[1]
        # context token: e(x) + e(y); query token: e(x) alone
        ctx = self.embed_x(x_ctx) + self.embed_y(y_ctx[..., None])  # (B, n, d_model)
        h = torch.cat([ctx, self.embed_x(x_query)], 1)  # (B, n + m, d_model)
        mask = context_mask(n, h.shape[1], h.device)
        for layer in self.layers:
            h = layer(h, attn_mask=mask)
        return self.out(self.norm(h[:, n:]))  # (B, m, n_out)

    def nll(self, x_ctx, y_ctx, x_query, y_query) -> torch.Tensor:
        """-\\log q_\\theta(y \\mid x, D) for every query: (B, m)."""
        return self.head.nll(self(x_ctx, y_ctx, x_query), y_query)


def _example():
    return torch.rand(2, 5, 1), torch.randn(2, 5), torch.rand(2, 3, 1)


@register_model("pfn-gp-bar", card="pfn", example=_example)
def pfn_gp_bar(n_bins: int = 100, y_max: float = 4.0, **kw) -> PFN:
    return PFN(BarDistribution(torch.linspace(-y_max, y_max, n_bins + 1)), **kw)


@register_model("pfn-gp-gaussian", card="pfn", example=_example)
def pfn_gp_gaussian(**kw) -> PFN:
    return PFN(GaussianHead(), **kw)


# --- the prior: datasets drawn from a GP -----------------------------------------------------------

@dataclass(frozen=True)
class GPPrior:
    """f ~ GP(0, k_RBF(lengthscale, variance)) on x ~ U[0, 1], y = f + N(0, noise_var)."""

    lengthscale: float = 0.2
    variance: float = 1.0
    noise_var: float = 0.05

    @property
    def kernel(self):
        return partial(rbf, lengthscale=self.lengthscale, variance=self.variance)

    def sample(self, n_datasets: int, n_points: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n_datasets draws on one random set of inputs: x (B, N, 1), y (B, N), in float64."""
        x = torch.rand(n_points, 1, generator=g, dtype=torch.float64)  # (N, 1)
        f = sample_prior(x, self.kernel, n_datasets, generator=g)  # (B, N)
        y = f + math.sqrt(self.noise_var) * torch.randn(f.shape, generator=g, dtype=torch.float64)
        return x.expand(n_datasets, -1, -1), y

    def posterior_nll(self, x_ctx, y_ctx, x_query, y_query) -> torch.Tensor:
        """-\\log p(y \\mid x, D) under the exact GP posterior predictive, dataset by dataset: (B, m)."""
        out = []
        for xc, yc, xq, yq in zip(x_ctx, y_ctx, x_query, y_query):
            mean, var_f = exact_posterior(xc, yc, xq, self.kernel, self.noise_var)
            var = var_f + self.noise_var
            out.append(0.5 * (LOG_2PI + var.log() + (yq - mean).square() / var))
        return torch.stack(out)


# --- pfn/posterior: a PFN against the exact GP on held-out datasets ---------------------------------

@dataclass
class PosteriorConfig:
    head: str = "bar"  # "bar" (Riemann distribution) or "gaussian"
    n_bins: int = 100
    y_max: float = 4.0  # bins cover [-y_max, y_max]: the prior's y has standard deviation ~1.02
    n_points: int = 30  # points per dataset (context + queries)
    max_ctx: int = 20  # context sizes U{1..max_ctx}, the same within a step
    steps: int = 3000
    batch: int = 32  # datasets per step
    lr: float = 1e-3  # AdamW, warm-up then cosine
    d_model: int = 32
    n_layers: int = 2
    n_test: int = 200  # held-out datasets per context size
    test_ctx: str = "2,5,10,20"  # context sizes of the evaluation


def make_pfn(cfg: PosteriorConfig) -> PFN:
    if cfg.head == "bar":
        return pfn_gp_bar(cfg.n_bins, cfg.y_max, d_model=cfg.d_model, n_layers=cfg.n_layers, d_ff=2 * cfg.d_model)
    if cfg.head == "gaussian":
        return pfn_gp_gaussian(d_model=cfg.d_model, n_layers=cfg.n_layers, d_ff=2 * cfg.d_model)
    raise ValueError(f"head must be 'bar' or 'gaussian', got {cfg.head!r}")


@lab(
    "pfn/posterior",
    card="pfn",
    config=PosteriorConfig,
    scales={
        "quick": {"steps": 20, "n_test": 10, "d_model": 16, "n_layers": 1, "batch": 16},
        "default": {},
        "full": {"steps": 100000, "batch": 128, "d_model": 256, "n_layers": 8, "lr": 3e-4, "n_test": 1000,
                 "n_points": 60, "max_ctx": 50, "test_ctx": "2,5,10,20,50"},
    },
    goals=[Goal("nll_gap", "<=", 0.2, scales=("default",)), Goal("nll_gap", "<=", 0.05, scales=("full",))],
    claims=[
        Check(
            "pfn-learns-bayesian-update",
            lambda m: m["nll_gap"] <= 0.2,
            "trained for {steps} steps on datasets drawn from a GP prior (RBF, lengthscale {lengthscale}, noise "
            "variance {noise_var}), the PFN's posterior predictive NLL on held-out datasets from the same prior is "
            "{pfn_nll:.3f} nats per query point against {gp_nll:.3f} for the exact GP posterior (gap {nll_gap:.3f}; "
            "with {ctx_small} context points {pfn_nll_small:.3f} vs {gp_nll_small:.3f}, with {ctx_large} "
            "{pfn_nll_large:.3f} vs {gp_nll_large:.3f}); the prior predictive alone scores {prior_nll:.3f}; the PFN's mean is "
            "{mean_rmse:.3f} RMS from the GP's. Rule: gap at most 0.2 nats",
        ),
    ],
    budget_s=90,
    threads=1,
)
def posterior(run, cfg: PosteriorConfig) -> dict:
    """A PFN trained on GP prior draws: its posterior predictive against the exact GP's."""
    prior = GPPrior()
    train_seed, test_seed = split_seeds(run.seed)
    torch.manual_seed(train_seed)
    net = make_pfn(cfg).to(run.device)
    opt = AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = WarmupCosine(opt, warmup_steps=cfg.steps // 20, total_steps=cfg.steps)
    g = torch.Generator().manual_seed(train_seed)
    total, curve = torch.zeros((), device=run.device), []
    for step in run.progress(range(cfg.steps), desc="PFN"):
        x, y = (t.float().to(run.device) for t in prior.sample(cfg.batch, cfg.n_points, g))
        n = int(torch.randint(1, cfg.max_ctx + 1, (1,), generator=g))
        # \ell_\theta = -\log q_\theta(y \mid x, D): the queries are every point after the context
        loss = net.nll(x[:, :n], y[:, :n], x[:, n:], y[:, n:]).mean()
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
    metrics: dict = {"steps": cfg.steps, "lengthscale": prior.lengthscale, "noise_var": prior.noise_var}
    pfn_all, gp_all, prior_all, sq_err, examples = [], [], [], [], {}
    for n in (int(c) for c in cfg.test_ctx.split(",")):
        x, y = prior.sample(cfg.n_test, cfg.n_points, gt)  # float64
        with torch.no_grad():
            out = net(x[:, :n].float().to(run.device), y[:, :n].float().to(run.device), x[:, n:].float().to(run.device))
            pfn_nll = net.head.nll(out, y[:, n:].float().to(run.device)).double().cpu()
        gp_nll = prior.posterior_nll(x[:, :n], y[:, :n], x[:, n:], y[:, n:])
        gp_mean = torch.stack([exact_posterior(xc, yc, xq, prior.kernel, prior.noise_var)[0]
                               for xc, yc, xq in zip(x[:, :n], y[:, :n], x[:, n:])])
        sq_err.append((net.head.mean_var(out)[0].double().cpu() - gp_mean).square().flatten())
        metrics[f"pfn_nll_ctx{n}"], metrics[f"gp_nll_ctx{n}"] = pfn_nll.mean().item(), gp_nll.mean().item()
        pfn_all.append(pfn_nll.flatten())
        # the prior predictive N(0, \sigma_f^2 + \sigma_n^2), which ignores the context
        var_y = prior.variance + prior.noise_var
        prior_all.append(0.5 * (LOG_2PI + math.log(var_y) + y[:, n:].square() / var_y).flatten())
        gp_all.append(gp_nll.flatten())
        examples[n] = (x[0], y[0])
    metrics["pfn_nll"], metrics["gp_nll"] = torch.cat(pfn_all).mean().item(), torch.cat(gp_all).mean().item()
    metrics["nll_gap"] = metrics["pfn_nll"] - metrics["gp_nll"]
    metrics["mean_rmse"] = torch.cat(sq_err).mean().sqrt().item()
    for which, n in (("small", min(examples)), ("large", max(examples))):
        metrics[f"ctx_{which}"] = n
        metrics[f"pfn_nll_{which}"], metrics[f"gp_nll_{which}"] = metrics[f"pfn_nll_ctx{n}"], metrics[f"gp_nll_ctx{n}"]
    metrics["prior_nll"] = torch.cat(prior_all).mean().item()
    _plot(run, net, prior, examples, curve, metrics)
    return metrics


def _plot(run, net: PFN, prior: GPPrior, examples: dict, curve: list[float], metrics: dict) -> None:
    ctx_sizes = sorted(examples)[:3]
    with run.figure("pfn_posterior", ncols=len(ctx_sizes) + 1, size=(4.2 * (len(ctx_sizes) + 1), 3.6)) as (fig, axes):
        grid = torch.linspace(0, 1, 200, dtype=torch.float64)[:, None]  # (200, 1)
        for ax, n in zip(axes, ctx_sizes):
            x, y = examples[n]
            mean, var_f = exact_posterior(x[:n], y[:n], grid, prior.kernel, prior.noise_var)
            sd = (var_f + prior.noise_var).sqrt()
            with torch.no_grad():
                dev = next(net.parameters()).device
                out = net(x[None, :n].float().to(dev), y[None, :n].float().to(dev), grid[None].float().to(dev))
            p_mean, p_var = (t[0].double().cpu() for t in net.head.mean_var(out))
            p_sd = p_var.sqrt()
            ax.fill_between(grid[:, 0], mean - 2 * sd, mean + 2 * sd, color="C0", alpha=0.2, label="GP ±2σ")
            ax.plot(grid[:, 0], mean, "C0", label="exact GP")
            ax.plot(grid[:, 0], p_mean, "C3--", label="PFN")
            ax.plot(grid[:, 0], p_mean - 2 * p_sd, "C3:", lw=1)
            ax.plot(grid[:, 0], p_mean + 2 * p_sd, "C3:", lw=1)
            ax.plot(x[:n, 0], y[:n], "k.", ms=8, label=f"{n} context points")
            ax.set(xlabel="x", ylabel="y", title=f"{n} points: NLL PFN {metrics[f'pfn_nll_ctx{n}']:.2f}, "
                                                   f"GP {metrics[f'gp_nll_ctx{n}']:.2f}")
            ax.legend(fontsize=7)
        axes[-1].plot(range(100, 100 * len(curve) + 1, 100), curve, label="PFN training NLL")
        axes[-1].axhline(metrics["gp_nll"], color="C0", ls="--", label="exact GP (test)")
        axes[-1].set(xlabel="step", ylabel="NLL (nats)", title="prior-data NLL")
        axes[-1].legend(fontsize=8)
