"""The convolutional layer, measured: how few parameters it has, and what a shift of the input does to it.

A convolution is a fully connected layer with two constraints: each output sees only a local window
(most weights are zero) and every position uses the same kernel (the remaining weights are tied). Both
labs here measure consequences of that. The parameter count no longer depends on the image size; and
because the same kernel slides everywhere, shifting the input shifts the output by the same amount
(equivariance), while a pooling over all positions afterwards makes the result unchanged (invariance).
The layer itself is written out in deepatlas.nn.conv (im2col + matrix product).

    Y_{o,i,j} = b_o + \\sum_{c,u,v} W_{o,c,u,v} X_{c, s i + u - p, s j + v - p},   f(T_\\delta x) = T_\\delta f(x)

LeCun, "Generalization and Network Design Strategies", Connectionism in Perspective (Elsevier) 1989.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.conv import Conv2d, conv2d, count_params, global_avg_pool, output_size

# (C_in, C_out, H = W, k, stride, padding) of three layers from the history of CNNs
REFERENCE_LAYERS = {
    "mnist": (1, 32, 28, 3, 1, 1),  # a first layer on MNIST digits
    "cifar": (64, 64, 32, 3, 1, 1),  # a ResNet-style 3x3 layer on CIFAR-sized maps
    "alexnet1": (3, 96, 227, 11, 4, 0),  # AlexNet's first layer on ImageNet crops
}


def conv_params_formula(c_in: int, c_out: int, k: int) -> int:
    # \#\theta_{conv} = C_{out} (C_{in} k^2 + 1)
    return c_out * (c_in * k * k + 1)


def dense_params_formula(c_in: int, c_out: int, side: int, side_out: int) -> int:
    # \#\theta_{dense} = (C_{out} H_{out} W_{out}) (C_{in} H W + 1)
    return c_out * side_out**2 * (c_in * side**2 + 1)


def dense_twin(conv: Conv2d, c_in: int, side: int) -> nn.Linear:
    """The fully connected layer that computes exactly what `conv` computes on (C_in, side, side) inputs.

    Column n of its weight is the conv's response (without bias) to the n-th unit input image.
    """
    n_in = c_in * side * side
    basis = torch.eye(n_in, dtype=conv.weight.dtype).reshape(n_in, c_in, side, side)  # (N_in, C_in, H, W)
    responses = conv2d(basis, conv.weight, None, conv.stride, conv.padding)  # (N_in, C_out, H_out, W_out)
    dense = nn.Linear(n_in, responses[0].numel()).to(conv.weight.dtype)
    with torch.no_grad():
        dense.weight.copy_(responses.reshape(n_in, -1).T)  # (N_out, N_in)
        dense.bias.copy_(conv.bias.repeat_interleave(responses[0, 0].numel()))  # one b_o per output position
    return dense


# --- convolution/param-count: a convolution against the dense layer between the same maps -------------

@dataclass
class ParamCountConfig:
    side: int = 8  # image side of the small layer whose dense twin is built and compared
    c_in: int = 2
    c_out: int = 3
    k: int = 3


@lab(
    "convolution/param-count",
    card="convolution",
    config=ParamCountConfig,
    scales={"quick": {"side": 5}, "default": {}, "full": {"side": 16}},
    goals=[Goal("formula_mismatch", "==", 0), Goal("twin_err", "<=", 1e-12)],
    claims=[
        Check(
            "convolution-fewer-parameters",
            lambda m: m["min_ratio"] >= 100,
            "counted on built layers: a 3x3 convolution 1->32 on 28x28 MNIST maps has {mnist_conv} parameters, "
            "the dense layer between the same maps {mnist_dense} ({mnist_ratio:.3g}x); 64->64 on 32x32: "
            "{cifar_conv} vs {cifar_dense} ({cifar_ratio:.3g}x); AlexNet's 11x11/4 first layer on 227x227: "
            "{alexnet1_conv} vs {alexnet1_dense} ({alexnet1_ratio:.3g}x). The conv equals a dense layer (to "
            "{twin_err:.1e}) whose matrix is {twin_density:.1%} non-zero with only {twin_distinct} distinct "
            "values. Rule: supported if the dense layer needs at least 100x more parameters for every layer",
        ),
    ],
    budget_s=10,
    threads=1,
)
def param_count(run, cfg: ParamCountConfig) -> dict:
    """Parameters of a convolution against the fully connected layer between the same feature maps."""
    metrics: dict = {}
    mismatch = 0
    for name, (c_in, c_out, side, k, stride, padding) in REFERENCE_LAYERS.items():
        side_out = output_size(side, k, stride, padding)
        with torch.device("meta"):  # shapes only: the 4.3-billion-weight dense layer allocates nothing
            conv = Conv2d(c_in, c_out, k, stride, padding)
            dense = nn.Linear(c_in * side * side, c_out * side_out * side_out)
        metrics[f"{name}_conv"], metrics[f"{name}_dense"] = count_params(conv), count_params(dense)
        metrics[f"{name}_ratio"] = metrics[f"{name}_dense"] / metrics[f"{name}_conv"]
        mismatch += abs(metrics[f"{name}_conv"] - conv_params_formula(c_in, c_out, k))
        mismatch += abs(metrics[f"{name}_dense"] - dense_params_formula(c_in, c_out, side, side_out))
    metrics["formula_mismatch"] = mismatch
    metrics["min_ratio"] = min(metrics[f"{name}_ratio"] for name in REFERENCE_LAYERS)

    # The dense twin of a small convolution: same function, but mostly zeros and tied weights.
    g = torch.Generator().manual_seed(run.seed)
    conv = Conv2d(cfg.c_in, cfg.c_out, cfg.k, padding=cfg.k // 2, generator=g).double()
    dense = dense_twin(conv, cfg.c_in, cfg.side)
    x = torch.randn(16, cfg.c_in, cfg.side, cfg.side, generator=g, dtype=torch.float64)
    with torch.no_grad():
        twin_err = (dense(x.flatten(1)) - conv(x).flatten(1)).abs().max().item()
    w = dense.weight.detach()
    metrics.update(twin_err=twin_err, twin_density=(w != 0).double().mean().item(),
                   twin_distinct=torch.unique(w[w != 0]).numel(), twin_conv_params=count_params(conv),
                   twin_dense_params=count_params(dense), kernel_weights=conv.weight.numel())

    with run.figure("param_count", ncols=2, size=(11, 4.2)) as (fig, (ax_bars, ax_matrix)):
        names = list(REFERENCE_LAYERS)
        pos = np.arange(len(names))
        ax_bars.bar(pos - 0.2, [metrics[f"{n}_conv"] for n in names], 0.4, label="convolution")
        ax_bars.bar(pos + 0.2, [metrics[f"{n}_dense"] for n in names], 0.4, label="dense, same maps")
        ax_bars.set(xticks=pos, xticklabels=names, yscale="log", ylabel="parameters",
                    title="parameters between the same feature maps")
        ax_bars.legend()
        limit = w.abs().max().item()
        ax_matrix.imshow(w.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax_matrix.set(title=f"the conv as a dense matrix ({metrics['twin_density']:.1%} non-zero)",
                      xlabel="input unit (c, i, j)", ylabel="output unit (o, i, j)")
    return metrics


# --- convolution/equivariance: shift the input, and the feature map shifts with it --------------------

@dataclass
class EquivarianceConfig:
    n_images: int = 100
    channels: int = 8
    k: int = 5
    max_shift: int = 3
    margin: int = 8  # zero border around each digit, so that no shift pushes ink or its responses off the map


def relative(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b|| / ||b|| per image (first axis)."""
    return (a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)


@lab(
    "convolution/equivariance",
    card="convolution",
    config=EquivarianceConfig,
    scales={"quick": {"n_images": 10, "max_shift": 2}, "default": {}, "full": {"n_images": 1000, "max_shift": 4}},
    goals=[Goal("equivariance_err", "<=", 1e-12)],
    claims=[
        Check(
            "convolution-translation",
            lambda m: m["equivariance_err"] <= 1e-12 and m["invariance_err_maps"] >= 0.1,
            "over {n_images} MNIST digits and every shift of up to {max_shift} pixels, a {k}x{k} convolution "
            "commutes with the shift to {equivariance_err:.1e} (equivariance, float64 rounding), but its feature "
            "maps change by {invariance_err_maps:.2f} of their norm (not invariant); averaging each map over all "
            "positions afterwards is invariant to {invariance_err_gap:.1e}. With stride 2 the map follows shifts "
            "by 2 pixels ({stride2_err_even:.1e}) but not by 1 ({stride2_err_odd:.2f}). Rule: supported if the "
            "conv is equivariant to rounding (<= 1e-12) and its maps are not invariant (change >= 0.1)",
        ),
    ],
    budget_s=30,
    threads=1,
)
def equivariance(run, cfg: EquivarianceConfig) -> dict:
    """Shift the input: a convolution's output shifts the same way; only pooling over positions makes it still."""
    if cfg.margin < cfg.max_shift + cfg.k // 2:
        raise ValueError(f"margin {cfg.margin} must be at least max_shift + k // 2 = {cfg.max_shift + cfg.k // 2}")
    x = mnist_subset(flatten=False).x_test[:cfg.n_images].double()  # (N, 1, 28, 28)
    x = F.pad(x, (cfg.margin,) * 4)  # (N, 1, 28 + 2m, 28 + 2m)
    g = torch.Generator().manual_seed(run.seed)
    conv = Conv2d(1, cfg.channels, cfg.k, padding=cfg.k // 2, generator=g).double()
    conv_s2 = Conv2d(1, cfg.channels, cfg.k, stride=2, padding=cfg.k // 2, generator=g).double()

    # With a zero margin wider than shift + k // 2, a circular shift of the canvas moves the digit
    # without wrapping any ink or any response to ink around the border: torch.roll is the translation.
    def shift(t, dy, dx):
        return torch.roll(t, (dy, dx), dims=(-2, -1))

    shifts = [(dy, dx) for dy in range(-cfg.max_shift, cfg.max_shift + 1)
              for dx in range(-cfg.max_shift, cfg.max_shift + 1) if (dy, dx) != (0, 0)]
    equiv, inv_maps, inv_gap = [], [], []
    with torch.no_grad():
        f = conv(x)  # (N, C, H, W)
        pooled = global_avg_pool(torch.relu(f))  # (N, C)
        for dy, dx in run.progress(shifts, desc="shifts"):
            f_shifted = conv(shift(x, dy, dx))
            # \| f(T_\delta x) - T_\delta f(x) \| / \| f(x) \|
            equiv.append(relative(f_shifted, shift(f, dy, dx)).max())
            # \| f(T_\delta x) - f(x) \| / \| f(x) \|
            inv_maps.append(relative(f_shifted, f).mean())
            inv_gap.append(relative(global_avg_pool(torch.relu(f_shifted)), pooled).max())
        f2 = conv_s2(x)  # (N, C, H / 2, W / 2)
        even = relative(conv_s2(shift(x, 2, 0)), shift(f2, 1, 0)).max()  # a 2-pixel shift is 1 output pixel
        odd = torch.minimum(relative(conv_s2(shift(x, 1, 0)), f2),  # a 1-pixel shift matches no output shift
                            relative(conv_s2(shift(x, 1, 0)), shift(f2, 1, 0))).mean()
        f_example = conv(shift(x[:1], 3, 3))
    metrics = {
        "equivariance_err": max(equiv).item(), "invariance_err_maps": torch.stack(inv_maps).mean().item(),
        "invariance_err_gap": max(inv_gap).item(), "stride2_err_even": even.item(), "stride2_err_odd": odd.item(),
        "n_images": len(x), "n_shifts": len(shifts), "max_shift": cfg.max_shift, "k": cfg.k,
    }

    with run.figure("equivariance", ncols=4, size=(15, 3.8)) as (fig, axes):
        panels = [(x[0, 0], "digit"), (f[0, 0], "feature map f(x)"), (f_example[0, 0], "f(x shifted by (3, 3))")]
        for ax, (img, title) in zip(axes, panels):
            ax.imshow(img.numpy(), cmap="gray" if title == "digit" else "viridis")
            ax.set(title=title, xticks=[], yticks=[])
        errors = {"conv: equivariance": "equivariance_err", "conv maps: invariance": "invariance_err_maps",
                  "conv + global pool: invariance": "invariance_err_gap", "stride 2, shift 2": "stride2_err_even",
                  "stride 2, shift 1": "stride2_err_odd"}
        errors = {label: metrics[key] for label, key in errors.items()}
        axes[3].barh(list(errors), [max(v, 1e-17) for v in errors.values()])
        axes[3].set(xscale="log", xlabel="relative error", title="what a shift changes")
    return metrics
