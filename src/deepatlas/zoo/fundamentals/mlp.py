"""Multilayer perceptron: affine layers of neurons with a nonlinearity between them.

Stacking two affine maps is still affine; a nonlinearity between them lets the network
bend its decision boundary, and one hidden layer of enough units can approximate any
continuous function on a compact set (Cybenko 1989; Hornik et al. 1989). Trained by
backpropagation, an MLP on raw pixels already recognises handwritten digits.

    h^{(l)} = \\phi(W^{(l)} h^{(l-1)} + b^{(l)}),   \\hat y = W^{(L)} h^{(L-1)} + b^{(L)}

Rumelhart, Hinton & Williams, "Learning representations by back-propagating errors", Nature 1986.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.data.toy2d import toy_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.linear import ACTIVATIONS as UNIT_ACTIVATIONS
from deepatlas.nn.linear import Linear
from deepatlas.nn.losses import binary_cross_entropy_with_logits, cross_entropy
from deepatlas.nn.metrics import accuracy as label_accuracy
from deepatlas.optim.optimizers import Adam
from deepatlas.optim.schedules import CosineAnnealingLR
from deepatlas.registry import register_model

ACTIVATIONS = {name: f for name, f in UNIT_ACTIVATIONS.items() if name != "step"}  # the differentiable ones


class MLP(nn.Module):
    """sizes [n_in, h_1, ..., n_out]: Linear layers with `activation` between them, logits out."""

    def __init__(self, sizes: list[int], activation: str = "tanh", generator: torch.Generator | None = None):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("an MLP needs at least input and output sizes, e.g. [2, 8, 1]")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = activation
        self.phi = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, sizes[0]) -> (B, sizes[-1])
        for layer in self.layers[:-1]:
            # h^{(l)} = \phi(W^{(l)} h^{(l-1)} + b^{(l)})
            x = self.phi(layer(x))
        return self.layers[-1](x)  # logits: no nonlinearity on the output

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


@register_model("mlp", card="mlp", example=lambda: (torch.randn(4, 2),))
def mlp(sizes: list[int] | None = None, activation: str = "tanh") -> MLP:
    return MLP(sizes or [2, 8, 1], activation)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of the class read off the logits (N, C): the largest one, or for C = 1 its sign."""
    pred = (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)
    return label_accuracy(y, pred).item()


# --- mlp/mnist: an MLP on raw pixels -------------------------------------------------------------

@dataclass
class MnistConfig:
    hidden: int = 256
    depth: int = 1  # hidden layers
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3  # Adam, cosine-annealed to 0 over the run
    n_train: int = 4000  # of the subset's 4,000 training images


@lab(
    "mlp/mnist",
    card="mlp",
    config=MnistConfig,
    scales={
        "quick": {"hidden": 64, "epochs": 2, "n_train": 1000},
        "default": {},
        "full": {"hidden": 512, "depth": 2, "epochs": 40},
    },
    goals=[Goal("test_acc", ">=", 0.93)],
    claims=[
        Check(
            "mlp-simple-classification",
            lambda m: m["test_acc"] >= 0.93,
            "a ReLU MLP ({depth} hidden layer(s) of {hidden}) on raw pixels reaches test accuracy {test_acc:.3f} "
            "on 1,000 held-out MNIST digits after {epochs} epochs on {n_train} images "
            "(train accuracy {train_acc:.3f})",
        ),
    ],
    budget_s=60,
    threads=1,  # measured: 11 s on one thread, 166 s on two when another process shares the cores
)
def mnist(run, cfg: MnistConfig) -> dict:
    """An MLP on the 5,000-image MNIST subset: test accuracy of at least 0.93."""
    data = mnist_subset()
    x, y = data.x_train[:cfg.n_train].to(run.device), data.y_train[:cfg.n_train].to(run.device)  # (N, 784)
    x_test, y_test = data.x_test.to(run.device), data.y_test.to(run.device)  # (1000, 784)
    g = torch.Generator().manual_seed(run.seed)
    net = MLP([784, *[cfg.hidden] * cfg.depth, 10], activation="relu", generator=g).to(run.device)
    opt = Adam(net.parameters(), lr=cfg.lr)
    steps_per_epoch = len(x) // cfg.batch_size
    schedule = CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)

    curves = {"epoch": [], "train_acc": [], "test_acc": [], "loss": []}
    step = 0
    for epoch in run.progress(range(cfg.epochs), desc="MLP on MNIST"):
        order = torch.randperm(len(x), generator=g).to(run.device)
        total = torch.zeros((), device=run.device)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            # \mathcal{L} = -\frac1B \sum_n \log \mathrm{softmax}(f(x_n))_{y_n}
            loss = cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.detach()
            step += 1
        run.log(step, loss=total / steps_per_epoch)
        with torch.no_grad():
            curves["epoch"].append(epoch + 1)
            curves["loss"].append(total.item() / steps_per_epoch)
            curves["train_acc"].append(accuracy(net(x), y))
            curves["test_acc"].append(accuracy(net(x_test), y_test))

    with run.figure("mnist", ncols=2) as (fig, (ax_acc, ax_loss)):
        ax_acc.plot(curves["epoch"], curves["train_acc"], "o-", label="train")
        ax_acc.plot(curves["epoch"], curves["test_acc"], "s-", label="test")
        ax_acc.axhline(0.93, color="grey", ls="--", lw=1, label="goal 0.93")
        widths = "-".join([str(cfg.hidden)] * cfg.depth)
        ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"MLP 784-{widths}-10 on MNIST")
        ax_acc.legend()
        ax_loss.plot(curves["epoch"], curves["loss"])
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="training loss")
    return {
        "test_acc": curves["test_acc"][-1], "train_acc": curves["train_acc"][-1], "final_loss": curves["loss"][-1],
        "best_test_acc": max(curves["test_acc"]), "n_params": sum(p.numel() for p in net.parameters()),
        "hidden": cfg.hidden, "depth": cfg.depth, "epochs": cfg.epochs, "n_train": len(x),
    }


# --- mlp/linear-collapse: without a nonlinearity, depth adds nothing ------------------------------

@dataclass
class CollapseConfig:
    n_train: int = 300
    n_test: int = 1000
    hidden: int = 16
    depth: int = 4  # hidden layers of the deep nets
    steps: int = 600
    lr: float = 0.02  # Adam, full batch


def fit_binary(run, name: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
               lr: float) -> list[float]:
    """Full-batch Adam on the logistic loss, logged as `<name>_loss`; returns the loss curve."""
    opt = Adam(net.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        # \mathcal{L} = \mathrm{BCE}(\sigma(f(x)), y)
        loss = binary_cross_entropy_with_logits(net(x)[:, 0], y.to(x.dtype))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 20 == 0 or step == steps - 1:
            run.log(step, **{f"{name}_loss": losses[-1]})
    return losses


def best_linear_layer(x: torch.Tensor, y: torch.Tensor, iters: int = 50) -> MLP:
    """The single linear layer of least logistic loss, by Newton's method (the loss is convex in it)."""
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)  # (N, d + 1): the bias as a weight on 1
    theta = torch.zeros(x1.shape[1], dtype=x.dtype)
    for _ in range(iters):
        p = torch.sigmoid(x1 @ theta)  # (N,)
        # \nabla = X^\top (p - y) / N
        grad = x1.T @ (p - y.to(x.dtype)) / len(x)
        # H = X^\top \mathrm{diag}(p (1 - p)) X / N
        hess = (x1.T * (p * (1 - p))) @ x1 / len(x)
        # \theta \leftarrow \theta - H^{-1} \nabla
        theta = theta - torch.linalg.solve(hess, grad)
    net = MLP([x.shape[1], 1]).to(x.dtype)
    with torch.no_grad():
        net.layers[0].weight.copy_(theta[None, :-1])
        net.layers[0].bias.copy_(theta[-1:])
    return net


def collapse(net: MLP) -> tuple[torch.Tensor, torch.Tensor]:
    """The single affine map (W, b) that a stack of Linear layers without activations computes."""
    w = torch.eye(net.layers[0].in_features, dtype=net.layers[0].weight.dtype)
    b = torch.zeros(net.layers[0].in_features, dtype=w.dtype)
    for layer in net.layers:
        # W_2 (W_1 x + b_1) + b_2 = (W_2 W_1) x + (W_2 b_1 + b_2)
        w, b = layer.weight @ w, layer.weight @ b + layer.bias
    return w, b  # (n_out, n_in), (n_out,)


@lab(
    "mlp/linear-collapse",
    card="mlp",
    config=CollapseConfig,
    scales={
        "quick": {"n_train": 100, "n_test": 200, "steps": 100},
        "default": {},
        "full": {"depth": 10, "hidden": 64, "steps": 3000},
    },
    goals=[Goal("deep_tanh_acc", ">=", 0.97), Goal("collapse_err", "<=", 1e-12)],
    claims=[
        Check(
            "mlp-linear-collapse",
            lambda m: m["collapse_err"] <= 1e-12 and m["deep_linear_train_loss"] >= m["linear_train_loss"] - 1e-9,
            "a {depth}-hidden-layer net without activations equals one affine map to {collapse_err:.1e}; trained, "
            "its loss {deep_linear_train_loss:.4f} is no lower than the best single linear layer's "
            "{linear_train_loss:.4f} (test accuracy {deep_linear_acc:.3f} vs {linear_acc:.3f}), while tanh "
            "between the same layers reaches loss {deep_tanh_train_loss:.1e} and accuracy {deep_tanh_acc:.3f}",
        ),
    ],
    budget_s=20,
    threads=1,
)
def linear_collapse(run, cfg: CollapseConfig) -> dict:
    """Deep linear nets collapse to one linear layer; a nonlinearity is what depth needs."""
    data = toy_split("moons", cfg.n_train, cfg.n_test, seed=run.seed)
    x, y = data.x_train.double(), data.y_train  # (N, 2) float64, so that the collapse is exact to rounding
    x_test, y_test = data.x_test.double(), data.y_test
    g = torch.Generator().manual_seed(run.seed)
    deep = [cfg.hidden] * cfg.depth
    nets = {"linear": best_linear_layer(x, y)}
    curves = {}
    for name, activation in run.progress([("deep_linear", "identity"), ("deep_tanh", "tanh")], desc="deep nets"):
        nets[name] = MLP([2, *deep, 1], activation=activation, generator=g).double()
        curves[name] = fit_binary(run, name, nets[name], x, y, cfg.steps, cfg.lr)

    metrics: dict = {"depth": cfg.depth}
    with torch.no_grad():
        for name, net in nets.items():
            metrics[f"{name}_acc"] = accuracy(net(x_test), y_test)
            metrics[f"{name}_train_loss"] = binary_cross_entropy_with_logits(net(x)[:, 0], y.double()).item()
        w, b = collapse(nets["deep_linear"])
        # \max_x |f_{\text{deep linear}}(x) - (W x + b)|
        metrics["collapse_err"] = (nets["deep_linear"](x_test) - (x_test @ w.T + b)).abs().max().item()
    _plot_collapse(run, x_test, y_test, nets, curves, metrics["linear_train_loss"])
    return metrics


def _plot_collapse(run, x, y, nets: dict, curves: dict, best_linear_loss: float) -> None:
    lo, hi = x.min(0).values - 0.3, x.max(0).values + 0.3
    g0, g1 = torch.meshgrid(torch.linspace(lo[0], hi[0], 150, dtype=x.dtype),
                            torch.linspace(lo[1], hi[1], 150, dtype=x.dtype), indexing="xy")
    grid = torch.stack([g0.ravel(), g1.ravel()], 1)
    titles = {"linear": "best single linear layer", "deep_linear": "deep, no activation", "deep_tanh": "deep, tanh"}
    with run.figure("linear_collapse", ncols=len(nets) + 1) as (fig, axes):
        for ax, (name, net) in zip(axes, nets.items()):
            with torch.no_grad():
                region = (net(grid)[:, 0] > 0).reshape(g0.shape).double()
            ax.contourf(g0, g1, region, levels=[-0.5, 0.5, 1.5], colors=["#dbe9f6", "#f6dbdb"])
            ax.scatter(x[:, 0], x[:, 1], c=["#1f77b4" if t == 0 else "#d62728" for t in y], s=6)
            ax.set_title(titles[name])
        for name, losses in curves.items():
            axes[-1].plot(losses, label=titles[name])
        axes[-1].axhline(best_linear_loss, color="k", ls="--", lw=1, label=titles["linear"])
        axes[-1].set(xlabel="step", ylabel="BCE (train)", yscale="log", title="training loss")
        axes[-1].legend(fontsize=8)
