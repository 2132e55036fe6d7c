"""Regularisation labs: does each remedy really narrow the gap between training and test accuracy?

An over-parameterised MLP fits any training set, noise included; the test accuracy tells
how much of the fit was signal. Regularisers trade training fit for generalisation: L1 and
L2 penalties price large weights, dropout trains random sub-networks, early stopping keeps
the weights that validated best, augmentation shows the net shifted copies of each digit.

    \\mathrm{gap} = \\mathrm{acc}_{train} - \\mathrm{acc}_{test},
    \\mathcal{L}_{reg} = \\mathcal{L} + \\lambda \\lVert w \\rVert_2^2

Overfitting needs something to memorise. With clean labels the 64-256-256-10 MLP trained on
300 of the 8x8 digits reaches 0.94-0.96 test accuracy, a gap of about 0.05, and (measured for
seeds 0 and 1) dropout and L2 narrowed it by at most 0.03 while shifts, L1, early stopping and
a smaller net left it equal or wider. The gap lab therefore replaces a fixed 20 % of the
training and validation labels by wrong classes (`label_noise`; test labels stay clean), the
setting in which Zhang et al. (arXiv 1611.03530) and Arpit et al. (arXiv 1706.05394) study
memorisation. A smaller model helps only when it is much smaller: in overfitting/capacity-sweep
the gap at 32 and 64 hidden units is about as large as at 256 (0.16-0.21 for seeds 0 and 2),
so the "smaller" variant has 8.

Srivastava et al., "Dropout", JMLR 2014; Prechelt, "Early stopping - but when?", 1998;
Tibshirani, "Regression shrinkage and selection via the lasso", JRSS B 1996; Bishop,
"Neural networks for pattern recognition", 1995 (overfitting and capacity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.regularization import (
    Dropout, EarlyStopping, augment, dropout, l1_penalty, l2_penalty, soft_threshold,
)
from deepatlas.optim.optimizers import SGD

NOISE_SEED = 0  # which labels are wrong is part of the data set: the same for every run seed


class DropoutMLP(nn.Module):
    """64 -> hidden -> hidden -> 10 with ReLU and (inverted) dropout after each hidden layer."""

    def __init__(self, hidden: int, p: float = 0.0, generator: torch.Generator | None = None):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(64, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 10)
        self.drop1, self.drop2 = Dropout(p, generator), Dropout(p, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 8, 8) -> (B, 10) logits
        h = self.drop1(torch.relu(self.fc1(x.flatten(1))))  # (B, hidden)
        h = self.drop2(torch.relu(self.fc2(h)))  # (B, hidden)
        return self.out(h)

    def weights(self) -> list[torch.Tensor]:
        """The matrices a penalty acts on (biases are left free, as is usual)."""
        return [self.fc1.weight, self.fc2.weight, self.out.weight]


def small_digits(n_train: int, n_val: int, label_noise: float, device) -> dict:
    """The first n_train training digits, the next n_val for validation, the full test split;
    a fixed fraction `label_noise` of the training and validation labels replaced by a wrong class."""
    data = digits(flatten=False)
    if n_train + n_val > len(data.x_train):
        raise ValueError(f"n_train + n_val must be at most {len(data.x_train)}, got {n_train} + {n_val}")
    g = torch.Generator().manual_seed(NOISE_SEED)
    y = data.y_train[: n_train + n_val].clone()
    wrong = torch.randperm(len(y), generator=g)[: round(label_noise * len(y))]
    y[wrong] = (y[wrong] + torch.randint(1, 10, (len(wrong),), generator=g)) % 10  # any other class
    x = data.x_train[: n_train + n_val]
    return {k: v.to(device) for k, v in {
        "x_train": x[:n_train], "y_train": y[:n_train], "x_val": x[n_train:], "y_val": y[n_train:],
        "x_test": data.x_test, "y_test": data.y_test}.items()}


@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, cross-entropy) in evaluation mode: dropout off."""
    net.eval()
    logits = net(x)
    net.train()
    return (logits.argmax(1) == y).float().mean().item(), nn.functional.cross_entropy(logits, y).item()


def fit(run, name: str, net: DropoutMLP, data: dict, cfg, g: torch.Generator, *, l1: float = 0.0,
        l2: float = 0.0, patience: int = 0, shift: int = 0) -> tuple[list[tuple[int, float, float]], int]:
    """Mini-batch SGD with momentum (the rate decaying linearly to zero) on the cross-entropy plus the chosen
    penalties; with `patience`, stop early on the validation loss and restore the best weights.

    Returns the (epoch, train accuracy, test accuracy) of every epoch and the epoch whose weights the net keeps."""
    opt = SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    stopper = EarlyStopping(patience) if patience else None
    x, y, n = data["x_train"], data["y_train"], len(data["x_train"])
    history = []
    for epoch in run.progress(range(cfg.epochs), desc=name):
        for group in opt.param_groups:  # linear decay to zero: the last epochs settle instead of jumping around
            group["lr"] = cfg.lr * (1 - epoch / cfg.epochs)
        order = torch.randperm(n, generator=g).to(x.device)
        for i in range(0, n, cfg.batch):
            idx = order[i:i + cfg.batch]
            xb = augment(x[idx], g, shift=shift) if shift else x[idx]  # digits are never flipped
            # \mathcal{L} = \mathrm{CE} + \lambda_1 \lVert W \rVert_1 + \lambda_2 \lVert W \rVert_2^2
            loss = nn.functional.cross_entropy(net(xb), y[idx])
            if l1:
                loss = loss + l1 * l1_penalty(net.weights())
            if l2:
                loss = loss + l2 * l2_penalty(net.weights())
            opt.zero_grad()
            loss.backward()
            opt.step()
        run.log(epoch, **{f"{name}_loss": loss})
        history.append((epoch, evaluate(net, x, y)[0], evaluate(net, data["x_test"], data["y_test"])[0]))
        if stopper and stopper.step(evaluate(net, data["x_val"], data["y_val"])[1], net):
            break
    if stopper:
        stopper.restore(net)
        return history, stopper.best_step
    return history, len(history) - 1


@dataclass
class GapConfig:
    n_train: int = 300
    n_val: int = 300  # only early stopping looks at it
    label_noise: float = 0.2
    hidden: int = 256
    epochs: int = 100
    batch: int = 32
    lr: float = 0.05  # SGD with momentum, decaying linearly to zero
    momentum: float = 0.9
    l1: float = 1e-3
    l2: float = 3e-3
    p_drop: float = 0.5
    patience: int = 10  # epochs without a lower validation loss
    shift: int = 1  # pixels, on 8x8 images
    small_hidden: int = 8  # the "smaller model" remedy


VARIANTS = ("none", "l1", "l2", "dropout", "early_stopping", "augmentation", "smaller")


def _gap_evidence(variant: str, label: str) -> str:
    return (f"{{n_train}} digits with {{label_noise:.0%}} wrong labels, 64-{{hidden}}-{{hidden}}-10 MLP: train/test "
            f"accuracy {{none_train_acc:.3f}}/{{none_test_acc:.3f}} (gap {{none_gap:.3f}}) without regularisation, "
            f"{{{variant}_train_acc:.3f}}/{{{variant}_test_acc:.3f}} (gap {{{variant}_gap:.3f}}) with {label}")


@lab(
    "dropout/regularization-gap",
    card="dropout",
    config=GapConfig,
    scales={"quick": {"epochs": 4, "n_train": 100, "n_val": 100}, "default": {},
            "full": {"epochs": 300, "hidden": 1024}},
    goals=[Goal("none_train_acc", ">=", 0.99), Goal("none_gap", ">=", 0.1)]
    + [Goal(f"{v}_gap_reduction", ">", 0.0) for v in VARIANTS[1:]],
    claims=[
        Check("dropout-regularization-gap", lambda m: m["dropout_gap"] < m["none_gap"],
              _gap_evidence("dropout", "dropout p = {p_drop}")),
        Check("l2-regularization-gap", lambda m: m["l2_gap"] < m["none_gap"],
              _gap_evidence("l2", "an L2 penalty of {l2:g}")
              + "; weight norm {none_weight_norm:.1f} -> {l2_weight_norm:.1f}"),
        Check("early-stopping-gap", lambda m: m["early_stopping_gap"] < m["none_gap"],
              _gap_evidence("early_stopping", "early stopping (patience {patience}, best epoch {best_epoch})")),
        Check("data-augmentation-gap",
              lambda m: m["augmentation_gap"] < m["none_gap"] and m["augmentation_test_acc"] > m["none_test_acc"],
              _gap_evidence("augmentation", "random shifts of up to {shift} pixel")),
        Check("overfitting-remedies", lambda m: all(m[f"{v}_gap"] < m["none_gap"] for v in VARIANTS[1:]),
              "{n_train} digits with {label_noise:.0%} wrong labels: train-test accuracy gap {none_gap:.3f} without "
              "regularisation; {l1_gap:.3f} with L1, {l2_gap:.3f} with L2, {dropout_gap:.3f} with dropout, "
              "{early_stopping_gap:.3f} with early stopping, {augmentation_gap:.3f} with shifts, "
              "{smaller_gap:.3f} with {small_hidden} instead of {hidden} hidden units"),
    ],
    budget_s=45,
    threads=1,
)
def regularization_gap(run, cfg: GapConfig) -> dict:
    """Train-test gap of an MLP on 300 noisily labelled digits: none, L1, L2, dropout, early stopping, shifts, smaller."""
    data = small_digits(cfg.n_train, cfg.n_val, cfg.label_noise, run.device)
    settings = {
        "none": {}, "l1": {"l1": cfg.l1}, "l2": {"l2": cfg.l2}, "dropout": {},
        "early_stopping": {"patience": cfg.patience}, "augmentation": {"shift": cfg.shift}, "smaller": {},
    }
    metrics: dict = {k: getattr(cfg, k) for k in ("n_train", "label_noise", "hidden", "small_hidden", "p_drop", "l2",
                                                  "patience", "shift")}
    curves, kept = {}, {}
    for variant, kwargs in settings.items():
        g = torch.Generator().manual_seed(run.seed)
        torch.manual_seed(run.seed)  # the same initial weights for every variant of the same width
        net = DropoutMLP(cfg.small_hidden if variant == "smaller" else cfg.hidden,
                         cfg.p_drop if variant == "dropout" else 0.0, g).to(run.device)
        curves[variant], kept[variant] = fit(run, variant, net, data, cfg, g, **kwargs)
        train_acc = evaluate(net, data["x_train"], data["y_train"])[0]
        test_acc = evaluate(net, data["x_test"], data["y_test"])[0]
        metrics[f"{variant}_train_acc"], metrics[f"{variant}_test_acc"] = train_acc, test_acc
        metrics[f"{variant}_gap"] = train_acc - test_acc
        metrics[f"{variant}_weight_norm"] = math.sqrt(l2_penalty(net.weights()).item())
    for variant in VARIANTS[1:]:
        metrics[f"{variant}_gap_reduction"] = metrics["none_gap"] - metrics[f"{variant}_gap"]
    metrics["best_epoch"] = kept["early_stopping"]

    with run.figure("regularization_gap", ncols=2, size=(11, 4)) as (fig, (bars, lines)):
        pos = list(range(len(VARIANTS)))
        for offset, split, label in ((-0.2, "train", "train (given labels)"), (0.2, "test", "test")):
            bars.bar([p + offset for p in pos], [metrics[f"{v}_{split}_acc"] for v in VARIANTS], 0.4, label=label)
        for p, v in zip(pos, VARIANTS):
            bars.annotate(f"gap\n{metrics[f'{v}_gap']:.2f}", (p, 1.01), ha="center", fontsize=7)
        bars.set(xticks=pos, ylim=(0, 1.15), ylabel="accuracy", title=f"{cfg.label_noise:.0%} wrong training labels")
        bars.set_xticklabels([v.replace("_", "\n") for v in VARIANTS], fontsize=8)
        bars.legend(loc="lower left", fontsize=7)
        for variant, history in curves.items():
            epochs, train, test = zip(*history)
            gap = [a - b for a, b in zip(train, test)]
            lines.plot(epochs, gap, label=variant, linewidth=2 if variant == "none" else 1)
        lines.axhline(0, color="gray", linewidth=0.5)
        lines.set(xlabel="epoch", ylabel="train - test accuracy", title="the gap while training")
        lines.legend(fontsize=7)
    return metrics


@dataclass
class CapacityConfig:
    widths: str = "2,4,8,16,32,64,256"  # hidden units per layer, smallest to largest
    n_train: int = 300
    label_noise: float = 0.2
    epochs: int = 100
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9


@lab(
    "overfitting/capacity-sweep",
    card="overfitting",
    config=CapacityConfig,
    scales={"quick": {"widths": "2,32", "epochs": 3}, "default": {},
            "full": {"widths": "1,2,4,8,16,32,64,128,256,1024", "epochs": 300}},
    goals=[Goal("largest_train_acc", ">=", 0.99), Goal("smallest_train_acc", "<=", 0.8)],
    claims=[
        Check(
            "overfitting-diagnosis",
            lambda m: m["smallest_train_acc"] < 0.8 and m["smallest_gap"] < 0.1
            and m["largest_train_acc"] >= 0.99 and m["largest_gap"] >= 0.1 and m["largest_gap"] > m["smallest_gap"],
            "{n_train} digits, {label_noise:.0%} wrong labels: width {smallest_width} reaches train/test accuracy "
            "{smallest_train_acc:.3f}/{smallest_test_acc:.3f} (gap {smallest_gap:.3f}); width {largest_width} "
            "{largest_train_acc:.3f}/{largest_test_acc:.3f} (gap {largest_gap:.3f}); the gap peaks at width "
            "{peak_gap_width} ({peak_gap:.3f}) and the best test accuracy is {best_test_acc:.3f} at width {best_width} "
            "(underfit counted as train accuracy < 0.8 with a gap < 0.1, overfit as train accuracy >= 0.99 "
            "with a gap >= 0.1)",
        ),
    ],
    budget_s=30,
    threads=1,
)
def capacity_sweep(run, cfg: CapacityConfig) -> dict:
    """Train and test accuracy against hidden width: from underfitting to memorising the noise."""
    widths = [int(w) for w in cfg.widths.split(",")]
    data = small_digits(cfg.n_train, 0, cfg.label_noise, run.device)
    train, test = [], []
    for width in widths:
        g = torch.Generator().manual_seed(run.seed)
        torch.manual_seed(run.seed)
        net = DropoutMLP(width).to(run.device)
        fit(run, f"width{width}", net, data, cfg, g)
        train.append(evaluate(net, data["x_train"], data["y_train"])[0])
        test.append(evaluate(net, data["x_test"], data["y_test"])[0])
    best = max(range(len(widths)), key=lambda i: test[i])
    peak = max(range(len(widths)), key=lambda i: train[i] - test[i])
    metrics = {
        "n_train": cfg.n_train, "label_noise": cfg.label_noise,
        "smallest_width": widths[0], "smallest_train_acc": train[0], "smallest_test_acc": test[0],
        "smallest_gap": train[0] - test[0],
        "largest_width": widths[-1], "largest_train_acc": train[-1], "largest_test_acc": test[-1],
        "largest_gap": train[-1] - test[-1], "best_width": widths[best], "best_test_acc": test[best],
        "peak_gap_width": widths[peak], "peak_gap": train[peak] - test[peak],
        **{f"train_acc_w{w}": a for w, a in zip(widths, train)}, **{f"test_acc_w{w}": a for w, a in zip(widths, test)},
    }
    with run.figure("capacity_sweep") as (fig, ax):
        ax.plot(widths, train, "o-", label="train (given labels)")
        ax.plot(widths, test, "s-", label="test")
        ax.plot(widths, [a - b for a, b in zip(train, test)], "^:", color="gray", label="gap")
        ax.set(xscale="log", xlabel="hidden units per layer", ylabel="accuracy",
               title=f"{cfg.n_train} digits, {cfg.label_noise:.0%} wrong labels")
        ax.legend()
    return metrics


@dataclass
class InvertedConfig:
    p: float = 0.5
    hidden: int = 256
    epochs: int = 10
    batch: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    draws: int = 2000  # dropout masks per test image for the expectation
    mc_passes: int = 100  # dropout passes averaged for the Monte-Carlo prediction


@lab(
    "dropout/inverted-scaling",
    card="dropout",
    config=InvertedConfig,
    scales={"quick": {"epochs": 1, "draws": 200, "mc_passes": 10}, "default": {},
            "full": {"draws": 20_000, "mc_passes": 500}},
    goals=[Goal("deterministic_test_acc", ">=", 0.9), Goal("inverted_mean_error", "<", 0.05)],
    claims=[
        Check(
            "dropout-inverted-scaling",
            lambda m: m["inverted_mean_error"] < 3 * m["expected_error"] and abs(m["mc_minus_deterministic"]) <= 0.01,
            "over {draws} masks (p = {p}) the mean of the inverted-dropout activations differs from the test-time "
            "activation by {inverted_mean_error:.4f} (relative; sampling error alone {expected_error:.4f}), while "
            "without the 1/(1-p) factor the mean is off by {unscaled_mean_error:.3f}; the unscaled test-time net "
            "reaches {deterministic_test_acc:.3f} test accuracy against {mc_test_acc:.3f} for the average of "
            "{mc_passes} dropout passes",
        ),
    ],
    budget_s=20,
    threads=1,
)
def inverted_scaling(run, cfg: InvertedConfig) -> dict:
    """Inverted dropout: the expected training-time activation equals the deterministic test-time one."""
    x, y, x_test, y_test = digits(flatten=False).to(run.device).tensors()
    g = torch.Generator().manual_seed(run.seed)
    net = DropoutMLP(cfg.hidden, cfg.p, g).to(run.device)
    fit(run, "dropout", net, {"x_train": x, "y_train": y, "x_test": x_test, "y_test": y_test}, cfg, g)

    with torch.no_grad():
        h = torch.relu(net.fc1(x_test.flatten(1)))  # (N, hidden): the activation dropout acts on
        mean = torch.zeros_like(h)
        for _ in range(cfg.draws):
            mean += dropout(h, cfg.p, generator=g) / cfg.draws
        # \lVert \bar{\tilde h} - h \rVert / \lVert h \rVert; without scaling the mean is (1 - p) h
        inverted_error = ((mean - h).norm() / h.norm()).item()
        unscaled_error = ((mean * (1 - cfg.p) - h).norm() / h.norm()).item()
        deterministic = evaluate(net, x_test, y_test)[0]
        probs = torch.zeros(len(x_test), 10, device=x_test.device)
        for _ in range(cfg.mc_passes):  # dropout on: average the predictions of random sub-networks
            probs += net(x_test).softmax(1) / cfg.mc_passes
        mc = (probs.argmax(1) == y_test).float().mean().item()
    se = math.sqrt(cfg.p / ((1 - cfg.p) * cfg.draws))  # std of m / (1 - p) is sqrt(p / (1 - p)), per draw

    with run.figure("inverted_scaling") as (fig, ax):
        hs, ms = h.flatten()[:2000].cpu().numpy(), mean.flatten()[:2000].cpu().numpy()
        ax.scatter(hs, ms, s=3, label=f"inverted: mean of m h / (1-p), {cfg.draws} masks")
        ax.scatter(hs, ms * (1 - cfg.p), s=3, label="without 1/(1-p)")
        top = float(hs.max())
        ax.plot([0, top], [0, top], "k--", linewidth=1, label="test-time activation h")
        ax.set(xlabel="h (test time)", ylabel="mean training-time activation", title=f"dropout p = {cfg.p}")
        ax.legend(fontsize=7)
    return {"p": cfg.p, "draws": cfg.draws, "mc_passes": cfg.mc_passes, "inverted_mean_error": inverted_error,
            "expected_error": se, "unscaled_mean_error": unscaled_error, "deterministic_test_acc": deterministic,
            "mc_test_acc": mc, "mc_minus_deterministic": mc - deterministic}


@dataclass
class SparsityConfig:
    n: int = 100  # training examples
    n_test: int = 1000
    d: int = 50  # features
    informative: int = 5
    noise: float = 0.5
    lam: float = 0.1  # L1 strength in (1/2n) ||y - Xw||^2 + lam ||w||_1
    steps: int = 2000


def ridge(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """argmin (1/2n) ||y - Xw||^2 + lam ||w||^2 in closed form."""
    n, d = x.shape
    # \hat w = (X^\top X + 2 n \lambda I)^{-1} X^\top y
    return torch.linalg.solve(x.T @ x + 2 * n * lam * torch.eye(d, dtype=x.dtype), x.T @ y)


@lab(
    "l1-regularization/sparsity",
    card="l1-regularization",
    config=SparsityConfig,
    scales={"quick": {"steps": 200}, "default": {}, "full": {"n": 200, "d": 500, "informative": 10, "steps": 10_000}},
    goals=[Goal("l1_zero_fraction", ">=", 0.5), Goal("l1_support_recall", ">=", 1.0)],
    claims=[
        Check(
            "l1-regularization-sparsity",
            lambda m: m["l1_zero_fraction"] >= 0.5 and m["l2_zero_fraction"] == 0.0,
            "linear regression with {d} features, {informative} of them informative, {n} examples: the lasso "
            "(proximal gradient, lambda = {lam}) sets {l1_zeros} weights exactly to zero and keeps all "
            "{l1_true_kept} informative ones; ridge with the same L1 norm of the weights ({l1_norm:.2f}) sets "
            "{l2_zeros} to zero (smallest |w| {l2_min_abs:.1e}); plain subgradient descent on the L1 objective "
            "leaves {subgradient_zeros} exact zeros",
        ),
    ],
    budget_s=10,
    threads=1,
)
def sparsity(run, cfg: SparsityConfig) -> dict:
    """L1 against L2 on a sparse linear regression: exact zeros, the informative features kept."""
    g = torch.Generator().manual_seed(run.seed)
    w_true = torch.zeros(cfg.d, dtype=torch.float64)
    w_true[: cfg.informative] = (1 + torch.rand(cfg.informative, generator=g, dtype=torch.float64)) * torch.where(
        torch.rand(cfg.informative, generator=g) < 0.5, -1.0, 1.0).double()  # |w| in [1, 2], random signs
    x = torch.randn(cfg.n + cfg.n_test, cfg.d, generator=g, dtype=torch.float64)
    y = x @ w_true + cfg.noise * torch.randn(cfg.n + cfg.n_test, generator=g, dtype=torch.float64)
    x, x_test, y, y_test = x[: cfg.n], x[cfg.n:], y[: cfg.n], y[cfg.n:]

    lr = 1 / torch.linalg.matrix_norm(x.T @ x / cfg.n, 2).item()  # 1 / Lipschitz constant of the smooth part
    w_l1, w_sub = torch.zeros(cfg.d, dtype=torch.float64), torch.zeros(cfg.d, dtype=torch.float64)
    for step in run.progress(range(cfg.steps), desc="lasso"):
        # w \leftarrow \mathrm{prox}_{\eta\lambda|\cdot|}\big(w - \eta \nabla \tfrac{1}{2n}\lVert y - Xw \rVert^2\big)
        w_l1 = soft_threshold(w_l1 - lr * x.T @ (x @ w_l1 - y) / cfg.n, lr * cfg.lam)
        # subgradient step: w \leftarrow w - \eta (\nabla + \lambda\,\mathrm{sign}(w)), with a decaying rate
        w_sub = w_sub - lr / math.sqrt(step + 1) * (x.T @ (x @ w_sub - y) / cfg.n + cfg.lam * torch.sign(w_sub))
        if step % 50 == 0:
            run.log(step, loss=((x @ w_l1 - y) ** 2).mean() / 2 + cfg.lam * w_l1.abs().sum())

    # ridge strength by bisection (log scale) until ||w_ridge||_1 matches ||w_lasso||_1
    target, lo, hi = w_l1.abs().sum().item(), -8.0, 4.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ridge(x, y, 10**mid).abs().sum().item() > target else (lo, mid)
    w_l2 = ridge(x, y, 10**hi)

    def mse(w):
        return ((x_test @ w - y_test) ** 2).mean().item()

    with run.figure("sparsity") as (fig, ax):
        idx = list(range(cfg.d))
        ax.stem(idx, w_true.numpy(), linefmt="k-", markerfmt="k.", basefmt=" ", label="true")
        ax.plot(idx, w_l1.numpy(), "o", markersize=4, label=f"L1 (lasso): {(w_l1 == 0).sum().item()} exact zeros")
        ax.plot(idx, w_l2.numpy(), "x", markersize=4, label=f"L2 (ridge): {(w_l2 == 0).sum().item()} exact zeros")
        ax.set(xlabel="feature", ylabel="weight", title="same L1 norm, different shape")
        ax.legend(fontsize=7)
    informative = slice(0, cfg.informative)
    return {
        "n": cfg.n, "d": cfg.d, "informative": cfg.informative, "lam": cfg.lam,
        "l1_zeros": int((w_l1 == 0).sum()), "l1_zero_fraction": (w_l1 == 0).double().mean().item(),
        "l1_true_kept": int((w_l1[informative] != 0).sum()),
        "l1_support_recall": (w_l1[informative] != 0).double().mean().item(),
        "l2_zeros": int((w_l2 == 0).sum()), "l2_zero_fraction": (w_l2 == 0).double().mean().item(),
        "l2_min_abs": w_l2.abs().min().item(), "subgradient_zeros": int((w_sub == 0).sum()),
        "l1_norm": target, "l2_lambda": 10**hi, "l1_test_mse": mse(w_l1), "l2_test_mse": mse(w_l2),
    }
