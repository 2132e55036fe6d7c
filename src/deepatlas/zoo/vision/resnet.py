"""ResNet: let each block learn a residual and add its input back through an identity shortcut.

Past some depth a plain stack of convolutions trains *worse* - its training error rises - although
the deeper net could copy the shallower one and set the extra layers to the identity. A residual
block makes the identity the easy default: the layers fit F(x) = H(x) - x and the shortcut adds x
back, so pushing F towards zero recovers the shallower net. The CIFAR networks of the paper have
6n + 2 layers (a stem, three stages of n two-convolution blocks, a classifier); their plain twins are
the same nets with the shortcuts removed.

    y = \\mathrm{ReLU}\\big(\\mathcal{F}(x, \\{W_i\\}) + x\\big),
    \\mathcal{F}(x) = \\mathrm{BN}(W_2 * \\mathrm{ReLU}(\\mathrm{BN}(W_1 * x)))

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv 1512.03385).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.init import kaiming_normal_
from deepatlas.registry import register_model
from deepatlas.zoo.vision.cnn_zoo import conv_weights, multiply_adds, n_params


def conv3x3(c_in: int, c_out: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A 3x3 convolution with 'same' padding and no bias (the BatchNorm after it has one)."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


def he_init_(net: nn.Module) -> nn.Module:
    """He et al. (2015) initialisation for every convolution, BN as the identity: how the paper starts."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                # W \sim \mathcal{N}(0, 2 / n_{in}),  n_{in} = k^2 C_{in} / groups
                kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
    return net


def pad_shortcut(x: torch.Tensor, c_out: int, stride: int) -> torch.Tensor:
    """The paper's option A: an identity shortcut that subsamples by `stride` and pads the new channels
    with zeros, so a residual net has exactly the parameters of its plain twin."""
    x = x[:, :, ::stride, ::stride]  # (B, C_in, H / s, W / s)
    return F.pad(x, (0, 0, 0, 0, 0, c_out - x.shape[1]))  # (B, C_out, H / s, W / s)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BN; with `shortcut` the input is added back before the last ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, shortcut: bool = True):
        super().__init__()
        if c_out < c_in:
            raise ValueError(f"the zero-padding shortcut can only widen: c_out={c_out} < c_in={c_in}")
        self.conv1, self.bn1 = conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self.c_out, self.stride, self.shortcut = c_out, stride, shortcut

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        # \mathcal{F}(x) = \mathrm{BN}(W_2 * \mathrm{ReLU}(\mathrm{BN}(W_1 * x)))
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))  # (B, C_out, H / s, W / s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.residual(x)
        if self.shortcut:
            # y = \mathcal{F}(x) + x
            y = y + pad_shortcut(x, self.c_out, self.stride)
        return F.relu(y)

    def extra_repr(self) -> str:
        return f"shortcut={self.shortcut}"


class Bottleneck(nn.Module):
    """1x1 reduce to `c_mid`, 3x3 on `c_mid`, 1x1 expand to `c_out`, each with BN; shortcut added.

    Where shapes differ the shortcut is a 1x1 projection with BN (the paper's option B, used by its
    ImageNet nets). `groups` > 1 splits the 3x3 convolution into groups: ResNeXt's block.
    """

    def __init__(self, c_in: int, c_mid: int, c_out: int, stride: int = 1, groups: int = 1):
        super().__init__()
        if c_mid % groups:
            raise ValueError(f"c_mid={c_mid} must be divisible by groups={groups}")
        self.conv1, self.bn1 = conv1x1(c_in, c_mid), nn.BatchNorm2d(c_mid)
        self.conv2, self.bn2 = conv3x3(c_mid, c_mid, stride, groups), nn.BatchNorm2d(c_mid)
        self.conv3, self.bn3 = conv1x1(c_mid, c_out), nn.BatchNorm2d(c_out)
        self.projection = None
        if stride != 1 or c_in != c_out:
            self.projection = nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))  # (B, C_mid, H, W): 1x1 reduce
        h = F.relu(self.bn2(self.conv2(h)))  # (B, C_mid, H / s, W / s): 3x3
        return self.bn3(self.conv3(h))  # (B, C_out, H / s, W / s): 1x1 expand

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # y = \mathcal{F}(x) + W_s x   (W_s = I when the shapes agree)
        identity = x if self.projection is None else self.projection(x)
        return F.relu(self.residual(x) + identity)


class ResNet(nn.Module):
    """The paper's CIFAR net of depth 6n + 2: a 3x3 stem, three stages of n blocks whose widths double
    while the map halves, global average pooling and one linear layer. `shortcut=False` is its plain
    twin: the same layers and parameters without the additions."""

    def __init__(self, depth: int = 20, widths: tuple[int, int, int] = (16, 32, 64), in_channels: int = 1,
                 num_classes: int = 10, shortcut: bool = True, block: Callable[..., nn.Module] = BasicBlock):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR-style ResNet has depth 6n + 2 (20, 32, 44, 56, 110...), got {depth}")
        n = (depth - 2) // 6
        self.depth, self.shortcut = depth, shortcut
        self.stem = nn.Sequential(conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, c = [], widths[0]
        for stage, width in enumerate(widths):
            for i in range(n):
                blocks.append(block(c, width, stride=2 if stage > 0 and i == 0 else 1, shortcut=shortcut))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, classes)
        h = self.blocks(self.stem(x))  # (B, widths[-1], H / 4, W / 4)
        return self.fc(h.mean((2, 3)))  # global average pooling, then logits

    def extra_repr(self) -> str:
        return f"depth={self.depth}, shortcut={self.shortcut}"


def _example():
    return (torch.randn(2, 1, 28, 28),)


@register_model("resnet20", card="resnet", example=_example)
def resnet20(**kw) -> ResNet:
    return ResNet(depth=20, **kw)


@register_model("resnet56", card="resnet", example=_example)
def resnet56(**kw) -> ResNet:
    return ResNet(depth=56, **kw)


@register_model("plain20", card="resnet", example=_example)
def plain20(**kw) -> ResNet:
    return ResNet(depth=20, shortcut=False, **kw)


@register_model("plain56", card="resnet", example=_example)
def plain56(**kw) -> ResNet:
    return ResNet(depth=56, shortcut=False, **kw)


# --- resnet/degradation: deeper plain nets train worse; residual nets do not -------------------------

@dataclass
class DegradationConfig:
    shallow: int = 20  # depths 6n + 2 of the shallow and the deep net
    deep: int = 56
    width: int = 8  # of the first stage; the next two have 2x and 4x (the paper's 16 is twice as wide)
    epochs: int = 12
    batch_size: int = 128
    lr: float = 0.1  # SGD, momentum 0.9, weight decay 1e-4, lr / 10 at 1/2 and 3/4 of training (the paper's)
    n_train: int = 1438  # of the 1,438 training images of the 8x8 digits
    tolerance: float = 0.01  # training-error gap that counts as "higher" (1 point; 1 image is 0.0007)


def _train_to_the_end(run, name: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      cfg: DegradationConfig, g: torch.Generator) -> dict:
    """Train `net` with the budget every net of the lab gets; returns its per-epoch curves."""
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=1e-4)
    steps_per_epoch = len(x) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.MultiStepLR(opt, [total // 2, 3 * total // 4], gamma=0.1)
    curves = {"loss": [], "err": []}
    step = 0
    for _ in run.progress(range(cfg.epochs), desc=name):
        order = torch.randperm(len(x), generator=g).to(x.device)
        loss_sum, wrong = torch.zeros((), device=x.device), torch.zeros((), device=x.device)
        net.train()
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            logits = net(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            loss_sum += loss.detach()
            wrong += (logits.argmax(1) != y[idx]).sum()
            step += 1
        curves["loss"].append(loss_sum.item() / steps_per_epoch)  # running training loss, as the paper plots
        curves["err"].append(wrong.item() / (steps_per_epoch * cfg.batch_size))
        run.log(step, **{f"{name}_loss": curves["loss"][-1]})
    return curves


def _degradation_gone(m: dict) -> bool:
    # the deep plain net trains worse than the shallow one; the deep residual net does not
    return (m["plain_deep_train_err"] - m["plain_shallow_train_err"] > m["tolerance"]
            and m["resnet_deep_train_err"] - m["resnet_shallow_train_err"] <= m["tolerance"])


@lab(
    "resnet/degradation",
    card="resnet",
    config=DegradationConfig,
    scales={
        "quick": {"shallow": 8, "deep": 14, "epochs": 1, "n_train": 256, "batch_size": 64},
        "default": {},
        "full": {"width": 16, "epochs": 40},
    },
    goals=[Goal("resnet_deep_train_err", "<=", 0.01), Goal("resnet_shallow_train_err", "<=", 0.01)],
    claims=[
        Check(
            claim,
            _degradation_gone,
            "same optimiser and {epochs} epochs for all four (widths {width}/{width2}/{width4}): training error "
            "plain-{shallow} {plain_shallow_train_err:.4f} vs plain-{deep} {plain_deep_train_err:.4f} (loss "
            "{plain_shallow_train_loss:.4f} vs {plain_deep_train_loss:.4f}); ResNet-{shallow} "
            "{resnet_shallow_train_err:.4f} vs ResNet-{deep} {resnet_deep_train_err:.4f} (loss "
            "{resnet_shallow_train_loss:.4f} vs {resnet_deep_train_loss:.4f}); "
            "a gap above {tolerance} counts as higher; the rule tests that the degradation is gone, not that depth "
            "helps, which training error on 1,438 digits is too easy to show",
        )
        for claim in ("resnet-degradation", "residual-connection-degradation")  # the same claim on two cards
    ],
    budget_s=90,  # about 30 s of CPU on one idle core
    threads=1,  # tiny convolutions: 8-32 channels on 8x8 maps
)
def degradation(run, cfg: DegradationConfig) -> dict:
    """Plain-20/56 against ResNet-20/56 on the 8x8 digits: the deep plain net trains worse."""
    data = digits(flatten=False)
    x, y = data.x_train[:cfg.n_train], data.y_train[:cfg.n_train]  # (N, 1, 8, 8)
    mean, std = x.mean(), x.std()
    x, y = ((x - mean) / std).to(run.device), y.to(run.device)
    widths = (cfg.width, 2 * cfg.width, 4 * cfg.width)
    metrics: dict = {"shallow": cfg.shallow, "deep": cfg.deep, "epochs": cfg.epochs, "tolerance": cfg.tolerance,
                     "width": widths[0], "width2": widths[1], "width4": widths[2]}
    curves = {}
    for kind, size, depth in [("plain", "shallow", cfg.shallow), ("plain", "deep", cfg.deep),
                              ("resnet", "shallow", cfg.shallow), ("resnet", "deep", cfg.deep)]:
        name = f"{kind}_{size}"
        torch.manual_seed(run.seed)  # a plain net and its residual twin start from the same weights
        net = ResNet(depth, widths=widths, shortcut=kind == "resnet").to(run.device)
        curves[name] = _train_to_the_end(run, name, net, x, y, cfg, torch.Generator().manual_seed(run.seed))
        net.eval()
        with torch.no_grad():
            logits = net(x)
        metrics[f"{name}_train_loss"] = F.cross_entropy(logits, y).item()
        metrics[f"{name}_train_err"] = (logits.argmax(1) != y).float().mean().item()
        metrics[f"{name}_params"] = n_params(net)

    label = {f"{k}_{s}": f"{'plain' if k == 'plain' else 'ResNet'}-{d}"
             for k in ("plain", "resnet") for s, d in (("shallow", cfg.shallow), ("deep", cfg.deep))}
    style = {"plain_shallow": ("C0", "--"), "plain_deep": ("C3", "--"),
             "resnet_shallow": ("C0", "-"), "resnet_deep": ("C3", "-")}
    epochs = range(1, cfg.epochs + 1)
    with run.figure("degradation", ncols=2) as (fig, (ax_loss, ax_err)):
        for name, c in curves.items():
            color, ls = style[name]
            ax_loss.plot(epochs, c["loss"], color=color, ls=ls, label=label[name])
            ax_err.plot(epochs, c["err"], color=color, ls=ls, label=label[name])
        ax_loss.set(xlabel="epoch", ylabel="training cross-entropy", yscale="log",
                    title="plain (dashed) vs residual (solid)")
        ax_err.set(xlabel="epoch", ylabel="training error", title="8x8 digits, widths " + "/".join(map(str, widths)))
        ax_loss.legend()
    return metrics


# --- resnet/param-arithmetic: what the bottleneck saves ---------------------------------------------

@dataclass
class ArithmeticConfig:
    channels: int = 256  # block input and output width
    reduced: int = 64  # the bottleneck's inner width
    map_size: int = 56  # conv2_x of the ImageNet nets works on 56x56 maps


@lab(
    "resnet/param-arithmetic",
    card="resnet",
    config=ArithmeticConfig,
    scales={"quick": {"map_size": 8}, "default": {}, "full": {}},
    goals=[Goal("formula_err", "==", 0)],
    claims=[
        Check(
            "resnet-bottleneck-params",
            lambda m: 0.6 <= m["saving_same_width"] <= 0.8,
            "built blocks, convolution weights: bottleneck {channels}->{reduced}->{reduced}->{channels} "
            "{bottleneck_weights:,} vs two 3x3 convs on {channels} channels {basic_wide_weights:,}: "
            "{saving_same_width:.1%} fewer ({saving_same_width_all:.1%} counting BN; {saving_one_conv:.1%} fewer than "
            "a single 3x3 conv on {channels}); the seed's pair, two 3x3 convs "
            "on {reduced} channels ({basic_narrow_weights:,}), is only {saving_seed_pair:.1%} larger; "
            "'about 70%' is read as 60-80%",
        ),
    ],
    budget_s=10,
    threads=1,
)
def param_arithmetic(run, cfg: ArithmeticConfig) -> dict:
    """Bottleneck against basic block: parameters and multiply-adds counted on built blocks."""
    c, r, s = cfg.channels, cfg.reduced, cfg.map_size
    blocks = {
        "bottleneck": Bottleneck(c, r, c),  # 1x1 reduce, 3x3, 1x1 expand
        "basic_wide": BasicBlock(c, c),  # the same width with two 3x3 convolutions
        "basic_narrow": BasicBlock(r, r),  # the paper's Fig. 5 pair: equal cost, a 4x narrower block
    }
    metrics: dict = {"channels": c, "reduced": r, "map_size": s}
    for name, block in blocks.items():
        width = r if name == "basic_narrow" else c
        metrics[f"{name}_weights"] = conv_weights(block)
        metrics[f"{name}_params"] = n_params(block)
        metrics[f"{name}_macs"] = multiply_adds(block, torch.randn(1, width, s, s))
    # closed forms: 1x1 + 3x3 + 1x1 and 2 x 3x3
    expected = {"bottleneck": c * r + 9 * r * r + r * c, "basic_wide": 2 * 9 * c * c, "basic_narrow": 2 * 9 * r * r}
    metrics["formula_err"] = sum(abs(metrics[f"{k}_weights"] - v) for k, v in expected.items())
    metrics["formula_err"] += sum(abs(metrics[f"{k}_macs"] - v * s * s) for k, v in expected.items())
    metrics["saving_same_width"] = 1 - metrics["bottleneck_weights"] / metrics["basic_wide_weights"]
    metrics["saving_same_width_all"] = 1 - metrics["bottleneck_params"] / metrics["basic_wide_params"]
    metrics["saving_seed_pair"] = 1 - metrics["bottleneck_weights"] / metrics["basic_narrow_weights"]
    metrics["saving_one_conv"] = 1 - metrics["bottleneck_weights"] / (9 * c * c)

    names = {"bottleneck": f"bottleneck\n{c}-{r}-{r}-{c}", "basic_wide": f"basic\n2x 3x3 on {c}",
             "basic_narrow": f"basic\n2x 3x3 on {r}"}
    with run.figure("param_arithmetic", ncols=2) as (fig, (ax_p, ax_m)):
        for ax, key, ylabel in ((ax_p, "weights", "convolution weights"), (ax_m, "macs", f"multiply-adds ({s}x{s})")):
            values = [metrics[f"{k}_{key}"] for k in names]
            ax.bar(list(names.values()), values, color=["C2", "C0", "C1"])
            for i, v in enumerate(values):
                ax.text(i, v, f"{v:,}", ha="center", va="bottom", fontsize=8)
            ax.set(ylabel=ylabel, yscale="log")
        ax_p.set_title(f"bottleneck saves {metrics['saving_same_width']:.1%} at width {c}")
    return metrics
