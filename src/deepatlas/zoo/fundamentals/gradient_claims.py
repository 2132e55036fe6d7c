"""Three gradient claims measured: clipping tames explosions, accumulation is a big batch, shortcuts carry gradients.

Gradient clipping rescales the whole gradient to norm at most c before the step, so one exploding
gradient of a recurrent net (recurrent weights of spectral radius above 1) cannot throw the weights
far. Gradient accumulation averages the gradients of k micro-batches before one step: the same
update as one batch k times larger, and a gradient whose variance is k times smaller. A residual
connection y = x + F(x) adds an identity term to every layer's Jacobian, so the gradient reaches
the first layer of a deep net instead of fading layer by layer.

    g \\leftarrow g \\min(1, c / \\lVert g \\rVert);\\qquad
    \\mathrm{Var}\\big[\\tfrac1k \\textstyle\\sum_j g_{B_j}\\big] = \\tfrac1k \\mathrm{Var}[g_B];\\qquad
    \\frac{\\partial \\mathcal{L}}{\\partial x} = \\frac{\\partial \\mathcal{L}}{\\partial y}\\Big(I + \\frac{\\partial F}{\\partial x}\\Big)

Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013
(arXiv 1211.5063); Ott et al., "Scaling neural machine translation", WMT 2018 (arXiv 1806.00187);
He et al., "Deep residual learning for image recognition", CVPR 2016 (arXiv 1512.03385).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.activations import tanh
from deepatlas.nn.linear import Linear
from deepatlas.nn.losses import cross_entropy, mse_loss
from deepatlas.optim.grad import GradAccumulator, clip_grad_norm_
from deepatlas.optim.optimizers import SGD

# --- 1. clipping an exploding recurrent gradient -------------------------------------------------


class VanillaRNN(nn.Module):
    """h_t = tanh(W_hh h_{t-1} + W_xh x_t + b), read out from h_T; W_hh drawn with spectral radius ~ rho."""

    def __init__(self, hidden: int, rho: float, generator: torch.Generator):
        super().__init__()
        # W_hh \sim \mathcal{N}(0, \rho^2 / H): by the circular law its eigenvalues fill a disc of radius \rho
        self.W_hh = nn.Parameter(torch.randn(hidden, hidden, generator=generator) * rho / math.sqrt(hidden))
        self.W_xh = nn.Parameter(torch.randn(hidden, 1, generator=generator))
        self.b = nn.Parameter(torch.zeros(hidden))
        self.readout = Linear(hidden, 1, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 1) -> (B, 1)
        h = x.new_zeros(x.shape[0], self.W_hh.shape[0])  # (B, H)
        for t in range(x.shape[1]):
            # h_t = \tanh(W_{hh} h_{t-1} + W_{xh} x_t + b)
            h = tanh(h @ self.W_hh.T + x[:, t] @ self.W_xh.T + self.b)
        return self.readout(h)


@dataclass
class ClipConfig:
    hidden: int = 32
    rho: float = 2.5  # spectral radius of the recurrent weights at initialisation
    seq_len: int = 20
    recall: int = 3  # target: the sum of the last `recall` inputs (variance 3, the loss of predicting 0)
    steps: int = 300
    batch: int = 64
    lr: float = 0.1  # plain SGD, the same for both runs
    max_norm: float = 1.0
    window: int = 50  # final loss = mean over the last `window` steps


def train_rnn(run, cfg: ClipConfig, max_norm: float | None, name: str) -> dict:
    """SGD on the recall task, clipping at `max_norm` (None: never); stops at the first non-finite loss."""
    g = torch.Generator().manual_seed(run.seed)  # same weights and batches for both runs
    net = VanillaRNN(cfg.hidden, cfg.rho, g).to(run.device)
    opt = SGD(net.parameters(), lr=cfg.lr)
    losses, norms, diverged_at = [], [], cfg.steps
    for step in run.progress(range(cfg.steps), desc=name):
        x = torch.randn(cfg.batch, cfg.seq_len, 1, generator=g).to(run.device)  # (B, T, 1)
        y = x[:, -cfg.recall:, 0].sum(1, keepdim=True)  # (B, 1)
        loss = mse_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        # \lVert g \rVert before clipping; max_norm = inf leaves the gradient as it is
        norm = clip_grad_norm_(net.parameters(), math.inf if max_norm is None else max_norm)
        loss_value, norm_value = loss.item(), norm.item()
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            diverged_at = step  # the weights are no longer numbers: nothing left to train
            break
        losses.append(loss_value)
        norms.append(norm_value)
        opt.step()
        if step % 10 == 0:
            run.log(step, **{f"{name}_loss": loss_value})
    return {"losses": losses, "norms": norms, "diverged_at": diverged_at}


@lab(
    "gradient-clipping/exploding",
    card="gradient-clipping",
    config=ClipConfig,
    scales={"quick": {"steps": 60}, "default": {}, "full": {"steps": 2000, "seq_len": 40}},
    goals=[
        Goal("unclipped_max_grad_norm", ">=", 100.0),
        Goal("clipped_diverged", "==", 0.0),
        Goal("clipped_final_loss", "<=", 1.0),
    ],
    claims=[
        Check(
            "gradient-clipping-exploding",
            lambda m: m["unclipped_max_grad_norm"] >= 100 * m["max_norm"] and m["clipped_diverged"] == 0
            and m["clipped_final_loss"] <= 1.0
            and (m["unclipped_diverged"] == 1 or m["unclipped_final_loss"] >= 2 * m["clipped_final_loss"]),
            "tanh RNN, recurrent spectral radius {spectral_radius:.2f}, plain SGD lr {lr}: without clipping the "
            "gradient norm reached {unclipped_max_grad_norm:.3g} (largest finite), the loss peaked at "
            "{unclipped_peak_loss:.3g} and became non-finite at step {unclipped_diverged_at} of {steps} "
            "({steps} = never), final loss {unclipped_final_loss:.3g} over its last finite steps; clipped at "
            "norm {max_norm}: peak loss {clipped_peak_loss:.3g}, final loss {clipped_final_loss:.3f} (predicting 0 "
            "scores {target_var:.0f}; off course counted as non-finite or a final loss at least twice the clipped one)",
        ),
    ],
    budget_s=20,
    threads=1,
)
def exploding(run, cfg: ClipConfig) -> dict:
    """A tanh RNN with recurrent spectral radius 2.5 trained by SGD with and without global-norm clipping."""
    g = torch.Generator().manual_seed(run.seed)
    spectral_radius = torch.linalg.eigvals(VanillaRNN(cfg.hidden, cfg.rho, g).W_hh.detach()).abs().max().item()
    runs = {"unclipped": train_rnn(run, cfg, None, "unclipped"), "clipped": train_rnn(run, cfg, cfg.max_norm, "clipped")}
    metrics: dict = {"spectral_radius": spectral_radius, "steps": cfg.steps, "lr": cfg.lr, "max_norm": cfg.max_norm,
                     "target_var": float(cfg.recall)}
    for name, r in runs.items():
        metrics[f"{name}_max_grad_norm"] = max(r["norms"])
        metrics[f"{name}_peak_loss"] = max(r["losses"])
        metrics[f"{name}_final_loss"] = sum(r["losses"][-cfg.window:]) / len(r["losses"][-cfg.window:])
        metrics[f"{name}_diverged"] = float(r["diverged_at"] < cfg.steps)
        metrics[f"{name}_diverged_at"] = r["diverged_at"]

    with run.figure("exploding", ncols=2, size=(11, 4)) as (fig, axes):
        for name, r in runs.items():
            axes[0].plot(r["losses"], label=name, lw=1)
            axes[1].plot(r["norms"], label=name, lw=1)
            if r["diverged_at"] < cfg.steps:
                axes[0].axvline(r["diverged_at"], color="red", ls=":", lw=1, label=f"{name}: loss not finite")
        axes[1].axhline(cfg.max_norm, color="grey", ls="--", lw=1, label="clip threshold c")
        axes[0].set(title="training loss", xlabel="step", ylabel="MSE", yscale="log")
        axes[1].set(title="gradient norm before clipping", xlabel="step", ylabel=r"$\|g\|$", yscale="log")
        for ax in axes:
            ax.legend(fontsize=8)
    return metrics


# --- 2. accumulated micro-batches against one large batch ----------------------------------------


def small_mlp(generator: torch.Generator) -> nn.Module:
    """64 -> 32 -> 10 with tanh, in float64 so that the only difference left is rounding."""
    return nn.Sequential(Linear(64, 32, generator=generator), nn.Tanh(), Linear(32, 10, generator=generator)).double()


@dataclass
class AccumConfig:
    k: int = 4  # micro-batches per update
    micro_batch: int = 16  # b; the large batch has k * b examples
    steps: int = 100  # updates of both runs
    lr: float = 0.1
    momentum: float = 0.9
    draws: int = 1024  # micro-batch gradients drawn to estimate the gradient variance


def flat_grad(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient of the mean cross-entropy on (x, y) as one vector (P,)."""
    grads = torch.autograd.grad(cross_entropy(net(x), y), list(net.parameters()))
    return torch.cat([gr.reshape(-1) for gr in grads])


@lab(
    "gradient-accumulation/equivalence",
    card="gradient-accumulation",
    config=AccumConfig,
    scales={"quick": {"steps": 10, "draws": 128}, "default": {}, "full": {"steps": 1000, "draws": 8192}},
    goals=[
        Goal("param_max_abs_diff", "<=", 1e-12),
        Goal("variance_ratio", ">=", 3.0),
        Goal("variance_ratio", "<=", 5.0),
    ],
    claims=[
        Check(
            "gradient-accumulation-large-batch",
            lambda m: m["param_max_abs_diff"] <= 1e-12 and m["variance_ratio"] >= 0.75 * m["k"],
            "after {steps} SGD-momentum updates in float64, k = {k} accumulated micro-batches of {micro_batch} and "
            "one batch of {batch} give parameters that differ by at most {param_max_abs_diff:.1e}; over {draws} "
            "draws the gradient variance of one micro-batch is {variance_ratio:.2f}x that of k accumulated ones "
            "(k = {k} expected; reproduced counted as a difference at rounding level and a ratio >= 0.75 k)",
        ),
    ],
    budget_s=20,
    threads=1,
)
def equivalence(run, cfg: AccumConfig) -> dict:
    """k accumulated micro-batches against one batch of k*b: same parameters, k times less gradient variance."""
    data = digits()
    x, y = data.x_train.double().to(run.device), data.y_train.to(run.device)  # (N, 64), (N,)
    g = torch.Generator().manual_seed(run.seed)
    big = small_mlp(g).to(run.device)
    accumulated = copy.deepcopy(big)  # the same initial weights
    opt_big = SGD(big.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    acc = GradAccumulator(SGD(accumulated.parameters(), lr=cfg.lr, momentum=cfg.momentum), k=cfg.k)
    batch = cfg.k * cfg.micro_batch

    diffs = []
    for step in run.progress(range(cfg.steps), desc="big batch vs accumulation"):
        idx = torch.randint(0, len(x), (batch,), generator=g).to(run.device)
        loss = cross_entropy(big(x[idx]), y[idx])
        opt_big.zero_grad()
        loss.backward()
        opt_big.step()
        # g = \frac1k \sum_j \nabla \mathcal{L}_{B_j}: the same examples, k slices of b
        for part in idx.split(cfg.micro_batch):
            acc.backward(cross_entropy(accumulated(x[part]), y[part]))  # steps on the k-th
        diffs.append(max((p - q).abs().max().item() for p, q in zip(big.parameters(), accumulated.parameters())))
        run.log(step, loss=loss)

    # gradient noise at the trained weights: micro-batches drawn independently, with replacement
    mean = flat_grad(big, x, y)  # (P,) the expectation of every draw
    draws = torch.stack([flat_grad(big, x[i], y[i]) for i in
                         torch.randint(0, len(x), (cfg.draws, cfg.micro_batch), generator=g).to(run.device)])  # (D, P)
    variance = {}
    for k in sorted({1, 2, 4, 8, 16, cfg.k}):
        groups = draws[: cfg.draws // k * k].reshape(-1, k, draws.shape[1]).mean(1)  # (D/k, P)
        # \mathrm{tr\,Var}[g] = \mathbb{E}\lVert g - \bar g \rVert^2
        variance[k] = ((groups - mean) ** 2).sum(1).mean().item()

    var_k = variance[cfg.k]
    metrics = {"k": cfg.k, "micro_batch": cfg.micro_batch, "batch": batch, "steps": cfg.steps, "draws": cfg.draws,
               "param_max_abs_diff": max(diffs), "final_loss": loss.item(),
               "micro_batch_grad_var": variance[1], "accumulated_grad_var": var_k, "variance_ratio": variance[1] / var_k}

    with run.figure("accumulation", ncols=2, size=(11, 4)) as (fig, axes):
        axes[0].plot(range(1, len(diffs) + 1), [max(d, 1e-18) for d in diffs])
        axes[0].set(title="big batch vs accumulated: parameters", xlabel="update",
                    ylabel=r"$\max |\theta_{big} - \theta_{acc}|$ (float64)", yscale="log", ylim=(1e-18, 1e-10))
        ks = list(variance)
        axes[1].plot(ks, [variance[k] for k in ks], "o-", label="measured")
        axes[1].plot(ks, [variance[1] / k for k in ks], "--", color="grey", label=r"$\mathrm{Var}_1 / k$")
        axes[1].set(title="gradient variance", xlabel="micro-batches accumulated k", ylabel=r"tr Var$[g]$",
                    xscale="log", yscale="log")
        axes[1].legend()
    return metrics


# --- 3. gradient flow through a deep plain net and its residual twin ----------------------------


class DeepMLP(nn.Module):
    """An input layer, `depth - 2` hidden tanh layers (each x + F(x) if `residual`) and a linear read-out;
    torch.nn.Linear's default initialisation for every layer."""

    def __init__(self, depth: int, width: int, residual: bool, generator: torch.Generator):
        super().__init__()
        sizes = [64] + [width] * (depth - 1) + [10]
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 64) -> (B, 10) logits
        h = tanh(self.layers[0](x))  # (B, width)
        for layer in self.layers[1:-1]:
            f = tanh(layer(h))
            # y = x + \mathcal{F}(x) with a shortcut, y = \mathcal{F}(x) without
            h = h + f if self.residual else f
        return self.layers[-1](h)


@dataclass
class FlowConfig:
    depth: int = 40  # affine layers
    width: int = 64
    probe_batch: int = 512
    steps: int = 300
    batch: int = 128
    lr: float = 0.01  # SGD with momentum, the same for both nets
    momentum: float = 0.9


@lab(
    "residual-connection/gradient-flow",
    card="residual-connection",
    config=FlowConfig,
    scales={"quick": {"steps": 20, "probe_batch": 128}, "default": {}, "full": {"depth": 100, "steps": 2000}},
    goals=[
        Goal("plain_ratio", "<", 1e-3),
        Goal("residual_ratio", ">=", 0.1),
        Goal("residual_train_loss", "<=", 0.5),
        Goal("residual_test_acc", ">=", 0.8),
    ],
    claims=[
        Check(
            "residual-connection-gradient-path",
            lambda m: m["residual_ratio"] >= 0.1 and m["plain_ratio"] < 1e-3
            and m["residual_train_loss"] <= 0.5 * m["plain_train_loss"],
            "{depth}-layer tanh MLP on digits, same initial weights: the first layer's weight gradient is "
            "{plain_ratio:.1e} of the last layer's without shortcuts and {residual_ratio:.2f} with them; after "
            "{steps} SGD steps the training loss is {plain_train_loss:.3f} (plain, chance is 2.303) against "
            "{residual_train_loss:.3f} (residual), test accuracy {plain_test_acc:.2f} vs {residual_test_acc:.2f} "
            "(eased counted as a ratio >= 0.1 where the plain net's is < 1e-3, and at most half its loss)",
        ),
    ],
    budget_s=30,
    threads=1,
)
def gradient_flow(run, cfg: FlowConfig) -> dict:
    """Per-layer gradient norms and training of a 40-layer tanh MLP with and without residual connections."""
    x, y, x_test, y_test = digits().to(run.device).tensors()  # (N, 64), (N,), ...
    metrics: dict = {"depth": cfg.depth, "steps": cfg.steps}
    norms, curves = {}, {}
    for name, residual in (("plain", False), ("residual", True)):
        g = torch.Generator().manual_seed(run.seed)  # the same weights and batches for both
        net = DeepMLP(cfg.depth, cfg.width, residual, g).to(run.device)
        loss = cross_entropy(net(x[: cfg.probe_batch]), y[: cfg.probe_batch])
        grads = torch.autograd.grad(loss, [layer.weight for layer in net.layers])
        norms[name] = [gr.norm().item() for gr in grads]  # ||dL/dW_l||_F, l = 1..L

        opt = SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        curves[name] = []
        for step in run.progress(range(cfg.steps), desc=name):
            idx = torch.randint(0, len(x), (cfg.batch,), generator=g).to(run.device)
            loss = cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 10 == 0 or step == cfg.steps - 1:
                run.log(step, **{f"{name}_loss": loss})
                curves[name].append((step, loss.item()))
        with torch.no_grad():
            metrics[f"{name}_train_loss"] = cross_entropy(net(x), y).item()
            metrics[f"{name}_test_acc"] = (net(x_test).argmax(1) == y_test).float().mean().item()
        metrics[f"{name}_ratio"] = norms[name][0] / norms[name][-1]

    with run.figure("gradient_flow", ncols=2, size=(11, 4)) as (fig, axes):
        for name in norms:
            axes[0].plot(range(1, cfg.depth + 1), norms[name], marker="o", ms=3, label=name)
            steps, values = zip(*curves[name])
            axes[1].plot(steps, values, label=name)
        axes[0].set(title="gradient at initialisation", xlabel="layer", ylabel=r"$\|\partial L / \partial W_l\|$",
                    yscale="log")
        axes[1].set(title="training loss (SGD with momentum)", xlabel="step", ylabel="cross-entropy")
        for ax in axes:
            ax.legend()
    return metrics
