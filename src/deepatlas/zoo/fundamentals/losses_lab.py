"""Losses in action: what each loss of `deepatlas.nn.losses` does to the model it trains.

A loss decides which mistakes matter. Squared error lets a few gross outliers drag a
regression line; absolute and Huber error cap their pull. Cross-entropy's gradient with
respect to the logits is the predicted distribution minus the target; the hinge ignores
samples beyond its margin; focal loss re-weights easy and hard examples; contrastive and
triplet losses shape distances between embeddings. Each lab below measures one of these
statements on data small enough for a laptop.

    \\mathcal{L}_\\delta = \\tfrac12 r^2 \\ (|r| \\le \\delta),\\ \\delta(|r| - \\tfrac12\\delta)\\ \\text{otherwise}
    \\partial \\mathcal{L}_{CE} / \\partial z = \\mathrm{softmax}(z) - y
    \\mathrm{FL} = -\\alpha_t (1 - p_t)^\\gamma \\log p_t

Huber 1964; Cortes & Vapnik 1995; Hadsell, Chopra & LeCun, CVPR 2006; Schroff et al., CVPR 2015;
Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.nn import losses as L

# ============================================================ huber-loss/outliers


@dataclass
class OutlierConfig:
    n: int = 200
    outlier_frac: float = 0.1
    noise: float = 0.5  # std of the ordinary noise on y
    delta: float = 1.0  # Huber threshold, about two noise standard deviations
    steps: int = 2000
    lr: float = 0.1


def _line_data(cfg: OutlierConfig, g: torch.Generator):
    """y = 2x + 0.5 + noise on x in [-2, 2]; a fraction of the targets get a gross error of +10 to +20."""
    x = torch.rand(cfg.n, generator=g) * 4 - 2
    X = torch.stack([x, torch.ones(cfg.n)], 1)  # (n, 2): slope and intercept features
    w_true = torch.tensor([2.0, 0.5])
    y_clean = X @ w_true + cfg.noise * torch.randn(cfg.n, generator=g)
    k = round(cfg.outlier_frac * cfg.n)
    outliers = torch.randperm(cfg.n, generator=g)[:k]
    y = y_clean.clone()
    y[outliers] += 10 + 10 * torch.rand(k, generator=g)  # one-sided, like sensor spikes
    return X, y, y_clean, w_true, outliers


@lab(
    "huber-loss/outliers",
    card="huber-loss",
    config=OutlierConfig,
    scales={"quick": {"steps": 300}, "default": {}, "full": {"n": 2000, "steps": 5000}},
    goals=[
        Goal("mse_ols_gap", "<=", 1e-3),
        Goal("huber_param_error", "<=", 0.3),
        Goal("mae_param_error", "<=", 0.3),
    ],
    claims=[
        Check(
            "mse-loss-outlier-sensitive",
            lambda m: m["mse_param_error"] >= 5 * m["clean_param_error"],
            "with {outlier_pct:.0f}% gross outliers the MSE fit misses the true (slope, intercept) by "
            "{mse_param_error:.3f}, {mse_vs_clean:.0f}x its error {clean_param_error:.3f} on the same data "
            "without them (supported at >= 5x)",
        ),
        Check(
            "mae-loss-robust",
            lambda m: m["mae_param_error"] <= m["mse_param_error"] / 5,
            "parameter error with {outlier_pct:.0f}% outliers: MAE {mae_param_error:.3f} vs MSE {mse_param_error:.3f} "
            "(supported at 5x smaller); the MAE subgradient still has norm {mae_final_grad:.1e} at the end",
        ),
        Check(
            "huber-loss-outliers",
            lambda m: m["huber_param_error"] <= m["mse_param_error"] / 5 and m["huber_final_grad"] <= 1e-6,
            "parameter error with {outlier_pct:.0f}% outliers: Huber (delta {delta:g}) {huber_param_error:.3f} vs "
            "MSE {mse_param_error:.3f} (supported at 5x smaller); gradient descent settles where the Huber "
            "gradient is {huber_final_grad:.1e}, while MAE's subgradient stays at {mae_final_grad:.1e}",
        ),
    ],
    budget_s=10,
    threads=1,
)
def outliers(run, cfg: OutlierConfig) -> dict:
    """MSE, MAE and Huber fits of a line whose targets carry 10% gross outliers."""
    X, y, y_clean, w_true, outlier_idx = _line_data(cfg, torch.Generator().manual_seed(run.seed))
    fits = {
        "mse": lambda r: L.mse_loss(r, y),
        "mae": lambda r: L.mae_loss(r, y),
        "huber": lambda r: L.huber_loss(r, y, cfg.delta),
    }
    metrics: dict = {"outlier_pct": 100 * cfg.outlier_frac, "delta": cfg.delta}
    weights, curves = {}, {}
    for name, loss_fn in fits.items():
        w = torch.zeros(2, requires_grad=True)
        curve = []
        for step in run.progress(range(cfg.steps), desc=name):
            loss = loss_fn(X @ w)
            (grad,) = torch.autograd.grad(loss, w)
            with torch.no_grad():
                # w \leftarrow w - \eta \nabla_w \mathcal{L}
                w -= cfg.lr * grad
            if step % 20 == 0 or step == cfg.steps - 1:
                run.log(step, **{f"{name}_loss": loss})
                curve.append((step, (w.detach() - w_true).norm().item()))
        weights[name], curves[name] = w.detach(), curve
        metrics[f"{name}_param_error"] = (w.detach() - w_true).norm().item()
        metrics[f"{name}_final_grad"] = grad.norm().item()
    # closed-form least squares: with and without the outliers
    w_ols = torch.linalg.lstsq(X, y[:, None]).solution.squeeze(1)
    w_clean = torch.linalg.lstsq(X, y_clean[:, None]).solution.squeeze(1)
    metrics["mse_ols_gap"] = (weights["mse"] - w_ols).norm().item()
    metrics["clean_param_error"] = (w_clean - w_true).norm().item()
    metrics["mse_vs_clean"] = metrics["mse_param_error"] / metrics["clean_param_error"]

    colors = {"mse": "#d62728", "mae": "#2ca02c", "huber": "#1f77b4"}
    labels = {"mse": "MSE", "mae": "MAE", "huber": f"Huber (δ={cfg.delta:g})"}
    with run.figure("outliers", ncols=2, size=(10, 4)) as (fig, (ax, ax_err)):
        inlier = torch.ones(cfg.n, dtype=torch.bool)
        inlier[outlier_idx] = False
        ax.scatter(X[inlier, 0], y[inlier], s=10, c="0.5", label="data")
        ax.scatter(X[~inlier, 0], y[~inlier], s=18, c="black", marker="x", label="gross outliers")
        xs = torch.tensor([-2.0, 2.0])
        ax.plot(xs, w_true[0] * xs + w_true[1], "k--", label="true line")
        for name, w in weights.items():
            ax.plot(xs, w[0] * xs + w[1], color=colors[name], label=f"{labels[name]} fit")
        ax.set(title="fitted lines", xlabel="x", ylabel="y")
        ax.legend(fontsize=8)
        for name, curve in curves.items():
            steps, errs = zip(*curve)
            ax_err.plot(steps, errs, color=colors[name], label=labels[name])
        ax_err.axhline(metrics["clean_param_error"], color="k", ls=":", label="OLS without outliers")
        ax_err.set(title="||w - w_true|| during gradient descent", xlabel="step", yscale="log")
        ax_err.legend(fontsize=8)
    return metrics


# ============================================================ focal-loss/imbalance


@dataclass
class ImbalanceConfig:
    n_minority: int = 100  # training positives; the test set has 5x as many
    ratio: int = 20  # majority : minority
    separation: float = 2.5  # distance between the class means, in standard deviations
    repeats: int = 8  # independent data draws, trained side by side
    gamma: float = 2.0
    alpha: float = 0.25  # RetinaNet's choice, weighing the rare (positive) class by alpha
    steps: int = 200  # at most this many L-BFGS iterations


def _two_gaussians(cfg: ImbalanceConfig, n_minority: int, g: torch.Generator):
    """(R, N, 2) points and (R, N) labels: majority N(0, I), minority N(mu, I) with |mu| = separation."""
    n_major = n_minority * cfg.ratio
    mu = torch.full((2,), cfg.separation / math.sqrt(2))
    x0 = torch.randn(cfg.repeats, n_major, 2, generator=g)
    x1 = torch.randn(cfg.repeats, n_minority, 2, generator=g) + mu
    y = torch.cat([torch.zeros(n_major), torch.ones(n_minority)]).expand(cfg.repeats, -1)
    return torch.cat([x0, x1], 1), y


def _auc(score: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ROC AUC per row (Mann-Whitney): the chance that a positive outranks a negative. (R, N) -> (R,)"""
    ranks = score.argsort(1).argsort(1).double() + 1
    n_pos = y.sum(1)
    n_neg = y.shape[1] - n_pos
    return ((ranks * y).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@lab(
    "focal-loss/imbalance",
    card="focal-loss",
    config=ImbalanceConfig,
    scales={"quick": {"repeats": 2, "steps": 20}, "default": {}, "full": {"repeats": 64, "n_minority": 500}},
    goals=[Goal("ce_auc", ">=", 0.93), Goal("focal_auc", ">=", 0.93),
           Goal("ce_final_grad", "<=", 1e-3), Goal("focal_final_grad", "<=", 1e-3)],
    claims=[
        Check(
            "focal-loss-imbalance",
            lambda m: m["recall_gain"] >= 0.02 and m["recall_gain"] > 2 * m["recall_gain_se"],
            "1:{ratio} two-Gaussian problem, logistic model, {repeats} data draws, threshold 0.5: minority recall "
            "CE {ce_recall:.3f}, focal gamma={gamma:g} {focal_recall:.3f} (gain {recall_gain:+.3f} +- "
            "{recall_gain_se:.3f}; supported at >= +0.02 and 2 s.e.), focal with alpha={alpha:g} "
            "{focal_alpha_recall:.3f}; balanced accuracy CE {ce_balanced_acc:.3f}, focal {focal_balanced_acc:.3f}; "
            "for comparison class-weighted CE reaches recall {wce_recall:.3f} at precision {wce_precision:.3f}",
        ),
    ],
    budget_s=20,
    threads=1,
)
def imbalance(run, cfg: ImbalanceConfig) -> dict:
    """Cross-entropy vs focal loss on a 1:20 imbalanced problem: minority recall at threshold 0.5."""
    g = torch.Generator().manual_seed(run.seed)
    x, y = _two_gaussians(cfg, cfg.n_minority, g)  # train (R, N, 2), (R, N)
    x_test, y_test = _two_gaussians(cfg, 5 * cfg.n_minority, g)
    losses = {
        "ce": lambda z: L.binary_cross_entropy_with_logits(z, y),
        "focal": lambda z: L.binary_focal_loss_with_logits(z, y, cfg.gamma),
        "focal_alpha": lambda z: L.binary_focal_loss_with_logits(z, y, cfg.gamma, cfg.alpha),
        "wce": lambda z: L.binary_cross_entropy_with_logits(z, y, pos_weight=float(cfg.ratio)),
    }
    metrics: dict = {k: getattr(cfg, k) for k in ("ratio", "repeats", "gamma", "alpha")}
    boundaries, recalls = {}, {}
    for name, loss_fn in losses.items():
        # logistic regression, one per data draw: the Bayes boundary of two equal-covariance Gaussians is a line,
        # so any difference below comes from the loss, not from the model's capacity
        w = torch.zeros(cfg.repeats, 2, requires_grad=True)
        b = torch.zeros(cfg.repeats, 1, requires_grad=True)
        # a convex problem: L-BFGS reaches the minimum of every loss, so none wins by converging faster
        opt = torch.optim.LBFGS([w, b], max_iter=cfg.steps, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-9, tolerance_change=1e-12)
        evals = 0

        def closure():
            nonlocal evals
            opt.zero_grad()
            z = torch.einsum("rnd,rd->rn", x, w) + b  # (R, N) logits
            loss = loss_fn(z) * cfg.repeats  # the mean over draws times R: each draw gets its own full gradient
            loss.backward()
            run.log(evals, **{f"{name}_loss": loss / cfg.repeats})
            evals += 1
            return loss

        opt.step(closure)
        closure()  # the gradient at the final point
        metrics[f"{name}_final_grad"] = torch.cat([w.grad.ravel(), b.grad.ravel()]).norm().item()
        with torch.no_grad():
            z = torch.einsum("rnd,rd->rn", x_test, w) + b
            pred = (z > 0).double()
            tp, fp = (pred * y_test).sum(1), (pred * (1 - y_test)).sum(1)
            recall = tp / y_test.sum(1)  # (R,)
            specificity = 1 - fp / (1 - y_test).sum(1)
            metrics[f"{name}_recall"] = recall.mean().item()
            metrics[f"{name}_precision"] = (tp / (tp + fp).clamp_min(1)).mean().item()
            metrics[f"{name}_balanced_acc"] = ((recall + specificity) / 2).mean().item()
            metrics[f"{name}_auc"] = _auc(z, y_test).mean().item()
        boundaries[name], recalls[name] = (w[0].detach(), b[0, 0].item()), recall
    gain = recalls["focal"] - recalls["ce"]  # paired over the same draws
    metrics["recall_gain"] = gain.mean().item()
    metrics["recall_gain_se"] = (gain.std() / math.sqrt(cfg.repeats)).item() if cfg.repeats > 1 else float("nan")

    labels = {"ce": "CE", "focal": f"focal γ={cfg.gamma:g}", "focal_alpha": f"focal γ={cfg.gamma:g} α={cfg.alpha:g}",
              "wce": f"weighted CE ({cfg.ratio}:1)"}
    colors = {"ce": "#d62728", "focal": "#1f77b4", "focal_alpha": "#9467bd", "wce": "#2ca02c"}
    with run.figure("imbalance", ncols=2, size=(10, 4)) as (fig, (ax, ax_bar)):
        xt, yt = x_test[0], y_test[0]
        ax.scatter(*xt[yt == 0][:1500].T, s=3, c="0.7", label="majority (first 1500)")
        ax.scatter(*xt[yt == 1].T, s=5, c="black", label="minority")
        xs = torch.tensor([-4.0, 6.0])
        for name, (w, b) in boundaries.items():
            ax.plot(xs, -(w[0] * xs + b) / w[1], color=colors[name], label=labels[name])
        ax.set(xlim=(-4, 6), ylim=(-4, 6), title="test draw 1 and the p = 0.5 boundaries", aspect="equal")
        ax.legend(fontsize=7, loc="lower right")
        kinds = ["recall", "precision", "balanced_acc"]
        for i, name in enumerate(losses):
            ax_bar.bar([k + 0.2 * i for k in range(3)], [metrics[f"{name}_{k}"] for k in kinds], width=0.2,
                       color=colors[name], label=labels[name])
        ax_bar.set_xticks([k + 0.3 for k in range(3)], ["minority recall", "precision", "balanced acc."])
        ax_bar.set(ylim=(0, 1), title=f"test, mean of {cfg.repeats} draws")
        ax_bar.legend(fontsize=7)
    return metrics


# ============================================================ cross-entropy/softmax-gradient


@dataclass
class SoftmaxGradientConfig:
    n: int = 512
    classes: int = 10
    logit_scale: float = 5.0
    saturated_logit: float = -10.0  # a confidently wrong sigmoid output for a positive target


@lab(
    "cross-entropy/softmax-gradient",
    card="cross-entropy",
    config=SoftmaxGradientConfig,
    scales={"quick": {"n": 64}, "default": {}, "full": {"n": 65536}},
    goals=[Goal("softmax_grad_error", "<=", 1e-12), Goal("sigmoid_grad_error", "<=", 1e-12)],
    claims=[
        Check(
            "cross-entropy-softmax-gradient",
            lambda m: m["softmax_grad_error"] <= 1e-12 and m["sigmoid_grad_error"] <= 1e-12,
            "autograd through log-sum-exp cross-entropy vs softmax(z) - y on {n} x {classes} float64 logits: max "
            "difference {softmax_grad_error:.1e} (binary: sigmoid(z) - y, {sigmoid_grad_error:.1e}); at a confidently "
            "wrong logit {saturated_logit:g} the gradient is {ce_saturated_grad:.3f} with cross-entropy and "
            "{mse_saturated_grad:.1e} with MSE on the sigmoid",
        ),
    ],
    budget_s=10,
    threads=1,
)
def softmax_gradient(run, cfg: SoftmaxGradientConfig) -> dict:
    """The gradient of softmax cross-entropy is the predicted distribution minus the one-hot target."""
    g = torch.Generator().manual_seed(run.seed)
    z = (cfg.logit_scale * torch.randn(cfg.n, cfg.classes, generator=g, dtype=torch.float64)).requires_grad_()
    y = torch.randint(cfg.classes, (cfg.n,), generator=g)
    loss = L.cross_entropy(z, y, reduction="sum")
    run.log(0, loss=loss)
    (grad,) = torch.autograd.grad(loss, z)
    one_hot = torch.zeros_like(z).scatter_(1, y[:, None], 1.0)
    # \partial \mathcal{L} / \partial z = \mathrm{softmax}(z) - y
    softmax_error = (grad - (torch.softmax(z, 1) - one_hot)).abs().max().item()

    zb = z[:, 0].detach().requires_grad_()  # (n,) binary logits
    yb = (y % 2).double()
    (grad_b,) = torch.autograd.grad(L.binary_cross_entropy_with_logits(zb, yb, reduction="sum"), zb)
    # \partial \mathcal{L} / \partial z = \sigma(z) - y
    sigmoid_error = (grad_b - (torch.sigmoid(zb) - yb)).abs().max().item()

    # gradient magnitude against the logit for a positive target: CE on the logit vs MSE on the sigmoid
    grid = torch.linspace(-12, 12, 241, dtype=torch.float64, requires_grad=True)
    ones = torch.ones_like(grid)
    (g_ce,) = torch.autograd.grad(L.binary_cross_entropy_with_logits(grid, ones, reduction="sum"), grid)
    (g_mse,) = torch.autograd.grad(L.mse_loss(torch.sigmoid(grid), ones, reduction="sum"), grid)
    at = (grid.detach() - cfg.saturated_logit).abs().argmin()
    metrics = {
        "n": cfg.n, "classes": cfg.classes, "saturated_logit": cfg.saturated_logit,
        "softmax_grad_error": softmax_error, "sigmoid_grad_error": sigmoid_error,
        "ce_saturated_grad": g_ce[at].abs().item(), "mse_saturated_grad": g_mse[at].abs().item(),
    }
    with run.figure("softmax_gradient", size=(6, 4)) as (fig, ax):
        ax.plot(grid.detach(), g_ce.abs(), label="cross-entropy: |σ(z) - 1|")
        ax.plot(grid.detach(), g_mse.abs(), label="MSE on σ(z): |2(σ - 1)σ(1 - σ)|")
        ax.set(yscale="log", xlabel="logit z (target y = 1)", ylabel="|∂L/∂z|",
               title="CE keeps a gradient when confidently wrong")
        ax.legend(fontsize=8)
    return metrics


# ============================================================ hinge-loss/margin


@dataclass
class MarginConfig:
    n: int = 200
    separation: float = 3.0
    lam: float = 0.01  # L2 strength of the soft-margin SVM
    steps: int = 3000
    lr: float = 0.1


@lab(
    "hinge-loss/margin",
    card="hinge-loss",
    config=MarginConfig,
    scales={"quick": {"steps": 300}, "default": {}, "full": {"n": 2000, "steps": 20000}},
    goals=[Goal("train_acc", ">=", 0.9)],
    claims=[
        Check(
            "hinge-loss-margin",
            lambda m: m["n_beyond"] > 0 and m["n_inside"] > 0 and m["beyond_max_loss"] == 0
            and m["beyond_max_grad"] == 0 and m["inside_grad_dev"] <= 1e-12 and m["inside_linear_dev"] <= 1e-12,
            "after training a linear SVM, {n_beyond} of {n} samples have y*f > 1: largest loss {beyond_max_loss:g}, "
            "largest gradient {beyond_max_grad:g}; the other {n_inside} (misclassified or inside the margin) have "
            "loss 1 - y*f (max deviation {inside_linear_dev:.0e}) and gradient -y (deviation {inside_grad_dev:.0e})",
        ),
    ],
    budget_s=10,
    threads=1,
)
def margin(run, cfg: MarginConfig) -> dict:
    """A soft-margin linear SVM: only samples inside the margin carry loss and gradient."""
    g = torch.Generator().manual_seed(run.seed)
    y = torch.where(torch.arange(cfg.n) % 2 == 0, 1.0, -1.0)  # (n,) labels in {-1, +1}
    x = torch.randn(cfg.n, 2, generator=g) + (cfg.separation / (2 * math.sqrt(2))) * y[:, None]  # (n, 2)
    w = torch.zeros(2, requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    for step in run.progress(range(cfg.steps), desc="SVM"):
        # \min_{w,b}\ \tfrac{\lambda}{2}\lVert w\rVert^2 + \tfrac1N \sum_i \max(0, 1 - y_i (w^\top x_i + b))
        loss = 0.5 * cfg.lam * w.pow(2).sum() + L.hinge_loss(x @ w + b, y)
        gw, gb = torch.autograd.grad(loss, (w, b))
        with torch.no_grad():
            w -= cfg.lr * gw
            b -= cfg.lr * gb
        if step % 50 == 0 or step == cfg.steps - 1:
            run.log(step, loss=loss)

    f = (x @ w + b).detach().requires_grad_()  # (n,) scores as leaves: per-sample d loss_i / d f_i
    per_sample = L.hinge_loss(f, y, reduction="none")
    (grad,) = torch.autograd.grad(per_sample.sum(), f)
    yf = (y * f).detach()
    beyond = yf > 1  # exactly on the margin any value in [-y, 0] is a subgradient; autograd picks -y
    metrics = {
        "n": cfg.n, "n_beyond": int(beyond.sum()), "n_inside": int((~beyond).sum()),
        "train_acc": (yf > 0).float().mean().item(),
        "beyond_max_loss": per_sample[beyond].max().item() if beyond.any() else float("nan"),
        "beyond_max_grad": grad[beyond].abs().max().item() if beyond.any() else float("nan"),
        "inside_linear_dev": (per_sample[~beyond] - (1 - yf[~beyond])).abs().max().item() if (~beyond).any() else 0.0,
        "inside_grad_dev": (grad[~beyond] + y[~beyond]).abs().max().item() if (~beyond).any() else 0.0,
    }
    with run.figure("margin", ncols=2, size=(10, 4)) as (fig, (ax, ax_loss)):
        w_, b_ = w.detach(), b.item()
        ax.scatter(*x[y > 0].T, s=8, c="#d62728", label="y = +1")
        ax.scatter(*x[y < 0].T, s=8, c="#1f77b4", label="y = -1")
        ax.scatter(*x[~beyond].T, s=60, facecolors="none", edgecolors="black", label="inside margin (gradient)")
        xs = torch.tensor([x[:, 0].min().item(), x[:, 0].max().item()])
        for level, style in [(0, "-"), (1, "--"), (-1, "--")]:
            ax.plot(xs, (level - b_ - w_[0] * xs) / w_[1], "k" + style, lw=1)
        ax.set(title="linear SVM: boundary and margins", ylim=(x[:, 1].min().item(), x[:, 1].max().item()))
        ax.legend(fontsize=7)
        ax_loss.scatter(yf, per_sample.detach(), s=8, c=["0.6" if bo else "black" for bo in beyond.tolist()])
        ax_loss.axvline(1, color="k", ls=":")
        ax_loss.set(xlabel="y · f(x)", ylabel="hinge loss", title="per-sample loss: zero beyond the margin")
    return metrics


# ============================================================ contrastive-loss/embedding, triplet-loss/embedding


@dataclass
class EmbeddingConfig:
    dim: int = 8
    hidden: int = 64
    margin: float = 1.0
    batch: int = 256
    steps: int = 1000
    lr: float = 3e-3
    n_eval: int = 4000  # held-out pairs / triplets


class ClassSampler:
    """Draws indices of a chosen class, and random pairs or triplets with same / different classes."""

    def __init__(self, y: torch.Tensor, classes: int):
        self.y, self.classes = y, classes
        self.order = torch.argsort(y, stable=True)  # indices grouped by class
        self.count = torch.bincount(y, minlength=classes)
        self.start = self.count.cumsum(0) - self.count

    def of_class(self, c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.order[self.start[c] + (torch.rand(len(c), generator=g) * self.count[c]).long()]

    def other_class(self, c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return (c + torch.randint(1, self.classes, c.shape, generator=g)) % self.classes

    def pairs(self, n: int, g: torch.Generator):
        """(i, j, Y) with Y = 1 for a dissimilar pair (half of them), 0 for a similar one, as in Hadsell et al."""
        i = torch.randint(len(self.y), (n,), generator=g)
        dissimilar = torch.rand(n, generator=g) < 0.5
        j = self.of_class(torch.where(dissimilar, self.other_class(self.y[i], g), self.y[i]), g)
        return i, j, dissimilar.float()

    def triplets(self, n: int, g: torch.Generator):
        a = torch.randint(len(self.y), (n,), generator=g)
        return a, self.of_class(self.y[a], g), self.of_class(self.other_class(self.y[a], g), g)


def _train_embedding(run, cfg: EmbeddingConfig, kind: str):
    """A 64-hidden-dim MLP embedding of the 8x8 digits trained on random pairs or triplets."""
    from deepatlas.data.real import digits

    data = digits()
    x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    net = nn.Sequential(nn.Linear(x.shape[1], cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.dim))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(run.seed)
    sampler = ClassSampler(y, 10)
    for step in run.progress(range(cfg.steps), desc=kind):
        if kind == "contrastive":
            i, j, dissimilar = sampler.pairs(cfg.batch, g)
            loss = L.contrastive_loss(net(x[i]), net(x[j]), dissimilar, cfg.margin)
        else:
            a, p, n = sampler.triplets(cfg.batch, g)
            loss = L.triplet_margin_loss(net(x[a]), net(x[p]), net(x[n]), cfg.margin)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            run.log(step, loss=loss)
    with torch.no_grad():
        e, e_test = net(x), net(x_test)  # (N, dim)
    nn_acc = (y[torch.cdist(e_test, e).argmin(1)] == y_test).float().mean().item()
    return e, e_test, y, y_test, nn_acc


def _plot_embedding(run, name: str, e_test: torch.Tensor, y_test: torch.Tensor, title: str) -> None:
    """The held-out embeddings projected on their two principal axes, coloured by digit."""
    centred = e_test - e_test.mean(0)
    coords = centred @ torch.linalg.svd(centred, full_matrices=False).Vh[:2].T  # (N, 2)
    with run.figure(name) as (fig, ax):
        points = ax.scatter(coords[:, 0], coords[:, 1], c=y_test, cmap="tab10", s=8)
        fig.colorbar(points, ax=ax, label="digit")
        ax.set(title=title, xlabel="PC 1", ylabel="PC 2")


@lab(
    "contrastive-loss/embedding",
    card="contrastive-loss",
    config=EmbeddingConfig,
    scales={"quick": {"steps": 100, "n_eval": 500}, "default": {}, "full": {"steps": 5000, "dim": 32}},
    goals=[Goal("nn_acc", ">=", 0.9)],
    claims=[
        Check(
            "contrastive-loss-embedding",
            lambda m: m["verification_acc"] >= 0.9 and m["nn_acc"] >= 0.9,
            "held-out digit pairs told apart by distance < margin/2 with accuracy {verification_acc:.3f}, "
            "1-nearest-neighbour accuracy {nn_acc:.3f} in the {dim}-d embedding (supported at >= 0.9 each); "
            "{similar_within_margin:.0%} of similar pairs lie within the margin, but only "
            "{dissimilar_beyond_margin:.0%} of dissimilar pairs reach it ({train_dissimilar_beyond_margin:.0%} "
            "of training pairs): the squared hinge fades as D approaches m",
        ),
    ],
    budget_s=20,
    threads=1,
)
def contrastive_embedding(run, cfg: EmbeddingConfig) -> dict:
    """A siamese digit embedding trained with the pairwise contrastive loss, verified on held-out pairs."""
    e, e_test, y, y_test, nn_acc = _train_embedding(run, cfg, "contrastive")
    g = torch.Generator().manual_seed(10_000 + run.seed)
    metrics: dict = {"dim": cfg.dim, "nn_acc": nn_acc}
    for split, emb, labels in [("", e_test, y_test), ("train_", e, y)]:
        i, j, dissimilar = ClassSampler(labels, 10).pairs(cfg.n_eval, g)
        d = (emb[i] - emb[j]).norm(dim=1)  # (n_eval,)
        far = d >= cfg.margin
        metrics[f"{split}dissimilar_beyond_margin"] = far[dissimilar == 1].float().mean().item()
        metrics[f"{split}similar_within_margin"] = (~far[dissimilar == 0]).float().mean().item()
        metrics[f"{split}verification_acc"] = ((d >= cfg.margin / 2).float() == dissimilar).float().mean().item()
    _plot_embedding(run, "contrastive_embedding", e_test, y_test, f"contrastive loss: held-out digits, {cfg.dim}-d")
    return metrics


@lab(
    "triplet-loss/embedding",
    card="triplet-loss",
    config=EmbeddingConfig,
    scales={"quick": {"steps": 100, "n_eval": 500}, "default": {}, "full": {"steps": 5000, "dim": 32}},
    goals=[Goal("nn_acc", ">=", 0.9)],
    claims=[
        Check(
            "triplet-loss-embedding",
            lambda m: m["triplet_margin_met"] >= 0.9,
            "on {n_eval} held-out digit triplets the anchor is closer to the positive than to the negative in "
            "{triplet_order:.1%} and by at least the margin {margin:g} in {triplet_margin_met:.1%} "
            "(training triplets: {train_triplet_margin_met:.1%}; supported at >= 90%); 1-NN accuracy {nn_acc:.3f}",
        ),
    ],
    budget_s=20,
    threads=1,
)
def triplet_embedding(run, cfg: EmbeddingConfig) -> dict:
    """A digit embedding trained with the triplet loss, checked on held-out triplets."""
    e, e_test, y, y_test, nn_acc = _train_embedding(run, cfg, "triplet")
    g = torch.Generator().manual_seed(10_000 + run.seed)
    metrics: dict = {"n_eval": cfg.n_eval, "margin": cfg.margin, "nn_acc": nn_acc}
    for split, emb, labels in [("", e_test, y_test), ("train_", e, y)]:
        a, p, n = ClassSampler(labels, 10).triplets(cfg.n_eval, g)
        gap = (emb[a] - emb[n]).norm(dim=1) - (emb[a] - emb[p]).norm(dim=1)  # D(a, n) - D(a, p)
        metrics[f"{split}triplet_order"] = (gap > 0).float().mean().item()
        metrics[f"{split}triplet_margin_met"] = (gap >= cfg.margin).float().mean().item()
    _plot_embedding(run, "triplet_embedding", e_test, y_test, f"triplet loss: held-out digits, {cfg.dim}-d")
    return metrics
