"""AlexNet: a deeper, wider LeNet - five convolutional and three fully connected layers - trained with ReLU.

Its parts were known; their combination at scale was new: rectified linear units, which do not saturate
and so train several times faster than tanh units; local response normalisation across neighbouring
channels; overlapping 3x3 max pooling with stride 2; dropout in the fully connected layers; and a model
split across two GPUs (the `groups=2` convolutions, which only see the half of the channels on their own
GPU). The ImageNet network has 60,965,224 parameters. `alexnet_small` keeps the layout for 28x28 digits.

    f(x) = \\max(0, x)
    b^i_{x,y} = a^i_{x,y} \\Big/ \\Big(k + \\alpha \\sum_{j = i - n/2}^{i + n/2} (a^j_{x,y})^2\\Big)^\\beta

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NIPS 2012.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data import Split
from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.conv import count_params, output_size
from deepatlas.nn.init import kaiming_normal_
from deepatlas.registry import register_model


class LocalResponseNorm(nn.Module):
    """Divide each activation by a power of the summed squares of its n neighbouring channels (paper: k=2,
    n=5, alpha=1e-4, beta=0.75). Equals torch.nn.LocalResponseNorm(n, alpha * n, beta, k), which divides
    alpha by n."""

    def __init__(self, n: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        self.n, self.alpha, self.beta, self.k = n, alpha, beta, k

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        sq = F.pad(a.square(), (0, 0, 0, 0, self.n // 2, (self.n - 1) // 2))  # zero channels beyond the edges
        # \sum_{j = \max(0, i - n/2)}^{\min(N-1, i + n/2)} (a^j_{x,y})^2
        window_sum = sq.unfold(1, self.n, 1).sum(-1)  # (B, C, H, W)
        # b^i_{x,y} = a^i_{x,y} / (k + \alpha \sum_j (a^j_{x,y})^2)^\beta
        return a / (self.k + self.alpha * window_sum).pow(self.beta)

    def extra_repr(self) -> str:
        return f"n={self.n}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


@dataclass(frozen=True)
class AlexNetConfig:
    """Layer sizes. The defaults are `alexnet_small` for 28x28 digits; IMAGENET is the paper's network."""

    in_channels: int = 1
    image_size: int = 28
    channels: tuple[int, ...] = (24, 48, 64, 64, 48)
    kernels: tuple[int, ...] = (5, 5, 3, 3, 3)
    strides: tuple[int, ...] = (1, 1, 1, 1, 1)
    paddings: tuple[int, ...] = (2, 2, 1, 1, 1)
    groups: tuple[int, ...] = (1, 1, 1, 1, 1)  # the paper's two-GPU split: (1, 2, 1, 2, 2)
    fc: tuple[int, ...] = (256, 256)
    num_classes: int = 10
    lrn_after: tuple[int, ...] = field(default=(0, 1))  # conv layers followed by response normalisation
    pool_after: tuple[int, ...] = field(default=(0, 1, 4))  # conv layers followed by 3x3/2 max pooling


IMAGENET = AlexNetConfig(in_channels=3, image_size=227, channels=(96, 256, 384, 384, 256), kernels=(11, 5, 3, 3, 3),
                         strides=(4, 1, 1, 1, 1), paddings=(0, 2, 1, 1, 1), groups=(1, 2, 1, 2, 2), fc=(4096, 4096),
                         num_classes=1000)
IMAGENET_PARAMS = 60_965_224  # the count of the paper's two-GPU network with 1,000 classes


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class AlexNet(nn.Module):
    """conv-ReLU(-LRN)(-pool) x 5, then dropout-fc-ReLU x 2 and the output layer."""

    def __init__(self, config: AlexNetConfig = AlexNetConfig(), activation: str = "relu", dropout: float = 0.5,
                 lrn: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        cfg = config
        layers, c_prev, side = [], cfg.in_channels, cfg.image_size
        for i, (c, k, s, p, g) in enumerate(zip(cfg.channels, cfg.kernels, cfg.strides, cfg.paddings, cfg.groups)):
            layers += [nn.Conv2d(c_prev, c, k, stride=s, padding=p, groups=g), ACTIVATIONS[activation]()]
            side = output_size(side, k, s, p)
            if lrn and i in cfg.lrn_after:
                layers.append(LocalResponseNorm())
            if i in cfg.pool_after:
                layers.append(nn.MaxPool2d(3, stride=2))  # overlapping: windows 3 wide, 2 apart
                side = output_size(side, 3, 2)
            c_prev = c
        if side < 1:
            raise ValueError(f"a {cfg.image_size}x{cfg.image_size} input shrinks to nothing in this layout")
        self.features = nn.Sequential(*layers)
        head, n_prev = [], c_prev * side * side
        for n in cfg.fc:
            head += [nn.Dropout(dropout), nn.Linear(n_prev, n), ACTIVATIONS[activation]()]
            n_prev = n
        self.classifier = nn.Sequential(*head, nn.Linear(n_prev, cfg.num_classes))
        self.config, self.activation = cfg, activation
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """He et al.'s fan-in normal draw with the gain of the unit that follows (sqrt 2 for ReLU, 5/3 for
        tanh; 1 for the output layer), biases 0: each activation gets the variance-preserving start that suits
        it. (The paper drew N(0, 0.01) and set some biases to 1.)"""
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for layer in layers:
            gain = "linear" if layer is layers[-1] else self.activation
            # W \sim \mathcal{N}(0, \mathrm{gain}^2 / n_{in})
            kaiming_normal_(layer.weight, nonlinearity=gain, generator=generator)
            layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        h = self.features(x)  # (B, C_5, side, side): (B, 256, 6, 6) for ImageNet, (B, 64, 2, 2) for digits
        return self.classifier(h.flatten(1))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


@register_model("alexnet_small", card="alexnet", example=lambda: (torch.randn(2, 1, 28, 28),))
def alexnet_small(in_channels: int = 1, num_classes: int = 10, **kw) -> AlexNet:
    return AlexNet(AlexNetConfig(in_channels=in_channels, num_classes=num_classes), **kw)


def alexnet_imagenet_params_formula(cfg: AlexNetConfig = IMAGENET) -> int:
    """The parameter count worked out by hand: C_out (C_in / g k^2 + 1) per conv, n_out (n_in + 1) per fc."""
    total, c_prev, side = 0, cfg.in_channels, cfg.image_size
    for i, (c, k, s, p, g) in enumerate(zip(cfg.channels, cfg.kernels, cfg.strides, cfg.paddings, cfg.groups)):
        # \#\theta = C_{out} (C_{in} k^2 / g + 1)
        total += c * (c_prev // g * k * k + 1)
        side = output_size(side, k, s, p)
        side = output_size(side, 3, 2) if i in cfg.pool_after else side
        c_prev = c
    n_prev = c_prev * side * side  # 256 * 6 * 6 = 9216 for ImageNet
    for n in (*cfg.fc, cfg.num_classes):
        total += n * (n_prev + 1)
        n_prev = n
    return total


# --- alexnet/param-count: the ImageNet network built on the meta device, counted -----------------------

@dataclass
class ParamCountConfig:
    image_size: int = 227


@lab(
    "alexnet/param-count",
    card="alexnet",
    config=ParamCountConfig,
    scales={"quick": {}, "default": {}, "full": {}},
    goals=[Goal("params", "==", IMAGENET_PARAMS)],
    claims=[
        Check(
            "alexnet-60m-params",
            lambda m: m["conv_layers"] == 5 and m["fc_layers"] == 3 and 55e6 <= m["params"] <= 65e6,
            "the paper's network built layer by layer ({conv_layers} convolutional, {fc_layers} fully connected; "
            "{image_size}x{image_size}x3 input, two-GPU grouped convolutions, 1,000 classes) has {params:,} "
            "parameters ({formula:,} by hand), {fc_share:.1%} of them in the fully connected layers; without the "
            "two-GPU grouping it would have {params_ungrouped:,}. Feature map before the classifier: "
            "{final_channels}x{final_side}x{final_side}. Rule: supported if 5 + 3 layers and 55-65 million",
        ),
    ],
    budget_s=10,
    threads=1,
)
def param_count(run, cfg: ParamCountConfig) -> dict:
    """AlexNet's parameters, counted on the full ImageNet network without allocating it."""
    imagenet = AlexNetConfig(**{**IMAGENET.__dict__, "image_size": cfg.image_size})
    with torch.device("meta"):  # shapes only: 61 million parameters, no memory
        net = AlexNet(imagenet)
        ungrouped = AlexNet(AlexNetConfig(**{**imagenet.__dict__, "groups": (1,) * 5}))
        features = net.features(torch.empty(1, 3, cfg.image_size, cfg.image_size))  # (1, 256, 6, 6)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in net.modules() if isinstance(m, nn.Linear)]
    params = count_params(net)
    per_layer = [count_params(m) for m in convs + fcs]
    with run.figure("alexnet_params", size=(7, 3.8)) as (fig, ax):
        names = [f"conv{i + 1}" for i in range(len(convs))] + [f"fc{i + 6}" for i in range(len(fcs))]
        ax.bar(names, [n / 1e6 for n in per_layer], color=["C0"] * len(convs) + ["C1"] * len(fcs))
        ax.set(ylabel="parameters (millions)", title=f"AlexNet: {params:,} parameters")
    return {"params": params, "formula": alexnet_imagenet_params_formula(imagenet),
            "params_ungrouped": count_params(ungrouped), "conv_layers": len(convs), "fc_layers": len(fcs),
            "fc_share": sum(count_params(m) for m in fcs) / params, "final_channels": features.shape[1],
            "final_side": features.shape[-1], "image_size": cfg.image_size}


# --- alexnet/relu-vs-tanh: steps to a fixed training error with either unit -----------------------------

@dataclass
class ReluTanhConfig:
    channels: str = "16,32,48,48,32"  # alexnet_small at about half width, to afford six runs
    fc: str = "128,128"
    lrs: str = "0.01,0.003,0.03"  # SGD learning rates tried for each unit, in this order; the fastest one counts
    target_error: float = 0.05
    max_steps: int = 400
    batch_size: int = 64
    window: int = 20  # training error = mean error of the last `window` mini-batches, each seen before its update


def steps_to_error(run, net: nn.Module, data: Split, cfg: ReluTanhConfig, lr: float, seed: int, name: str,
                   limit: int) -> tuple[list[float], int | None]:
    """SGD (momentum 0.9, no regularisation) until the running training error reaches the target.

    Returns the running-error curve and the number of steps it took (None: not within `limit` steps)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    n = len(data.x_train)
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(cfg.max_steps * cfg.batch_size // n + 1)])
    errors, curve = [], []
    for step in range(limit):
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        x, y = data.x_train[idx].to(run.device), data.y_train[idx].to(run.device)
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        errors.append((logits.argmax(1) != y).float().mean().item())
        curve.append(sum(errors[-cfg.window:]) / len(errors[-cfg.window:]))
        if step % 20 == 0:
            run.log(step, **{f"{name}_loss": loss.detach()})
        if step + 1 >= cfg.window and curve[-1] <= cfg.target_error:
            return curve, step + 1
    return curve, None


def first_below(curve: list[float], level: float, window: int) -> int | None:
    return next((i + 1 for i, e in enumerate(curve) if i + 1 >= window and e <= level), None)


def _relu_6x(m: dict) -> bool:
    return m["both_reached"] == 1 and m["ratio"] >= 3


RELU_6X_EVIDENCE = (
    "the same 8-layer AlexNet-style net on MNIST digits (not the paper's CIFAR-10 net), each unit with its "
    "variance-preserving He init and its fastest SGD learning rate (ReLU {relu_lr:g}, tanh {tanh_lr:g}): "
    "training error {target_error:.0%} after {relu_steps} steps with ReLU and {tanh_steps} with tanh, so ReLU "
    "is {ratio:.2f}x as fast; at the paper's 25% it is {ratio_25:.2f}x ({relu_steps_25} vs {tanh_steps_25} "
    "steps). Rule: supported if tanh needs at least 3x the steps (half the claimed 6x)"
)


@lab(
    "alexnet/relu-vs-tanh",
    card="alexnet",
    config=ReluTanhConfig,
    scales={
        "quick": {"channels": "4,8,8,8,8", "fc": "16,16", "lrs": "0.03", "target_error": 0.5, "max_steps": 40},
        "default": {},
        "full": {"channels": "24,48,64,64,48", "fc": "256,256", "lrs": "0.001,0.003,0.01,0.03,0.1",
                 "target_error": 0.02, "max_steps": 1500},
    },
    goals=[Goal("both_reached", "==", 1)],
    claims=[Check(claim, _relu_6x, RELU_6X_EVIDENCE) for claim in ("alexnet-relu-6x", "relu-six-times-faster")],
    budget_s=60,
    threads=1,
)
def relu_vs_tanh(run, cfg: ReluTanhConfig) -> dict:
    """ReLU against tanh in one AlexNet-style net: steps to reach a fixed training error, best learning rate each."""
    full = mnist_subset(flatten=False)
    data = Split(full.x_train, full.y_train, full.x_test, full.y_test, full.meta)
    arch = AlexNetConfig(channels=tuple(int(c) for c in cfg.channels.split(",")),
                         fc=tuple(int(n) for n in cfg.fc.split(",")))
    lrs = [float(lr) for lr in cfg.lrs.split(",")]
    results: dict[str, dict[float, tuple[list[float], int | None]]] = {"relu": {}, "tanh": {}}
    for activation in results:
        best = cfg.max_steps
        for lr in run.progress(lrs, desc=activation):
            net = AlexNet(arch, activation=activation, dropout=0.0, lrn=False)  # no regularisation, as in Fig. 1
            net.reset_parameters(torch.Generator().manual_seed(run.seed))
            # a learning rate that has not reached the target by the best count so far cannot win: stop it there
            results[activation][lr] = steps_to_error(run, net.to(run.device), data, cfg, lr, run.seed,
                                                     f"{activation}_lr{lr:g}", limit=best)
            best = min(best, results[activation][lr][1] or best)

    metrics: dict = {"target_error": cfg.target_error, "max_steps": cfg.max_steps}
    for activation, by_lr in results.items():
        # the fastest learning rate; runs that never reach the target count as max_steps + 1
        lr, (curve, steps) = min(by_lr.items(), key=lambda kv: kv[1][1] or cfg.max_steps + 1)
        metrics[f"{activation}_lr"], metrics[f"{activation}_steps"] = lr, steps or cfg.max_steps + 1
        metrics[f"{activation}_reached"] = int(steps is not None)
        metrics[f"{activation}_steps_25"] = min(first_below(c, 0.25, cfg.window) or cfg.max_steps + 1
                                                for c, _ in by_lr.values())
    metrics["both_reached"] = int(metrics["relu_reached"] and metrics["tanh_reached"])
    metrics["ratio"] = metrics["tanh_steps"] / metrics["relu_steps"]
    metrics["ratio_25"] = metrics["tanh_steps_25"] / metrics["relu_steps_25"]
    metrics["relu_epochs"] = metrics["relu_steps"] * cfg.batch_size / len(data.x_train)
    metrics["tanh_epochs"] = metrics["tanh_steps"] * cfg.batch_size / len(data.x_train)

    with run.figure("relu_vs_tanh", ncols=2, size=(10, 4)) as (fig, (ax_curve, ax_steps)):
        for activation, style in (("relu", "-"), ("tanh", "--")):
            for lr, (curve, _) in results[activation].items():
                best = lr == metrics[f"{activation}_lr"]
                ax_curve.plot(range(1, len(curve) + 1), curve, style, lw=2 if best else 0.8,
                              alpha=1 if best else 0.5, label=f"{activation}, lr {lr:g}")
        ax_curve.axhline(cfg.target_error, color="grey", lw=1)
        ax_curve.axhline(0.25, color="grey", lw=1, ls=":")
        ax_curve.set(yscale="log", xlabel="SGD step", ylabel=f"training error (last {cfg.window} batches)",
                     title="ReLU (solid) against tanh (dashed)")
        ax_curve.legend(fontsize=7)
        pos = np.arange(len(lrs))
        for offset, activation in ((-0.2, "relu"), (0.2, "tanh")):
            steps = [results[activation][lr][1] or len(results[activation][lr][0]) for lr in lrs]
            bars = ax_steps.bar(pos + offset, steps, 0.4, label=activation)
            for bar, lr in zip(bars, lrs):
                if results[activation][lr][1] is None:  # stopped when it could no longer be the fastest
                    bar.set_hatch("//")
                    bar.set_alpha(0.5)
        ax_steps.set(xticks=pos, xticklabels=[f"{lr:g}" for lr in lrs], xlabel="learning rate",
                     ylabel=f"steps to {cfg.target_error:.0%} training error",
                     title="per learning rate (hatched: stopped, slower)")
        ax_steps.legend()
    return metrics
