"""Pooling: summarise each small window of a feature map by its maximum or mean, and downsample.

A k x k pooling with stride k keeps one number per window, so the map shrinks k^2-fold: every later
layer has k^2 times fewer positions to compute, and a fully connected layer on the result k^2 times
fewer weights. Because a small shift of the input often keeps a window's maximum (or mean) about the
same, pooled features change less under small translations than the full-resolution maps do; they are
not exactly invariant, since a shift can move a feature across a window boundary.

    Y_{c,i,j} = \\max_{0 \\le u,v < k} X_{c, k i + u, k j + v}   or   \\frac{1}{k^2} \\sum_{u,v} X_{c, k i + u, k j + v}

LeCun, Boser, Denker, Henderson, Howard, Hubbard & Jackel, "Handwritten Digit Recognition with a
Back-Propagation Network", NIPS 1989 (averaging subsampling). The pooling functions themselves are
written out in deepatlas.nn.conv (max_pool2d, avg_pool2d, global_avg_pool).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from deepatlas.data import Split
from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.conv import count_params, max_pool2d, translate
from deepatlas.zoo.vision.cnn import CNN, evaluate, train_classifier


def axis_shifts(s: int) -> list[tuple[int, int]]:
    """The four translations by s pixels along the axes (just the identity for s = 0)."""
    return [(0, 0)] if s == 0 else [(s, 0), (-s, 0), (0, s), (0, -s)]


def relative_change(f, x: torch.Tensor, s: int) -> float:
    """Mean over images and the four s-pixel shifts of ||f(T x) - f(x)|| / ||f(x)||."""
    with torch.no_grad():
        base = f(x).flatten(1)  # (N, D)
        changes = [((f(translate(x, dy, dx)).flatten(1) - base).norm(dim=1) / base.norm(dim=1)).mean()
                   for dy, dx in axis_shifts(s)]
    return torch.stack(changes).mean().item()


# --- pooling/shift-invariance: max, average and plain subsampling under small shifts -------------------

@dataclass
class ShiftConfig:
    channels: str = "16,32"
    epochs: int = 5
    batch_size: int = 64
    lr: float = 2e-3
    max_shift: int = 3
    n_train: int = 4000


DOWNSAMPLERS = ("max", "avg", "subsample")
SWEEP = (1, 2, 4, 7, 28)  # pooling window sizes for the fixed-feature sweep (28: the whole map)


@lab(
    "pooling/shift-invariance",
    card="pooling",
    config=ShiftConfig,
    scales={
        "quick": {"channels": "4,8", "epochs": 1, "max_shift": 2, "n_train": 500},
        "default": {},
        "full": {"channels": "32,64", "epochs": 15},
    },
    goals=[Goal("acc_max_s0", ">=", 0.96)],
    claims=[
        Check(
            "pooling-shift-invariance",
            lambda m: m["change_k2_s1"] < m["change_k1_s1"] and m["acc_max_small"] >= m["acc_subsample_small"] + 0.02,
            "on the first-stage features of the trained max-pool CNN, a 1-pixel shift changes the unpooled maps by "
            "{change_k1_s1:.2f} of their norm, after 2x2 max pooling by {change_k2_s1:.2f}, 4x4 by "
            "{change_k4_s1:.2f}, whole-map by {change_k28_s1:.2f}. Trained on centred digits, the same CNN "
            "downsampling by 2x2 max pooling keeps test accuracy {acc_max_small:.3f} under 1-2 pixel shifts "
            "({acc_max_s0:.3f} unshifted), by 2x2 averaging {acc_avg_small:.3f} ({acc_avg_s0:.3f}), by keeping "
            "every other pixel {acc_subsample_small:.3f} ({acc_subsample_s0:.3f}). Rule: supported if 2x2 max "
            "pooling shrinks the change of the features and the max-pooled net is at least 0.02 more accurate "
            "under 1-2 pixel shifts than the subsampling one",
        ),
    ],
    budget_s=60,
    threads=1,
)
def shift_invariance(run, cfg: ShiftConfig) -> dict:
    """How much a 1-3 pixel shift changes pooled features and the accuracy of nets that pool or subsample."""
    full = mnist_subset(flatten=False)
    data = Split(full.x_train[:cfg.n_train], full.y_train[:cfg.n_train], full.x_test, full.y_test, full.meta)
    channels = tuple(int(c) for c in cfg.channels.split(","))
    x_test, y_test = data.x_test.to(run.device), data.y_test.to(run.device)
    metrics: dict = {}
    nets = {}
    for kind in DOWNSAMPLERS:  # the same initial weights and the same batches for each downsampler
        torch.manual_seed(run.seed)
        nets[kind] = CNN(channels=channels, pool=kind).to(run.device)
        train_classifier(run, nets[kind], data, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                         generator=torch.Generator().manual_seed(run.seed), name=kind)
        for s in range(cfg.max_shift + 1):
            accs = [evaluate(nets[kind], translate(x_test, dy, dx), y_test) for dy, dx in axis_shifts(s)]
            metrics[f"acc_{kind}_s{s}"] = sum(accs) / len(accs)
        metrics[f"acc_{kind}_small"] = (metrics[f"acc_{kind}_s1"] + metrics[f"acc_{kind}_s2"]) / 2

    # Fixed features: the max-pool net's first convolution and ReLU, pooled by windows of growing size.
    conv1 = nets["max"].features[:2]
    for k in SWEEP:
        for s in (1, 2):
            # \| P_k(f(T_s x)) - P_k(f(x)) \| / \| P_k(f(x)) \|
            metrics[f"change_k{k}_s{s}"] = relative_change(lambda t, k=k: max_pool2d(conv1(t), k), x_test, s)

    with run.figure("shift_invariance", ncols=2, size=(10, 4)) as (fig, (ax_acc, ax_change)):
        shifts = list(range(cfg.max_shift + 1))
        for kind in DOWNSAMPLERS:
            ax_acc.plot(shifts, [metrics[f"acc_{kind}_s{s}"] for s in shifts], "o-", label=kind)
        ax_acc.set(xlabel="shift (pixels)", ylabel="test accuracy", xticks=shifts,
                   title="trained on centred digits, tested shifted")
        ax_acc.legend(title="downsampling")
        for s in (1, 2):
            ax_change.plot(SWEEP, [metrics[f"change_k{k}_s{s}"] for k in SWEEP], "o-", label=f"{s}-pixel shift")
        ax_change.set(xscale="log", xticks=list(SWEEP), xticklabels=[str(k) for k in SWEEP],
                      xlabel="max-pooling window (28 = whole map)", ylabel="relative change of features",
                      title="conv1 features under shifts")
        ax_change.legend()
    return {**metrics, "epochs": cfg.epochs, "n_train": len(data.x_train)}


# --- pooling/compute: what downsampling saves the layers after it --------------------------------------

@dataclass
class ComputeConfig:
    channels: str = "32,64"
    batch_size: int = 64
    repeats: int = 10  # timed forward-backward passes of each net (the median is reported)


def flops_by_layer(net: CNN, x: torch.Tensor) -> dict[str, int]:
    """Floating-point operations of one forward and backward pass, per named layer, counted by torch."""
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    return {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}


def seconds_per_step(net: CNN, x: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first pass warms up and is not counted
        start = time.perf_counter()
        net(x).sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


@lab(
    "pooling/compute",
    card="pooling",
    config=ComputeConfig,
    scales={"quick": {"repeats": 2}, "default": {}, "full": {"batch_size": 256, "repeats": 30}},
    goals=[Goal("conv2_flops_ratio", ">=", 3.6), Goal("fc_params_ratio", ">=", 14.4)],
    claims=[
        Check(
            "pooling-reduces-compute",
            lambda m: m["conv2_flops_ratio"] >= 0.9 * 4 and m["fc_params_ratio"] >= 0.9 * 16,
            "two conv stages (3x3) on 28x28 digits, with and without 2x2 max pooling after each: the second "
            "convolution costs {conv2_flops_nopool:.3g} FLOPs per batch of {batch_size} without pooling and "
            "{conv2_flops_pool:.3g} with ({conv2_flops_ratio:.2f}x fewer), the final fully connected layer has "
            "{fc_params_nopool} parameters against {fc_params_pool} ({fc_params_ratio:.1f}x fewer); the whole "
            "net {total_flops_ratio:.2f}x fewer FLOPs, a training step {time_ratio:.2f}x faster "
            "({time_ms_nopool:.1f} vs {time_ms_pool:.1f} ms, wall clock). Rule: supported if the second conv's "
            "FLOPs fall by at least 90% of the 4x area factor and the FC parameters by 90% of 16x",
        ),
    ],
    budget_s=30,
    threads=1,
)
def compute(run, cfg: ComputeConfig) -> dict:
    """The same CNN with and without 2x2 pooling: FLOPs of the next layers, FC parameters, step time."""
    channels = tuple(int(c) for c in cfg.channels.split(","))
    g = torch.Generator().manual_seed(run.seed)
    x = torch.rand(cfg.batch_size, 1, 28, 28, generator=g).to(run.device)
    metrics: dict = {"batch_size": cfg.batch_size}
    layers = {}
    for kind, label in (("max", "pool"), ("none", "nopool")):
        torch.manual_seed(run.seed)
        net = CNN(channels=channels, kernel_size=3, pool=kind).to(run.device)
        layers[label] = flops_by_layer(net, x)
        metrics[f"conv2_flops_{label}"] = layers[label]["CNN.features.3"]
        metrics[f"total_flops_{label}"] = layers[label]["Global"]
        metrics[f"fc_params_{label}"] = count_params(net.classifier)
        metrics[f"params_{label}"] = count_params(net)
        metrics[f"time_ms_{label}"] = 1000 * seconds_per_step(net, x, cfg.repeats)
    for key in ("conv2_flops", "total_flops", "fc_params"):
        metrics[f"{key}_ratio"] = metrics[f"{key}_nopool"] / metrics[f"{key}_pool"]
    metrics["time_ratio"] = metrics["time_ms_nopool"] / metrics["time_ms_pool"]

    with run.figure("compute", ncols=2, size=(10, 4)) as (fig, (ax_flops, ax_params)):
        names = {"CNN.features.0": "conv1", "CNN.features.3": "conv2", "CNN.classifier": "fc"}
        pos = np.arange(len(names))
        for offset, label in ((-0.2, "nopool"), (0.2, "pool")):
            ax_flops.bar(pos + offset, [layers[label][n] for n in names], 0.4,
                         label="2x2 max pooling" if label == "pool" else "no pooling")
        ax_flops.set(xticks=pos, xticklabels=list(names.values()), yscale="log",
                     ylabel="FLOPs (forward + backward)", title=f"per layer, batch of {cfg.batch_size}")
        ax_flops.legend()
        ax_params.bar(["no pooling", "2x2 max pooling"], [metrics["fc_params_nopool"], metrics["fc_params_pool"]])
        ax_params.set(yscale="log", ylabel="parameters", title="final fully connected layer")
    return metrics
