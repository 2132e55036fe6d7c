"""VGG: one building block, the 3x3 convolution, stacked deep; 2x2 max pooling halves the map between stages.

Two stacked 3x3 layers see a 5x5 window and three see 7x7, like one 7x7 layer, but with 27 C^2 instead of
49 C^2 weights for C channels in and out, and with three nonlinearities instead of one. Built from that
block, with the channel count doubling at every pooling, VGG-16 (13 convolutions and 3 fully connected
layers, 138 million parameters) showed that depth with small kernels steadily improves accuracy.

    r_n = 2n + 1 \\ (n \\text{ stacked } 3 \\times 3)
    n \\cdot 3^2 C^2 \\text{ weights against } (2n + 1)^2 C^2 \\text{ for one layer of the same receptive field}

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015
(arXiv 1409.1556).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.conv import count_params
from deepatlas.nn.init import kaiming_normal_
from deepatlas.registry import register_model

SMALL_STAGES = ((16, 16), (32, 32), (64, 64))  # 28 -> 14 -> 7 -> 3
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))  # configuration D
VGG16_PARAMS = 138_357_544  # VGG-16 on 224x224 ImageNet crops, 1,000 classes


class VGG(nn.Module):
    """Stages of 3x3 convolutions (stride 1, padding 1) with ReLU, 2x2 max pooling after each stage, then
    dropout-fc-ReLU twice and the output layer."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, stages=SMALL_STAGES, image_size: int = 28,
                 fc: tuple[int, ...] = (256, 256), dropout: float = 0.5, batch_norm: bool = False):
        super().__init__()
        layers, c_prev, side = [], in_channels, image_size
        for stage in stages:
            for c in stage:
                layers.append(nn.Conv2d(c_prev, c, 3, padding=1))  # 'same' size: only pooling shrinks the map
                layers += [nn.BatchNorm2d(c)] if batch_norm else []
                layers.append(nn.ReLU())
                c_prev = c
            layers.append(nn.MaxPool2d(2))
            side //= 2
        if side < 1:
            raise ValueError(f"{len(stages)} poolings shrink a {image_size}x{image_size} input to nothing")
        self.features = nn.Sequential(*layers)
        head, n_prev = [], c_prev * side * side
        for n in fc:
            head += [nn.Linear(n_prev, n), nn.ReLU(), nn.Dropout(dropout)]
            n_prev = n
        self.classifier = nn.Sequential(*head, nn.Linear(n_prev, num_classes))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """He et al.'s fan-in normal draw for every ReLU layer (gain 1 for the output layer), biases 0."""
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for layer in layers:
            # W \sim \mathcal{N}(0, 2 / n_{in})
            kaiming_normal_(layer.weight, nonlinearity="linear" if layer is layers[-1] else "relu",
                            generator=generator)
            layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        h = self.features(x)  # (B, C_last, H / 2^S, W / 2^S)
        return self.classifier(h.flatten(1))


@register_model("vgg_small", card="vgg", example=lambda: (torch.randn(2, 1, 28, 28),))
def vgg_small(**kw) -> VGG:
    return VGG(**kw)


def conv_stack(channels: int, n: int, k: int = 3) -> nn.Sequential:
    """n convolutions k x k, C -> C channels, 'same' padding, no bias, ReLU after each."""
    layers = []
    for _ in range(n):
        layers += [nn.Conv2d(channels, channels, k, padding=k // 2, bias=False), nn.ReLU()]
    return nn.Sequential(*layers)


def receptive_field(stack: nn.Sequential, channels: int, side: int = 21) -> int:
    """Width of the input region that reaches the centre output, read off the gradient's support.

    The weights are replaced by their absolute values and the input is positive, so every ReLU is
    active and no gradient path can cancel: the support is exactly the receptive field."""
    probe = stack.double()
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.abs_().add_(1e-3)
    x = torch.ones(1, channels, side, side, dtype=torch.float64, requires_grad=True)
    probe(x)[0, :, side // 2, side // 2].sum().backward()
    reached = x.grad[0].abs().sum(0) > 0  # (side, side)
    return int(reached.any(0).sum())


# --- vgg/param-arithmetic: three 3x3 layers against one 7x7 ------------------------------------------

@dataclass
class ArithmeticConfig:
    channels: str = "16,64,256,512"


@lab(
    "vgg/param-arithmetic",
    card="vgg",
    config=ArithmeticConfig,
    scales={"quick": {"channels": "8,64"}, "default": {}, "full": {"channels": "16,64,128,256,512,1024"}},
    goals=[Goal("formula_mismatch", "==", 0), Goal("rf_stack3", "==", 7)],
    claims=[
        Check(
            "vgg-3x3-stack",
            lambda m: m["rf_stack3"] == m["rf_single7"] == 7 and m["max_param_ratio"] < 1,
            "measured on built layers: three 3x3 convolutions and one 7x7 both see a {rf_stack3}x{rf_stack3} "
            "(vs {rf_single7}x{rf_single7}) window of the input; with C = {c_max} channels they hold "
            "{stack3_cmax:,} against {single7_cmax:,} weights (27C^2 vs 49C^2; ratio {min_param_ratio:.3f} to "
            "{max_param_ratio:.3f} over the C tried), and the stack applies 3 nonlinearities instead of 1. Two "
            "3x3 layers see {rf_stack2}x{rf_stack2} for 18C^2 against 25C^2. VGG-16 itself: {vgg16_params:,} "
            "parameters. Rule: supported if the receptive fields are equal (7) and the stack has fewer parameters",
        ),
    ],
    budget_s=10,
    threads=1,
)
def param_arithmetic(run, cfg: ArithmeticConfig) -> dict:
    """Three stacked 3x3 convolutions against one 7x7: parameters, receptive field, nonlinearities."""
    channels = [int(c) for c in cfg.channels.split(",")]
    metrics: dict = {}
    mismatch = 0
    for c in channels:
        with torch.device("meta"):  # counting only
            stack3, single7 = conv_stack(c, 3), conv_stack(c, 1, k=7)
            stack2, single5 = conv_stack(c, 2), conv_stack(c, 1, k=5)
        metrics[f"stack3_c{c}"], metrics[f"single7_c{c}"] = count_params(stack3), count_params(single7)
        # 3 \cdot 3^2 C^2 = 27 C^2 \quad\text{vs}\quad 7^2 C^2 = 49 C^2
        mismatch += abs(metrics[f"stack3_c{c}"] - 27 * c * c) + abs(metrics[f"single7_c{c}"] - 49 * c * c)
        mismatch += abs(count_params(stack2) - 18 * c * c) + abs(count_params(single5) - 25 * c * c)
    ratios = [metrics[f"stack3_c{c}"] / metrics[f"single7_c{c}"] for c in channels]
    with torch.device("meta"):
        vgg16 = VGG(3, 1000, VGG16_STAGES, image_size=224, fc=(4096, 4096))
    probe_c = 3
    metrics.update(
        formula_mismatch=mismatch, max_param_ratio=max(ratios), min_param_ratio=min(ratios),
        rf_stack3=receptive_field(conv_stack(probe_c, 3), probe_c),
        rf_single7=receptive_field(conv_stack(probe_c, 1, k=7), probe_c),
        rf_stack2=receptive_field(conv_stack(probe_c, 2), probe_c), vgg16_params=count_params(vgg16),
    )
    c_max = max(channels)
    metrics.update(c_max=c_max, stack3_cmax=metrics[f"stack3_c{c_max}"], single7_cmax=metrics[f"single7_c{c_max}"])

    with run.figure("param_arithmetic", ncols=2, size=(10, 4)) as (fig, (ax_params, ax_rf)):
        ax_params.plot(channels, [metrics[f"stack3_c{c}"] for c in channels], "o-", label="three 3x3 (27C²)")
        ax_params.plot(channels, [metrics[f"single7_c{c}"] for c in channels], "s-", label="one 7x7 (49C²)")
        ax_params.set(xscale="log", yscale="log", xlabel="channels C", ylabel="weights",
                      title="same receptive field, fewer weights")
        ax_params.legend()
        n_layers = [1, 2, 3, 4, 5]
        ax_rf.plot(n_layers, [receptive_field(conv_stack(probe_c, n), probe_c) for n in n_layers], "o-",
                   label="measured")
        ax_rf.plot(n_layers, [2 * n + 1 for n in n_layers], "k:", label="2n + 1")
        ax_rf.set(xlabel="stacked 3x3 layers n", ylabel="receptive field (pixels)", title="receptive field")
        ax_rf.legend()
    return metrics
