"""A plain convolutional neural network: stages of convolution, nonlinearity and pooling, then a classifier.

Each stage looks at small windows (locality) with the same kernels everywhere (weight sharing) and
halves the resolution by pooling, so later stages see larger regions with more channels; a linear
layer reads the class off the last feature maps. The two priors let a CNN match or beat a fully
connected net on images with a fraction of its parameters.

    h^{(l)} = \\mathrm{pool}\\big(\\sigma(W^{(l)} * h^{(l-1)} + b^{(l)})\\big),
    \\hat y = W_{fc} \\mathrm{vec}(h^{(L)}) + b_{fc}

LeCun, Boser, Denker, Henderson, Howard, Hubbard & Jackel, "Backpropagation Applied to Handwritten
Zip Code Recognition", Neural Computation 1989.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data import Split
from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.conv import ACTIVATIONS, count_params
from deepatlas.registry import register_model
from deepatlas.zoo.fundamentals.mlp import MLP

POOLS = ("max", "avg", "subsample", "none")


def downsample(kind: str) -> nn.Module:
    """2x2 max or average pooling; 'subsample' keeps every other pixel (what a stride-2 layer sees); 'none'."""
    if kind == "max":
        return nn.MaxPool2d(2)
    if kind == "avg":
        return nn.AvgPool2d(2)
    if kind == "subsample":
        return nn.MaxPool2d(1, stride=2)  # a 1x1 window with stride 2: the top-left pixel of each 2x2 block
    return nn.Identity()


class CNN(nn.Module):
    """Stages of conv(k x k, 'same') -> activation -> 2x2 pooling, then one linear layer on the flattened maps."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: tuple[int, ...] = (16, 32),
                 kernel_size: int = 5, image_size: int = 28, pool: str = "max", activation: str = "relu"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; choose from {', '.join(POOLS)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        layers, c_prev, side = [], in_channels, image_size
        for c in channels:
            layers += [nn.Conv2d(c_prev, c, kernel_size, padding=kernel_size // 2), ACTIVATIONS[activation](),
                       downsample(pool)]
            c_prev, side = c, side if pool == "none" else math.ceil(side / 2) if pool == "subsample" else side // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_prev * side * side, num_classes)
        self.pool, self.activation = pool, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        # h^{(l)} = \mathrm{pool}(\sigma(W^{(l)} * h^{(l-1)} + b^{(l)}))
        h = self.features(x)  # (B, C_L, H / 2^L, W / 2^L)
        # \hat y = W_{fc} \mathrm{vec}(h^{(L)}) + b_{fc}
        return self.classifier(h.flatten(1))

    def extra_repr(self) -> str:
        return f"pool={self.pool}, activation={self.activation}"


@register_model("cnn_small", card="cnn", example=lambda: (torch.randn(2, 1, 28, 28),))
def cnn_small(**kw) -> CNN:
    return CNN(**kw)


# --- training, shared by the classic CNN labs ------------------------------------------------------

@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Accuracy of net on (x, y) in eval mode, in batches."""
    was_training = net.training
    net.eval()
    correct = sum((net(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    net.train(was_training)
    return correct / len(x)


def lr_at(step: int, total: int, lr: float, warmup: int = 0) -> float:
    """Linear warm-up over `warmup` steps, then cosine annealing to 0 at `total`."""
    # \eta_t = \eta \min(1, (t+1)/W) \cdot \tfrac12 (1 + \cos(\pi t / T))
    return lr * min(1.0, (step + 1) / warmup if warmup else 1.0) * 0.5 * (1 + math.cos(math.pi * step / total))


def train_classifier(run, net: nn.Module, data: Split, *, epochs: int, lr: float, batch_size: int = 64,
                     generator: torch.Generator, name: str = "", flatten: bool = False, optimizer: str = "adam",
                     warmup_epochs: float = 0.0, augment: Callable | None = None) -> dict:
    """Mini-batch training on cross-entropy: Adam, or SGD with Nesterov momentum 0.9; the learning rate
    warms up linearly for `warmup_epochs`, then anneals to 0 on a cosine. `augment(x, generator)`
    distorts each training batch. Logs `<name>_loss` per epoch and returns the curves: epoch, loss, test_acc.
    """
    dev = run.device
    x, y = data.x_train.to(dev), data.y_train.to(dev)  # (N, 1, 28, 28), (N,)
    x_test, y_test = data.x_test.to(dev), data.y_test.to(dev)
    if flatten:
        x, x_test = x.flatten(1), x_test.flatten(1)  # (N, 784)
    if optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    steps_per_epoch = len(x) // batch_size
    total, warmup = epochs * steps_per_epoch, round(warmup_epochs * steps_per_epoch)
    curves = {"epoch": [], "loss": [], "test_acc": []}
    step = 0
    for epoch in run.progress(range(epochs), desc=name or type(net).__name__):
        net.train()
        order = torch.randperm(len(x), generator=generator).to(dev)
        summed = torch.zeros((), device=dev)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            xb = x[idx] if augment is None else augment(x[idx], generator)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, lr, warmup)
            # \mathcal{L} = -\frac1B \sum_n \log \mathrm{softmax}(f(x_n))_{y_n}
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            summed += loss.detach()
            step += 1
        run.log(epoch + 1, **{f"{name}_loss" if name else "loss": summed / steps_per_epoch})
        curves["epoch"].append(epoch + 1)
        curves["loss"].append(summed.item() / steps_per_epoch)
        curves["test_acc"].append(evaluate(net, x_test, y_test))
    return curves


# --- cnn/vs-mlp: the same accuracy with far fewer parameters ---------------------------------------

@dataclass
class VsMlpConfig:
    channels: str = "16,32"  # the CNN's stage widths
    mlp_hidden: str = "64,256,1024"  # widths of the one-hidden-layer MLPs it is compared with
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    n_train: int = 4000


@lab(
    "cnn/vs-mlp",
    card="cnn",
    config=VsMlpConfig,
    scales={
        "quick": {"channels": "4,8", "mlp_hidden": "32", "epochs": 1, "n_train": 500},
        "default": {},
        "full": {"channels": "32,64", "mlp_hidden": "64,256,1024,4096", "epochs": 20},
    },
    goals=[Goal("cnn_acc", ">=", 0.97)],
    claims=[
        Check(
            "cnn-vs-mlp",
            lambda m: m["cnn_acc"] >= m["best_mlp_acc"] and m["param_ratio"] >= 4,
            "on the MNIST subset ({n_train} training images, {epochs} epochs each) the CNN reaches test accuracy "
            "{cnn_acc:.3f} with {cnn_params} parameters; the best one-hidden-layer MLP reaches {best_mlp_acc:.3f} "
            "with {best_mlp_params} ({param_ratio:.1f}x as many). Rule: supported if the CNN is at least as "
            "accurate with at most a quarter of that MLP's parameters",
        ),
    ],
    budget_s=60,
    threads=1,  # small nets: one thread is faster than two on a shared machine
)
def vs_mlp(run, cfg: VsMlpConfig) -> dict:
    """A small CNN against MLPs of growing width on raw MNIST pixels: accuracy per parameter."""
    full = mnist_subset(flatten=False)
    data = Split(full.x_train[:cfg.n_train], full.y_train[:cfg.n_train], full.x_test, full.y_test, full.meta)
    g = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)
    channels = tuple(int(c) for c in cfg.channels.split(","))
    cnn = CNN(channels=channels).to(run.device)
    runs = {"cnn": (cnn, train_classifier(run, cnn, data, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                                          generator=g, name="cnn"))}
    for h in (int(h) for h in cfg.mlp_hidden.split(",")):
        mlp = MLP([784, h, 10], activation="relu", generator=g).to(run.device)
        runs[f"mlp{h}"] = (mlp, train_classifier(run, mlp, data, epochs=cfg.epochs, lr=cfg.lr,
                                                 batch_size=cfg.batch_size, generator=g, name=f"mlp{h}",
                                                 flatten=True))
    results = {name: (count_params(net), curves["test_acc"][-1]) for name, (net, curves) in runs.items()}
    best = max((name for name in results if name != "cnn"), key=lambda name: results[name][1])

    with run.figure("cnn_vs_mlp", ncols=2) as (fig, (ax_params, ax_curves)):
        for name, (n, acc) in results.items():
            ax_params.scatter(n, acc, marker="*" if name == "cnn" else "o", s=120 if name == "cnn" else 40)
            ax_params.annotate(name, (n, acc), textcoords="offset points", xytext=(4, -10), fontsize=8)
        ax_params.set(xscale="log", xlabel="parameters", ylabel="test accuracy", title="accuracy against size")
        for name, (_, curves) in runs.items():
            ax_curves.plot(curves["epoch"], curves["test_acc"], "o-" if name == "cnn" else ".--", label=name)
        ax_curves.set(xlabel="epoch", ylabel="test accuracy", title="learning curves")
        ax_curves.legend(fontsize=8)
    metrics = {f"{name}_{key}": value for name, (n, acc) in results.items()
               for key, value in (("params", n), ("acc", acc))}
    return {**metrics, "best_mlp_acc": results[best][1], "best_mlp_params": results[best][0],
            "best_mlp_hidden": int(best[3:]), "param_ratio": results[best][0] / results["cnn"][0],
            "epochs": cfg.epochs, "n_train": len(data.x_train)}
