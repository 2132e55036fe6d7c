"""Normalisation labs: what pooling the statistics over the batch buys, and what it costs.

BatchNorm standardises each feature with the mean and variance of the current mini-batch,
which keeps every layer's input at a fixed scale whatever the weights do, so a much larger
learning rate stays stable; but a statistic from two examples is mostly noise, and the
running averages used at test time then describe a different network. LayerNorm, InstanceNorm
and GroupNorm take their statistics inside one example and have neither problem.

    \\hat x = (x - \\mu_{\\mathcal B}) / \\sqrt{\\sigma_{\\mathcal B}^2 + \\epsilon},   y = \\gamma \\hat x + \\beta

The small-batch lab uses an MLP, where a batch of two gives each feature's statistic two
values. In a small conv net on the same digits (2 x 64 positions per channel at batch 2)
BatchNorm at batch 2 reached 0.95-0.97 test accuracy, as good as at batch 32 (measured for
seeds 0 and 1): the noise depends on how many values a statistic pools, not on the batch alone.

Ioffe & Szegedy, "Batch normalization", ICML 2015 (arXiv 1502.03167); Ba, Kiros & Hinton,
"Layer normalization", arXiv 1607.06450; Ulyanov, Vedaldi & Lempitsky, "Instance
normalization", arXiv 1607.08022; Wu & He, "Group normalization", ECCV 2018 (arXiv 1803.08494).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.norms import BatchNorm, GroupNorm, InstanceNorm, LayerNorm
from deepatlas.optim.optimizers import SGD


class NormMLP(nn.Module):
    """64 -> width x depth -> 10: Linear, then the normalisation `norm(width)` (or none), then ReLU."""

    def __init__(self, norm: Callable[[int], nn.Module] | None, width: int = 128, depth: int = 4):
        super().__init__()
        layers, n_in = [], 64
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), *([norm(width)] if norm else []), nn.ReLU()]
            n_in = width
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 8, 8) -> (B, 10) logits
        return self.out(self.body(x.flatten(1)))


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy in evaluation mode; a net with non-finite outputs gets no example right."""
    net.eval()
    logits = net(x)
    net.train()
    return ((logits.argmax(1) == y) & torch.isfinite(logits).all(1)).float().mean().item()


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float, batch: int, epochs: int,
          momentum: float, g: torch.Generator, on_loss: Callable[[int, torch.Tensor], None]) -> int | None:
    """Mini-batch SGD on the cross-entropy (the last incomplete batch dropped: BatchNorm needs two examples).
    Stops at the first non-finite loss and returns its step; returns None when training finished."""
    opt = SGD(net.parameters(), lr=lr, momentum=momentum)
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g).to(x.device)
        for i in range(0, len(x) - batch + 1, batch):
            idx = order[i:i + batch]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            if not torch.isfinite(loss):
                return step
            opt.zero_grad()
            loss.backward()
            opt.step()
            on_loss(step, loss)
            step += 1
    return None


def _digits(device) -> tuple[torch.Tensor, ...]:
    data = digits(flatten=False)
    return tuple(t.to(device) for t in (data.x_train, data.y_train, data.x_test, data.y_test))


@dataclass
class LargeLrConfig:
    large_lr: float = 1.0  # the rate the claim is judged at (plain SGD, no momentum)
    lrs: str = "0.03,0.1,0.3,1,3"  # the sweep in the plot
    width: int = 128
    depth: int = 4
    batch: int = 64
    epochs: int = 10


@lab(
    "batchnorm/large-lr",
    card="batchnorm",
    config=LargeLrConfig,
    scales={"quick": {"lrs": "1", "epochs": 1}, "default": {},
            "full": {"lrs": "0.01,0.03,0.1,0.3,1,3,10", "epochs": 30}},
    goals=[Goal("bn_test_acc", ">=", 0.9)],
    claims=[
        Check(
            "batchnorm-large-lr",
            lambda m: m["bn_test_acc"] >= 0.9
            and (m["plain_diverged"] == 1 or m["plain_test_acc"] <= m["bn_test_acc"] - 0.1),
            "a {depth}x{width} ReLU MLP on digits, plain SGD at learning rate {large_lr}: with BatchNorm test accuracy "
            "{bn_test_acc:.3f}; without it {plain_test_acc:.3f}, its training loss ending at {plain_final_loss:.3f} "
            "(chance is ln 10 = 2.303; diverged to a non-finite loss: {plain_diverged:.0f}); the plain net's best "
            "over the sweep is {plain_best_acc:.3f} at rate {plain_best_lr} (far behind counted as at least 0.1 lower)",
        ),
    ],
    budget_s=30,
    threads=1,
)
def large_lr(run, cfg: LargeLrConfig) -> dict:
    """The same MLP with and without BatchNorm over a sweep of learning rates; BN keeps training at large ones."""
    x, y, x_test, y_test = _digits(run.device)
    lrs = sorted({float(r) for r in cfg.lrs.split(",")} | {cfg.large_lr})
    acc = {"bn": [], "plain": []}
    curves, diverged_at = {"bn": [], "plain": []}, None
    for lr in lrs:
        for name, norm in (("bn", BatchNorm), ("plain", None)):
            g = torch.Generator().manual_seed(run.seed)
            torch.manual_seed(run.seed)  # the same linear weights with and without BN
            net = NormMLP(norm, cfg.width, cfg.depth).to(run.device)
            judged = lr == cfg.large_lr
            losses = curves[name] if judged else []

            def on_loss(step, loss, name=name, judged=judged, losses=losses):
                if step % 10 == 0:
                    if judged and name == "bn":
                        run.log(step, loss=loss)  # the plain run may blow up: its loss is checked by `train`
                    if judged:
                        losses.append((step, loss.item()))

            stop = train(net, x, y, lr=lr, batch=cfg.batch, epochs=cfg.epochs, momentum=0.0, g=g, on_loss=on_loss)
            acc[name].append(accuracy(net, x_test, y_test))
            if judged and name == "plain":
                diverged_at = stop
    i = lrs.index(cfg.large_lr)
    best = max(range(len(lrs)), key=lambda j: acc["plain"][j])
    metrics = {
        "large_lr": cfg.large_lr, "width": cfg.width, "depth": cfg.depth,
        "bn_test_acc": acc["bn"][i], "plain_test_acc": acc["plain"][i],
        "plain_diverged": float(diverged_at is not None),
        "plain_diverged_step": -1 if diverged_at is None else diverged_at,
        "plain_final_loss": curves["plain"][-1][1] if curves["plain"] else float("inf"),
        "bn_final_loss": curves["bn"][-1][1],
        "plain_best_acc": acc["plain"][best], "plain_best_lr": lrs[best],
    }
    with run.figure("batchnorm_large_lr", ncols=2, size=(10, 3.8)) as (fig, (ax_lr, ax_loss)):
        for name, label in (("bn", "with BatchNorm"), ("plain", "without")):
            ax_lr.plot(lrs, acc[name], "o-", label=label)
            if curves[name]:
                steps, values = zip(*curves[name])
                ax_loss.plot(steps, values, label=label)
        ax_lr.axvline(cfg.large_lr, color="gray", linestyle=":")
        ax_lr.set(xscale="log", xlabel="learning rate (SGD)", ylabel="test accuracy", title=f"{cfg.epochs} epochs")
        ax_lr.legend()
        ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title=f"learning rate {cfg.large_lr}")
        ax_loss.legend()
    return metrics


@dataclass
class SmallBatchConfig:
    small_batch: int = 2
    large_batch: int = 32
    groups: int = 4  # GroupNorm groups over the `width` features
    width: int = 128
    depth: int = 2
    epochs: int = 3  # the same number of passes over the data for every batch size
    lr: float = 0.1  # at the large batch; scaled linearly with the batch size (Goyal et al. 2017)
    momentum: float = 0.9


@lab(
    "groupnorm/small-batch",
    card="groupnorm",
    config=SmallBatchConfig,
    scales={"quick": {"epochs": 1, "small_batch": 16}, "default": {}, "full": {"epochs": 10, "depth": 4}},
    goals=[Goal("bn_large_acc", ">=", 0.9), Goal("gn_small_acc", ">=", 0.9)],
    claims=[
        Check(
            "batchnorm-small-batch",
            lambda m: m["bn_drop"] >= 0.05,
            "a {depth}x{width} MLP on digits, {epochs} epochs: BatchNorm's test accuracy falls from {bn_large_acc:.3f} "
            "at batch {large_batch} to {bn_small_acc:.3f} at batch {small_batch} (sensitive counted as a drop of at "
            "least 0.05)",
        ),
        Check(
            "groupnorm-small-batch",
            lambda m: m["gn_small_acc"] > m["bn_small_acc"] and abs(m["gn_change"]) <= m["bn_drop"] / 3,
            "GroupNorm ({groups} groups): {gn_large_acc:.3f} at batch {large_batch}, {gn_small_acc:.3f} at batch "
            "{small_batch}; BatchNorm: {bn_large_acc:.3f} and {bn_small_acc:.3f} (insensitive counted as a change at "
            "most a third of BatchNorm's drop)",
        ),
    ],
    budget_s=40,
    threads=1,
)
def small_batch(run, cfg: SmallBatchConfig) -> dict:
    """BatchNorm against GroupNorm at batch 32 and batch 2: test accuracy of the same MLP."""
    x, y, x_test, y_test = _digits(run.device)
    norms = {"bn": BatchNorm, "gn": lambda c: GroupNorm(cfg.groups, c)}
    metrics: dict = {k: getattr(cfg, k) for k in ("small_batch", "large_batch", "groups", "width", "depth", "epochs")}
    for size_name, batch in (("large", cfg.large_batch), ("small", cfg.small_batch)):
        for name, norm in norms.items():
            g = torch.Generator().manual_seed(run.seed)
            torch.manual_seed(run.seed)
            net = NormMLP(norm, cfg.width, cfg.depth).to(run.device)

            def on_loss(step, loss, key=f"{name}_{size_name}_loss"):
                if step % 20 == 0:
                    run.log(step, **{key: loss})

            train(net, x, y, lr=cfg.lr * batch / cfg.large_batch, batch=batch, epochs=cfg.epochs,
                  momentum=cfg.momentum, g=g, on_loss=on_loss)
            metrics[f"{name}_{size_name}_acc"] = accuracy(net, x_test, y_test)
    metrics["bn_drop"] = metrics["bn_large_acc"] - metrics["bn_small_acc"]
    metrics["gn_change"] = metrics["gn_small_acc"] - metrics["gn_large_acc"]

    with run.figure("groupnorm_small_batch") as (fig, ax):
        pos = [0, 1]
        for k, (name, label) in enumerate((("bn", "BatchNorm"), ("gn", f"GroupNorm (G={cfg.groups})"))):
            values = [metrics[f"{name}_large_acc"], metrics[f"{name}_small_acc"]]
            ax.bar([p + (k - 0.5) * 0.4 for p in pos], values, 0.4, label=label)
        ax.set(xticks=pos, ylim=(0, 1), ylabel="test accuracy", title="digits MLP, same epochs")
        ax.set_xticklabels([f"batch {cfg.large_batch}", f"batch {cfg.small_batch}"])
        ax.legend(loc="lower left")
    return metrics


@dataclass
class IndependenceConfig:
    probe: int = 16  # test images whose outputs are compared
    others: int = 48  # other images they share a batch with
    width: int = 128
    depth: int = 2
    epochs: int = 1  # brief training, so that BatchNorm's running statistics are real


@lab(
    "layernorm/batch-independence",
    card="layernorm",
    config=IndependenceConfig,
    scales={"quick": {}, "default": {}, "full": {"epochs": 5}},
    goals=[Goal("ln_batch_diff", "<", 1e-5), Goal("ln_mode_diff", "<", 1e-5)],
    claims=[
        Check(
            "layernorm-batch-independent",
            lambda m: m["ln_batch_diff"] < 1e-5 and m["ln_mode_diff"] < 1e-5,
            "the outputs for {probe} digits change by at most {ln_batch_diff:.1e} (float32 rounding) with LayerNorm "
            "when they are fed alone, together, or among {others} other images, and by {ln_mode_diff:.1e} between "
            "training and evaluation mode; with BatchNorm in the same MLP: {bn_batch_diff:.2f} and {bn_mode_diff:.2f}",
        ),
    ],
    budget_s=10,
    threads=1,
)
def batch_independence(run, cfg: IndependenceConfig) -> dict:
    """LayerNorm gives each example the same output alone, in any batch, in training or evaluation mode."""
    x, y, x_test, _ = _digits(run.device)
    probe, others = x_test[: cfg.probe], x_test[cfg.probe: cfg.probe + cfg.others]
    metrics: dict = {"probe": cfg.probe, "others": cfg.others}
    outputs = {}
    for name, norm in (("ln", LayerNorm), ("bn", BatchNorm)):
        g = torch.Generator().manual_seed(run.seed)
        torch.manual_seed(run.seed)
        net = NormMLP(norm, cfg.width, cfg.depth).to(run.device)
        train(net, x, y, lr=0.1, batch=32, epochs=cfg.epochs, momentum=0.9, g=g,
              on_loss=lambda step, loss, name=name: run.log(step, **{f"{name}_loss": loss}) if step % 10 == 0 else None)
        with torch.no_grad():
            together = net(probe)  # (P, 10), training mode
            mixed = net(torch.cat([probe, others]))[: cfg.probe]  # the same images among others
            alone = torch.cat([net(p[None]) for p in probe]) if name == "ln" else mixed  # BN cannot run on one example
            net.eval()
            evaluated = net(probe)
        metrics[f"{name}_batch_diff"] = max((together - mixed).abs().max().item(),
                                            (together - alone).abs().max().item())
        metrics[f"{name}_mode_diff"] = (together - evaluated).abs().max().item()
        outputs[name] = (together[0].cpu(), mixed[0].cpu(), evaluated[0].cpu())

    with run.figure("layernorm_batch_independence", ncols=2, size=(10, 3.5)) as (fig, axes):
        for ax, (name, title) in zip(axes, (("ln", "LayerNorm"), ("bn", "BatchNorm"))):
            for values, label, marker in zip(outputs[name], (f"in a batch of {cfg.probe}",
                                             f"among {cfg.others} others", "evaluation mode"), "o^x"):
                ax.plot(values.numpy(), marker, label=label)
            ax.set(xlabel="class", ylabel="logit", title=f"{title}: one test image's logits")
            ax.legend(fontsize=7)
    return metrics


@dataclass
class InstanceConfig:
    images: int = 64
    contrast_low: float = 0.25  # per-image, per-channel gain a in x' = a x + b
    contrast_high: float = 4.0
    brightness: float = 1.0  # offset b drawn from [-brightness, brightness]


@lab(
    "instancenorm/per-image-statistics",
    card="instancenorm",
    config=InstanceConfig,
    scales={"quick": {"images": 8}, "default": {}, "full": {"images": 359}},
    goals=[Goal("in_vs_bn_single_diff", "<", 1e-5), Goal("in_contrast_diff", "<", 0.01)],
    claims=[
        Check(
            "instancenorm-batch-of-one",
            lambda m: m["in_vs_bn_single_diff"] < 1e-5,
            "on {images} digit images InstanceNorm and training-mode BatchNorm fed one image at a time differ by at "
            "most {in_vs_bn_single_diff:.1e}; BatchNorm over the whole batch differs from both by up to "
            "{in_vs_bn_batch_diff:.2f}",
        ),
        Check(
            "instancenorm-contrast",
            lambda m: m["in_contrast_diff"] < 0.01 and m["bn_contrast_diff"] > 0.1,
            "rescaling every image by its own gain in [{contrast_low}, {contrast_high}] and shifting it by up to "
            "+-{brightness} changes InstanceNorm's output by at most {in_contrast_diff:.1e} (only through epsilon), "
            "BatchNorm's (evaluation mode) by up to {bn_contrast_diff:.2f}; the style-transfer consequence is not "
            "measured here",
        ),
    ],
    budget_s=10,
    threads=1,
)
def per_image_statistics(run, cfg: InstanceConfig) -> dict:
    """InstanceNorm is BatchNorm on a batch of one image, and it wipes out each image's contrast and brightness."""
    x = _digits(run.device)[2][: cfg.images]  # (N, 1, 8, 8) test digits
    g = torch.Generator().manual_seed(run.seed)
    inorm, bnorm = InstanceNorm(1).to(run.device), BatchNorm(1, momentum=1.0).to(run.device)
    with torch.no_grad():
        out = inorm(x)
        single = torch.cat([bnorm(img[None]) for img in x])  # training mode, one image per batch
        whole = bnorm(x)  # training mode, statistics of the whole batch; momentum 1 stores them
        # x' = a x + b with a and b drawn per image and channel
        a = cfg.contrast_low * (cfg.contrast_high / cfg.contrast_low) ** torch.rand(len(x), 1, 1, 1, generator=g)
        b = cfg.brightness * (2 * torch.rand(len(x), 1, 1, 1, generator=g) - 1)
        x_new = a.to(x.device) * x + b.to(x.device)
        bnorm.eval()
        metrics = {
            "images": cfg.images, "contrast_low": cfg.contrast_low, "contrast_high": cfg.contrast_high,
            "brightness": cfg.brightness,
            "in_vs_bn_single_diff": (out - single).abs().max().item(),
            "in_vs_bn_batch_diff": (out - whole).abs().max().item(),
            "in_contrast_diff": (inorm(x_new) - out).abs().max().item(),
            "bn_contrast_diff": (bnorm(x_new) - bnorm(x)).abs().max().item(),
        }
        shown = [x[0], x_new[0], out[0], inorm(x_new)[0], bnorm(x)[0], bnorm(x_new)[0]]
    with run.figure("instancenorm_per_image", ncols=6, size=(13, 2.6)) as (fig, axes):
        titles = ["image", f"a x + b (a={a[0].item():.2f})", "IN(x)", "IN(a x + b)", "BN(x), eval", "BN(a x + b), eval"]
        for ax, img, title in zip(axes, shown, titles):
            ax.imshow(img[0].cpu().numpy(), cmap="gray")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    return metrics
