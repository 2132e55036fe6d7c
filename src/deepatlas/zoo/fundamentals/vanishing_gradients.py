"""Vanishing gradients: backpropagation multiplies one Jacobian per layer, so the gradient can fade with depth.

The gradient that reaches layer l is the loss gradient at the top multiplied by every
layer's Jacobian W^T diag(phi'(z)) on the way down. The sigmoid's slope is at most 1/4, so
in a deep sigmoid net each layer shrinks the gradient at least fourfold (for weights of unit
gain) and the first layers get nothing to learn from. ReLU's slope is exactly 1 where it is
active, and with He initialisation the product keeps its size; tanh's slope is 1 at zero, and with
Glorot's initialisation a 20-layer tanh net keeps it too (the lab measures all three).

    \\frac{\\partial \\mathcal{L}}{\\partial h_l} = \\Big(\\prod_{k=l+1}^{L} W_k^\\top \\operatorname{diag}(\\phi'(z_k))\\Big) \\frac{\\partial \\mathcal{L}}{\\partial h_L},
    \\qquad \\sigma'(z) = \\sigma(z)(1 - \\sigma(z)) \\le \\tfrac14

Hochreiter, "Untersuchungen zu dynamischen neuronalen Netzen", diploma thesis, TU Munich 1991;
Bengio, Simard & Frasconi, "Learning long-term dependencies with gradient descent is difficult",
IEEE TNN 1994; Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
networks", AISTATS 2010.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn import init
from deepatlas.nn.activations import relu, sigmoid, tanh


class PlainMLP(nn.Module):
    """Affine layers with `phi` between them (none after the last), weights drawn by `init_weight`, zero biases."""

    def __init__(self, sizes: list[int], phi: Callable, init_weight: Callable):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.phi = phi
        for layer in self.layers:
            init_weight(layer.weight)
            init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, sizes[0]) -> (B, sizes[-1]) logits
        for layer in self.layers[:-1]:
            x = self.phi(layer(x))
        return self.layers[-1](x)


# each activation with the initialisation made for it: Glorot's for the saturating ones, He's for ReLU
NETS = {
    "sigmoid": (sigmoid, lambda w, g: init.xavier_normal_(w, generator=g)),
    "tanh": (tanh, lambda w, g: init.xavier_normal_(w, generator=g)),
    "relu": (relu, lambda w, g: init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
}


@dataclass
class DepthConfig:
    depth: int = 20  # affine layers
    width: int = 64
    probe_batch: int = 512  # training images on which the gradient at initialisation is measured
    steps: int = 250
    batch: int = 128
    lr: float = 0.005  # SGD with momentum, the same for the three nets
    momentum: float = 0.9


def layer_grad_norms(net: PlainMLP, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """||dL/dW_l||_F for every layer l = 1..L, for the cross-entropy on (x, y)."""
    loss = nn.functional.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, [layer.weight for layer in net.layers])
    return [g.norm().item() for g in grads]


def log_linear_fit(norms: list[float]) -> tuple[float, float]:
    """Factor by which the norm changes per layer towards the input, and R^2 of a straight line
    through log(norms) against the layer index (a geometric decay is a straight line)."""
    y = torch.tensor(norms, dtype=torch.float64).log()
    x = torch.arange(len(norms), dtype=torch.float64)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    residual = y - (y.mean() + slope * (x - x.mean()))
    r2 = 1 - (residual**2).sum() / ((y - y.mean()) ** 2).sum()
    return math.exp(-slope.item()), r2.item()


def slopes(run) -> dict:
    """The largest sigmoid slope, tanh's largest slope beyond |x| = 5 and ReLU's slope on x > 0, by autograd."""
    x = torch.linspace(-10, 10, 20_001, dtype=torch.float64, device=run.device, requires_grad=True)  # step 1e-3, hits 0
    (dsig,) = torch.autograd.grad(sigmoid(x).sum(), x)
    (dtanh,) = torch.autograd.grad(tanh(x).sum(), x)
    (drelu,) = torch.autograd.grad(relu(x).sum(), x)
    positive = x.detach() > 0
    return {
        "sigmoid_slope_max": round(dsig.max().item(), 12),  # autograd's rounding is ~1e-16
        "tanh_slope_max_beyond_5": dtanh[x.detach().abs() >= 5].max().item(),
        "relu_slope_min_positive": drelu[positive].min().item(),
        "relu_slope_max_positive": drelu[positive].max().item(),
    }


@lab(
    "vanishing-gradients/depth",
    card="vanishing-gradients",
    config=DepthConfig,
    scales={"quick": {"steps": 20, "probe_batch": 128}, "default": {}, "full": {"depth": 30, "steps": 2000}},
    goals=[
        Goal("sigmoid_slope_max", "<=", 0.25),
        Goal("sigmoid_ratio", "<", 1e-3),
        Goal("relu_ratio", ">=", 0.1),
        Goal("relu_ratio", "<=", 10.0),
        Goal("relu_test_acc", ">=", 0.7),
        Goal("tanh_test_acc", ">=", 0.7),
    ],
    claims=[
        Check(
            "sigmoid-vanishing-gradient",
            lambda m: m["sigmoid_slope_max"] <= 0.25 and m["sigmoid_ratio"] < 1e-3
            and m["sigmoid_first_change"] < 0.01 * m["sigmoid_last_change"],
            "max sigmoid'(x) = {sigmoid_slope_max:.4f}; in a {depth}-layer sigmoid net (Xavier init) the first "
            "layer's weight gradient is {sigmoid_ratio:.1e} of the last layer's, and after {steps} SGD steps its "
            "weights moved {sigmoid_first_change:.1e} (relative) against {sigmoid_last_change:.1e} for the last layer; "
            "test accuracy {sigmoid_test_acc:.2f}",
        ),
        Check(
            "vanishing-gradients-saturation",
            lambda m: m["sigmoid_slope_max"] <= 0.25 and m["sigmoid_ratio"] < 1e-3
            and m["sigmoid_first_change"] < 0.01 * m["sigmoid_last_change"],
            "max sigmoid'(x) = {sigmoid_slope_max:.4f}; the weight gradient shrinks by a factor "
            "{sigmoid_layer_factor:.3f} per layer (first/last = {sigmoid_ratio:.1e} over {depth} layers); the "
            "first layer moved {sigmoid_first_change:.1e} (relative) in {steps} SGD steps, the last "
            "{sigmoid_last_change:.1e}",
        ),
        Check(
            "tanh-still-saturates",
            lambda m: m["tanh_slope_max_beyond_5"] < 1e-3 and m["tanh_ratio"] < 1e-3,
            "tanh' <= {tanh_slope_max_beyond_5:.1e} for |x| >= 5, but in a {depth}-layer tanh net with Xavier init "
            "the first layer's weight gradient is {tanh_ratio:.2f}x the last layer's (sigmoid: {sigmoid_ratio:.1e}); "
            "after {steps} SGD steps its first layer moved {tanh_first_change:.2f} (relative), the last "
            "{tanh_last_change:.2f}, test accuracy {tanh_test_acc:.2f} (vanishing counted as a ratio below 1e-3)",
        ),
        Check(
            "relu-no-saturation",
            lambda m: m["relu_slope_min_positive"] == 1.0 and m["relu_slope_max_positive"] == 1.0
            and m["relu_ratio"] >= 10 * max(m["sigmoid_ratio"], m["tanh_ratio"]),
            "ReLU'(x) = {relu_slope_min_positive:.0f} for every x > 0 sampled; first/last weight-gradient ratio "
            "{relu_ratio:.2f} for ReLU+He against {sigmoid_ratio:.1e} for sigmoid and {tanh_ratio:.2f} for tanh "
            "(Xavier) at depth {depth} (much larger counted as at least 10x both)",
        ),
        Check(
            "vanishing-gradients-remedies",
            lambda m: 0.1 <= m["relu_ratio"] <= 10 and 0.1 <= m["tanh_ratio"] <= 10,
            "measured here for non-saturating activations and variance-preserving init only: first/last "
            "weight-gradient ratio {relu_ratio:.2f} for ReLU+He and {tanh_ratio:.2f} for tanh+Xavier against "
            "{sigmoid_ratio:.1e} for sigmoid at depth {depth} (normalisation and residual shortcuts have their "
            "own labs)",
        ),
        Check(
            "backpropagation-depth-products",
            lambda m: m["sigmoid_layer_factor"] <= 0.5 and m["sigmoid_fit_r2"] >= 0.9,
            "in the {depth}-layer sigmoid net the weight-gradient norm falls geometrically with depth: a factor "
            "{sigmoid_layer_factor:.3f} per layer (straight line on a log scale, R^2 = {sigmoid_fit_r2:.3f}), "
            "{sigmoid_ratio:.1e} from the last layer to the first",
        ),
    ],
    budget_s=30,
    threads=1,
)
def depth(run, cfg: DepthConfig) -> dict:
    """Gradient norm per layer of 20-layer sigmoid, tanh and ReLU nets, and how far each layer moves in training."""
    x, y, x_test, y_test = digits().to(run.device).tensors()  # (N, 64), (N,), ...
    sizes = [x.shape[1]] + [cfg.width] * (cfg.depth - 1) + [10]
    metrics: dict = {"depth": cfg.depth, "steps": cfg.steps, **slopes(run)}
    norms, changes, losses = {}, {}, {}
    for name, (phi, init_weight) in NETS.items():
        g = torch.Generator().manual_seed(run.seed)
        net = PlainMLP(sizes, phi, lambda w: init_weight(w, g)).to(run.device)
        start = [layer.weight.detach().clone() for layer in net.layers]
        norms[name] = layer_grad_norms(net, x[: cfg.probe_batch], y[: cfg.probe_batch])

        losses[name] = []
        velocity = [torch.zeros_like(p) for p in net.parameters()]
        for step in run.progress(range(cfg.steps), desc=f"{name} net"):
            idx = torch.randint(0, len(x), (cfg.batch,), generator=g).to(run.device)
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            net.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p, v in zip(net.parameters(), velocity):
                    # v \leftarrow \mu v + \nabla_\theta \mathcal{L},\quad \theta \leftarrow \theta - \eta v
                    v.mul_(cfg.momentum).add_(p.grad)
                    p -= cfg.lr * v
            if step % 10 == 0 or step == cfg.steps - 1:
                run.log(step, **{f"{name}_loss": loss})
                losses[name].append((step, loss.item()))
        # ||W_l^{(T)} - W_l^{(0)}|| / ||W_l^{(0)}||: how much each layer learned
        changes[name] = [((layer.weight - w0).norm() / w0.norm()).item() for layer, w0 in zip(net.layers, start)]
        with torch.no_grad():
            acc = (net(x_test).argmax(1) == y_test).float().mean().item()

        metrics[f"{name}_ratio"] = norms[name][0] / norms[name][-1]
        metrics[f"{name}_first_grad"], metrics[f"{name}_last_grad"] = norms[name][0], norms[name][-1]
        metrics[f"{name}_layer_factor"], metrics[f"{name}_fit_r2"] = log_linear_fit(norms[name])
        metrics[f"{name}_first_change"], metrics[f"{name}_last_change"] = changes[name][0], changes[name][-1]
        metrics[f"{name}_test_acc"] = acc
        metrics[f"{name}_final_loss"] = losses[name][-1][1]

    _plot(run, norms, changes, losses)
    return metrics


def _plot(run, norms: dict, changes: dict, losses: dict) -> None:
    with run.figure("gradient_norms", ncols=3, size=(14, 4)) as (fig, axes):
        for name in norms:
            layers = range(1, len(norms[name]) + 1)
            axes[0].plot(layers, norms[name], marker="o", ms=3, label=name)
            # a weight that never moved (float32 cannot add so small an update) has change 0: drawn at 1e-16
            axes[1].plot(layers, [max(c, 1e-16) for c in changes[name]], marker="o", ms=3, label=name)
            steps, values = zip(*losses[name])
            axes[2].plot(steps, values, label=name)
        axes[0].set(title="gradient at initialisation", xlabel="layer", ylabel=r"$\|\partial L / \partial W_l\|$",
                    yscale="log")
        axes[1].axhline(1e-16, color="grey", ls=":", lw=1)
        axes[1].text(1, 2e-16, "no change at all", color="grey", fontsize=8)
        axes[1].set(title="weight change after training", xlabel="layer",
                    ylabel=r"$\|W_l - W_l^{(0)}\| / \|W_l^{(0)}\|$", yscale="log")
        axes[2].set(title="training loss (SGD with momentum)", xlabel="step", ylabel="cross-entropy")
        for ax in axes:
            ax.legend()
