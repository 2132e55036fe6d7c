"""Inception (GoogLeNet): look at several scales at once, and shrink the channels before looking.

An Inception module runs 1x1, 3x3 and 5x5 convolutions and a 3x3 max pooling side by side and
concatenates their outputs along the channels. Run on every input channel the large kernels would be
costly, so 1x1 convolutions (an idea from Network-in-Network) first reduce the channels feeding the
3x3 and 5x5 branches and project the pooled branch. GoogLeNet stacks nine such modules into a
22-layer net that ends in global average pooling, with two auxiliary classifiers during training.

    y = \\mathrm{concat}\\big[C_1(x),\\ C_3(C_1(x)),\\ C_5(C_1(x)),\\ C_1(\\mathrm{maxpool}_3(x))\\big]

Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich, "Going Deeper with
Convolutions", CVPR 2015 (arXiv 1409.4842).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.vision.alexnet import IMAGENET as ALEXNET_IMAGENET
from deepatlas.zoo.vision.alexnet import AlexNet
from deepatlas.zoo.vision.cnn_zoo import conv_weights, multiply_adds, n_params
from deepatlas.zoo.vision.resnet import he_init_


class ConvReLU(nn.Sequential):
    """A convolution with bias and ReLU: GoogLeNet's every layer (no BatchNorm in v1)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1):
        super().__init__(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2), nn.ReLU())


class Inception(nn.Module):
    """Four parallel branches concatenated along channels; the widths are the columns of the paper's
    Table 1. `reduce=False` drops the 1x1 reductions in front of the 3x3 and 5x5 convolutions (they then
    see every input channel) and keeps everything else, so both versions give the same output shape."""

    def __init__(self, c_in: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int,
                 reduce: bool = True):
        super().__init__()
        self.branch1 = ConvReLU(c_in, c1, 1)
        if reduce:
            self.branch3 = nn.Sequential(ConvReLU(c_in, c3_reduce, 1), ConvReLU(c3_reduce, c3, 3))
            self.branch5 = nn.Sequential(ConvReLU(c_in, c5_reduce, 1), ConvReLU(c5_reduce, c5, 5))
        else:
            self.branch3, self.branch5 = ConvReLU(c_in, c3, 3), ConvReLU(c_in, c5, 5)
        self.branch_pool = ConvReLU(c_in, pool_proj, 1)
        self.c_out = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, c1 + c3 + c5 + pool_proj, H, W)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        # y = \mathrm{concat}[C_1(x), C_3(C_1(x)), C_5(C_1(x)), C_1(\mathrm{maxpool}_3(x))]
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(pooled)], 1)


class AuxClassifier(nn.Module):
    """The side head on 4a and 4d: 5x5/3 average pooling, 1x1 conv to 128, FC 1024, dropout 0.7, FC."""

    def __init__(self, c_in: int, num_classes: int):
        super().__init__()
        self.conv = ConvReLU(c_in, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, 14, 14) -> (B, classes)
        h = self.conv(F.avg_pool2d(x, 5, stride=3))  # (B, 128, 4, 4) from a 14x14 map
        h = F.dropout(F.relu(self.fc1(h.flatten(1))), 0.7, self.training)
        return self.fc2(h)


# Table 1 of the paper. ("conv", c_out, kernel, stride), ("pool", kernel, stride), ("lrn",),
# ("inception", name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
IMAGENET = [
    ("conv", 64, 7, 2), ("pool", 3, 2), ("lrn",), ("conv", 64, 1, 1), ("conv", 192, 3, 1), ("lrn",), ("pool", 3, 2),
    ("inception", "3a", 64, 96, 128, 16, 32, 32), ("inception", "3b", 128, 128, 192, 32, 96, 64), ("pool", 3, 2),
    ("inception", "4a", 192, 96, 208, 16, 48, 64), ("inception", "4b", 160, 112, 224, 24, 64, 64),
    ("inception", "4c", 128, 128, 256, 24, 64, 64), ("inception", "4d", 112, 144, 288, 32, 64, 64),
    ("inception", "4e", 256, 160, 320, 32, 128, 128), ("pool", 3, 2),
    ("inception", "5a", 256, 160, 320, 32, 128, 128), ("inception", "5b", 384, 192, 384, 48, 128, 128),
]
# The same plan for 28x28 digits: a 3x3 stem, pooling to 14x14, then modules 3a, 3b, 4a, 4b and 5a at a
# quarter of the paper's widths, on maps of 14 -> 7 -> 4.
SMALL = [
    ("conv", 32, 3, 1), ("pool", 3, 2),
    ("inception", "3a", 16, 24, 32, 4, 8, 8), ("inception", "3b", 32, 32, 48, 8, 24, 16), ("pool", 3, 2),
    ("inception", "4a", 48, 24, 52, 4, 12, 16), ("inception", "4b", 40, 28, 56, 6, 16, 16), ("pool", 3, 2),
    ("inception", "5a", 64, 40, 80, 8, 32, 32),
]
CONFIGS = {"imagenet": IMAGENET, "small": SMALL}


class GoogLeNet(nn.Module):
    """Layers built from a plan (IMAGENET or SMALL), global average pooling, dropout 0.4 and a linear
    classifier. With `aux` the auxiliary classifiers sit on 4a and 4d (as in the paper; ImageNet plan
    only) and, in training mode, the forward returns (logits, aux_4a, aux_4d)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, config: str = "small", aux: bool = False,
                 reduce: bool = True):
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"unknown GoogLeNet config {config!r}; choose from {', '.join(CONFIGS)}")
        if aux and config != "imagenet":
            raise ValueError("the auxiliary classifiers sit on the 14x14 maps of the ImageNet plan: "
                             "use config='imagenet'")
        self.layers = nn.ModuleDict()
        c = in_channels
        for i, spec in enumerate(CONFIGS[config]):
            if spec[0] == "conv":
                self.layers[f"conv{i}"] = ConvReLU(c, spec[1], spec[2], spec[3])
                c = spec[1]
            elif spec[0] == "pool":
                self.layers[f"pool{i}"] = nn.MaxPool2d(spec[1], spec[2], ceil_mode=True)
            elif spec[0] == "lrn":
                self.layers[f"lrn{i}"] = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
            else:
                self.layers[spec[1]] = Inception(c, *spec[2:], reduce=reduce)
                c = self.layers[spec[1]].c_out
        self.aux = nn.ModuleDict({name: AuxClassifier(self.layers[name].c_out, num_classes) for name in ("4a", "4d")}
                                 ) if aux else None
        self.fc = nn.Linear(c, num_classes)
        he_init_(self)  # without BatchNorm, the scale of the initial weights decides whether a deep stack trains

    def forward(self, x: torch.Tensor):  # (B, C_in, H, W) -> (B, classes)
        side = []
        for name, layer in self.layers.items():
            x = layer(x)
            if self.aux is not None and self.training and name in self.aux:
                side.append(self.aux[name](x))
        h = F.dropout(x.mean((2, 3)), 0.4, self.training)  # global average pooling: (B, C)
        logits = self.fc(h)
        return (logits, *side) if side else logits


@register_model("googlenet_small", card="inception", example=lambda: (torch.randn(2, 1, 28, 28),))
def googlenet_small(**kw) -> GoogLeNet:
    return GoogLeNet(config="small", **kw)


# --- inception/param-arithmetic: GoogLeNet against AlexNet, and what the 1x1 reductions save ---------

def module_cost(c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int, reduce: bool) -> int:
    """Weights (no biases) of one Inception module, in closed form: the card's equation for each branch."""
    if reduce:
        return c_in * c1 + c_in * c3r + 9 * c3r * c3 + c_in * c5r + 25 * c5r * c5 + c_in * pp
    return c_in * c1 + 9 * c_in * c3 + 25 * c_in * c5 + c_in * pp


@dataclass
class InceptionArithmeticConfig:
    image_size: int = 224  # the paper's input, for GoogLeNet's multiply-adds
    tolerance: float = 0.15  # "about one twelfth": AlexNet / GoogLeNet within 12 +- 15%


@lab(
    "inception/param-arithmetic",
    card="inception",
    config=InceptionArithmeticConfig,
    scales={"quick": {"image_size": 64}, "default": {}, "full": {}},
    goals=[Goal("module_formula_err", "==", 0), Goal("googlenet_depth", "==", 22)],
    claims=[
        Check(
            "inception-fewer-params",
            lambda m: abs(m["ratio"] / 12 - 1) <= m["tolerance"],
            "GoogLeNet built from the paper's Table 1 ({googlenet_depth} layers with weights) has "
            "{googlenet_params:,} parameters, {googlenet_params_aux:,} with its two auxiliary classifiers; "
            "AlexNet as published has {alexnet_params:,}: a ratio of {ratio:.1f} ({ratio_aux:.1f} counting the "
            "auxiliary heads), against the claimed 12 (+-{tolerance:.0%})",
        ),
        Check(
            "inception-1x1-reduction",
            lambda m: m["macs_3a_reduced"] < 0.5 * m["macs_3a_unreduced"],
            "module 3a on a 28x28x192 map, same 256 output channels: {macs_3a_reduced:,} multiply-adds with the "
            "1x1 reductions vs {macs_3a_unreduced:,} without ({macs_saving:.0%} fewer; parameters "
            "{params_3a_reduced:,} vs {params_3a_unreduced:,}); over the whole net {googlenet_gmacs:.2f} G "
            "multiply-adds with vs {googlenet_gmacs_unreduced:.2f} G without",
        ),
    ],
    budget_s=30,
    threads=1,
)
def param_arithmetic(run, cfg: InceptionArithmeticConfig) -> dict:
    """GoogLeNet's parameters against AlexNet's, and the 1x1 reductions' saving in module 3a."""
    with torch.device("meta"):  # shapes only: the counts need no memory and no arithmetic
        image = torch.empty(1, 3, cfg.image_size, cfg.image_size)
        net = GoogLeNet(3, 1000, config="imagenet", aux=True)
        unreduced = GoogLeNet(3, 1000, config="imagenet", reduce=False)
        alexnet = AlexNet(ALEXNET_IMAGENET)  # the paper's two-GPU network, from the AlexNet card's file
    n_inception = sum(isinstance(m, Inception) for m in net.layers.values())
    n_stem = sum(isinstance(m, ConvReLU) for m in net.layers.values())
    metrics: dict = {
        "googlenet_params": n_params(net) - n_params(net.aux), "googlenet_params_aux": n_params(net),
        "alexnet_params": n_params(alexnet), "tolerance": cfg.tolerance, "image_size": cfg.image_size,
        # layers with weights on the longest path: stem convolutions, two per module, the classifier
        "googlenet_depth": n_stem + 2 * n_inception + 1,
        "googlenet_gmacs": multiply_adds(net, image) / 1e9,
        "googlenet_gmacs_unreduced": multiply_adds(unreduced, image) / 1e9,
    }
    metrics["ratio"] = metrics["alexnet_params"] / metrics["googlenet_params"]
    metrics["ratio_aux"] = metrics["alexnet_params"] / metrics["googlenet_params_aux"]

    spec = (192, 64, 96, 128, 16, 32, 32)  # 3a, on the 28x28x192 map
    x = torch.randn(1, 192, 28, 28)
    err = 0
    for reduce, key in ((True, "reduced"), (False, "unreduced")):
        module = Inception(*spec, reduce=reduce)
        weights = conv_weights(module)
        metrics[f"params_3a_{key}"] = n_params(module)
        metrics[f"macs_3a_{key}"] = multiply_adds(module, x)
        expected = module_cost(*spec, reduce)
        err += abs(weights - expected) + abs(metrics[f"macs_3a_{key}"] - expected * 28 * 28)
    metrics["module_formula_err"] = err
    metrics["macs_saving"] = 1 - metrics["macs_3a_reduced"] / metrics["macs_3a_unreduced"]

    with run.figure("inception_arithmetic", ncols=2) as (fig, (ax_p, ax_m)):
        names = ["AlexNet", "GoogLeNet", "GoogLeNet\n+ aux heads"]
        values = [metrics["alexnet_params"], metrics["googlenet_params"], metrics["googlenet_params_aux"]]
        ax_p.bar(names, [v / 1e6 for v in values], color=["C1", "C0", "C9"])
        for i, v in enumerate(values):
            ax_p.text(i, v / 1e6, f"{v / 1e6:.1f}M", ha="center", va="bottom", fontsize=8)
        ax_p.set(ylabel="parameters (millions)", title=f"AlexNet / GoogLeNet = {metrics['ratio']:.1f} (claim: 12)")
        ax_m.bar(["3a with 1x1\nreductions", "3a without"],
                 [metrics["macs_3a_reduced"] / 1e6, metrics["macs_3a_unreduced"] / 1e6], color=["C0", "C3"])
        ax_m.set(ylabel="multiply-adds (millions)", title="one module, 28x28x192 -> 28x28x256")
    return metrics
