"""Compression labs: a distilled student, accuracy against sparsity, an int8 model, checkpointed gradients.

Four ways of making a trained network cheaper (part 5.4 of seed 002), each measured on the MNIST
subset or the 8x8 digits. Distillation: a 784-64-10 student learns from a 784-256-256-10 teacher's
outputs at temperature tau as well as from the labels, and is compared with the same student trained
on the labels alone (same initialisation, same mini-batches, same steps). Pruning: accuracy as
magnitude pruning removes 0 to 95 % of the weights, before and after a short fine-tuning with the
masks held; removing whole neurons instead gives a smaller dense net, whose speed is timed.
Quantisation: int8 weights and activations, size measured from the stored tensors. Checkpointing: a
67-layer net's gradients with and without recomputation, and the bytes autograd keeps for backward.

    \\mathcal{L}_{KD} = \\alpha\\,\\mathrm{CE}(y, p^S) + (1 - \\alpha)\\,\\tau^2\\,\\mathrm{KL}(p^T(\\tau) \\Vert p^S(\\tau))
    \\tilde w = m \\odot w,   q = \\mathrm{clip}(\\lfloor w / s \\rceil + z),   \\text{memory} = O(k + n / k)

The teacher is trained on randomly shifted digits (up to 2 pixels), as Hinton et al.'s MNIST teacher
was trained with jitter; the students see only the unshifted training images. Measured at the default
scale for seeds 0, 1, 2: distillation adds 0.9, 2.7 and 1.6 points of test accuracy (0.946 against
0.937 for seed 0); after fine-tuning, 90 % sparsity costs at most 0.4 points and 95 % about 3.5;
int8 costs at most 0.1 points at 3.94x less memory; 8 checkpointed segments keep 0.37x the
activations, with bit-identical gradients, for about 1.45x the time of a training step.

Hinton, Vinyals & Dean, arXiv 1503.02531; Han et al., arXiv 1506.02626; Li et al., arXiv 1608.08710;
Krishnamoorthi, arXiv 1806.08342; Chen et al., arXiv 1604.06174.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from deepatlas.data.real import digits, mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.compression import (
    CheckpointedSequential, SavedActivationMeter, affine_qparams, calibrate, dequantize, distillation_loss,
    model_bytes, prune_magnitude, prune_structured, quantize, quantize_model, remove_masks, weight_qparams,
    weight_sparsity,
)
from deepatlas.nn.losses import cross_entropy
from deepatlas.nn.regularization import random_shift
from deepatlas.optim.optimizers import SGD, Adam
from deepatlas.zoo.fundamentals.mlp import MLP


def _mnist(device) -> dict:
    data = mnist_subset(flatten=True).to(device)  # 4,000 training and 1,000 test images (N, 784)
    return {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test}


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (net(x).argmax(1) == y).float().mean().item()


def train(run, name: str, net: nn.Module, data: dict, *, steps: int, lr: float, batch: int, seed: int,
          teacher_logits: torch.Tensor | None = None, tau: float = 1.0, alpha: float = 1.0, shift: int = 0,
          eval_every: int = 0) -> list[tuple[int, float]]:
    """Adam on mini-batches drawn by a generator seeded with `seed` (so two runs with one seed see the same
    batches); cross-entropy, or the distillation loss when teacher logits (N_train, C) are given.
    `shift` moves each 28x28 image by up to that many pixels. Returns (step, test accuracy) every eval_every steps."""
    g = torch.Generator().manual_seed(seed)
    opt = Adam(net.parameters(), lr=lr)
    x, y = data["x_train"], data["y_train"]
    curve = []
    for step in run.progress(range(steps), desc=name):
        idx = torch.randint(0, len(x), (batch,), generator=g).to(x.device)
        xb = x[idx]  # (B, 784)
        if shift:
            xb = random_shift(xb.reshape(-1, 1, 28, 28), shift, g).flatten(1)
        z = net(xb)  # (B, 10)
        if teacher_logits is None:
            loss = cross_entropy(z, y[idx])
        else:
            loss = distillation_loss(z, teacher_logits[idx], y[idx], tau, alpha)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            run.log(step, **{f"{name}_loss": loss})
        if eval_every and ((step + 1) % eval_every == 0 or step == steps - 1):
            curve.append((step + 1, accuracy(net, data["x_test"], data["y_test"])))
    return curve


def _trained_mlp(run, data: dict, cfg) -> MLP:
    """The 784-hidden-hidden-10 ReLU MLP that the pruning and quantisation labs compress."""
    net = MLP([784, cfg.hidden, cfg.hidden, 10], activation="relu").to(run.device)
    train(run, "dense", net, data, steps=cfg.steps, lr=cfg.lr, batch=cfg.batch, seed=run.seed)
    return net


# ---------------------------------------------------------------- knowledge distillation

@dataclass
class DistillConfig:
    teacher_hidden: int = 256
    teacher_steps: int = 1000
    teacher_shift: int = 2  # pixels of random translation while the teacher trains
    student_hidden: int = 64
    student_steps: int = 3000
    students: int = 1  # pairs of students (one initialisation each), accuracies averaged
    tau: float = 4.0
    alpha: float = 0.1  # weight of the hard labels; Hinton et al. found a small weight best
    lr: float = 1e-3
    batch: int = 64
    eval_every: int = 250


@lab(
    "knowledge-distillation/student",
    card="knowledge-distillation",
    config=DistillConfig,
    scales={
        "quick": {"teacher_steps": 100, "student_steps": 100, "students": 1, "eval_every": 50},
        "default": {},
        "full": {"teacher_hidden": 1200, "teacher_steps": 6000, "student_steps": 10000, "students": 5},
    },
    goals=[Goal("gain", ">", 0.0)],
    claims=[
        Check(
            "knowledge-distillation-student",
            lambda m: m["gain"] > 0,
            "784-{student_hidden}-10 students on the MNIST subset, {student_steps} steps, mean of {students}: "
            "distilled from the teacher (test accuracy {teacher_acc:.3f}) at tau {tau:g} they reach "
            "{distilled_acc:.3f}, on the labels alone {label_acc:.3f} (gain {gain:+.3f})",
        ),
    ],
    budget_s=60,
    threads=1,
)
def student(run, cfg: DistillConfig) -> dict:
    """Knowledge distillation: a small student learns more from a teacher's soft targets than from labels alone."""
    data = _mnist(run.device)
    teacher = MLP([784, cfg.teacher_hidden, cfg.teacher_hidden, 10], activation="relu").to(run.device)
    train(run, "teacher", teacher, data, steps=cfg.teacher_steps, lr=cfg.lr, batch=2 * cfg.batch, seed=run.seed,
          shift=cfg.teacher_shift)
    with torch.no_grad():
        z_t = teacher(data["x_train"])  # (N_train, 10): the soft targets, computed once
    curves = {"labels": [], "distilled": []}
    for i in range(cfg.students):
        base = MLP([784, cfg.student_hidden, 10], activation="relu")  # one initialisation for both students
        batches = 1000 * run.seed + i  # and one sequence of mini-batches
        for kind in curves:
            net = copy.deepcopy(base).to(run.device)
            curves[kind].append(train(
                run, f"student_{kind}_{i}", net, data, steps=cfg.student_steps, lr=cfg.lr, batch=cfg.batch,
                seed=batches, teacher_logits=z_t if kind == "distilled" else None, tau=cfg.tau, alpha=cfg.alpha,
                eval_every=cfg.eval_every))
    final = {kind: statistics.fmean(c[-1][1] for c in cs) for kind, cs in curves.items()}
    metrics = {
        "teacher_acc": accuracy(teacher, data["x_test"], data["y_test"]), "label_acc": final["labels"],
        "distilled_acc": final["distilled"], "gain": final["distilled"] - final["labels"],
        "teacher_params": sum(p.numel() for p in teacher.parameters()),
        "student_params": sum(p.numel() for p in base.parameters()),
        **{k: getattr(cfg, k) for k in ("student_hidden", "student_steps", "students", "tau")},
    }
    with run.figure("distillation") as (fig, ax):
        for kind, color in (("labels", "#1f77b4"), ("distilled", "#d62728")):
            for i, c in enumerate(curves[kind]):
                steps, accs = zip(*c)
                ax.plot(steps, accs, color=color, alpha=0.8, label=f"student, {kind}" if i == 0 else None)
        ax.axhline(metrics["teacher_acc"], color="black", ls="--", label="teacher")
        ax.set(title=f"MNIST subset: 784-{cfg.student_hidden}-10 students", xlabel="step", ylabel="test accuracy",
               ylim=(max(0.0, min(a for cs in curves.values() for c in cs for _, a in c) - 0.01), None))
        ax.legend()
    return metrics


# ---------------------------------------------------------------- pruning

SPARSITIES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
NEURON_RATIOS = (0.3, 0.5, 0.7, 0.8, 0.9)  # fractions of each hidden layer's neurons removed


@dataclass
class PruningConfig:
    hidden: int = 256
    steps: int = 1000
    lr: float = 1e-3
    batch: int = 128
    scope: str = "global"  # or "layer"
    finetune_steps: int = 200
    finetune_lr: float = 5e-4
    timing_repeats: int = 30


def _shrink(net: MLP, ratio: float) -> MLP:
    """A copy of `net` with the fraction `ratio` of every hidden layer's neurons removed (smallest L1 norm)."""
    small = copy.deepcopy(net)
    for i in range(len(small.layers) - 1):
        small.layers[i], small.layers[i + 1] = prune_structured(small.layers[i], small.layers[i + 1], ratio)
    return small


def _median_ms(nets: dict[str, nn.Module], x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median forward time of each net on x, the nets interleaved so that a busy machine slows them alike."""
    times = {name: [] for name in nets}
    with torch.no_grad():
        for _ in range(repeats):
            for name, net in nets.items():
                start = time.perf_counter()
                net(x)
                times[name].append(1000 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


@lab(
    "pruning/sparsity-curve",
    card="pruning",
    config=PruningConfig,
    scales={
        "quick": {"hidden": 64, "steps": 100, "finetune_steps": 20, "timing_repeats": 3},
        "default": {},
        "full": {"hidden": 1024, "steps": 5000, "finetune_steps": 1000},
    },
    goals=[Goal("drop_50_finetuned", "<=", 0.01), Goal("drop_90_finetuned", "<=", 0.01)],
    claims=[
        Check(
            "pruning-sparsity-accuracy",
            lambda m: m["drop_50_finetuned"] <= 0.01 and m["drop_90_finetuned"] <= 0.01 and m["drop_95_pruned"] > 0.05,
            "784-{hidden}-{hidden}-10 MLP at test accuracy {dense_acc:.3f}: with 50 % / 90 % of the weights "
            "removed by magnitude and a {finetune_steps}-step fine-tune the accuracy drops by "
            "{drop_50_finetuned:.3f} / "
            "{drop_90_finetuned:.3f} (without fine-tuning {drop_50_pruned:.3f} / {drop_90_pruned:.3f}); at 95 % "
            "it drops by {drop_95_pruned:.3f} before and {drop_95_finetuned:.3f} after fine-tuning",
        ),
        Check(
            "pruning-structured-speed",
            lambda m: m["structured_speedup"] >= 1.3 and m["unstructured_speedup"] <= 1.1,
            "forward pass on the 1,000 test images: half the hidden neurons removed runs {structured_speedup:.2f}x "
            "as fast as the dense net ({dense_ms:.2f} ms), half the weights zeroed {unstructured_speedup:.2f}x",
        ),
    ],
    budget_s=60,
    threads=1,
)
def sparsity_curve(run, cfg: PruningConfig) -> dict:
    """Pruning: test accuracy against the fraction of weights removed, before and after fine-tuning."""
    data = _mnist(run.device)
    dense = _trained_mlp(run, data, cfg)
    dense_acc = accuracy(dense, data["x_test"], data["y_test"])
    metrics: dict = {"dense_acc": dense_acc, "hidden": cfg.hidden, "finetune_steps": cfg.finetune_steps}
    curve = {"magnitude, pruned": [], "magnitude, fine-tuned": [], "neurons, fine-tuned": []}
    fine = dict(steps=cfg.finetune_steps, lr=cfg.finetune_lr, batch=cfg.batch, seed=run.seed + 1)
    for s in SPARSITIES:
        net = copy.deepcopy(dense)
        prune_magnitude(net, s, cfg.scope)
        pruned = accuracy(net, data["x_test"], data["y_test"])
        train(run, f"finetune_{round(100 * s)}", net, data, **fine)  # the masks hold: pruned weights stay 0
        tuned = accuracy(net, data["x_test"], data["y_test"])
        actual = weight_sparsity(net)
        curve["magnitude, pruned"].append((actual, pruned))
        curve["magnitude, fine-tuned"].append((actual, tuned))
        metrics[f"drop_{round(100 * s)}_pruned"] = dense_acc - pruned
        metrics[f"drop_{round(100 * s)}_finetuned"] = dense_acc - tuned
    n_weights = sum(m.weight.numel() for m in dense.layers)
    for r in NEURON_RATIOS:
        small = _shrink(dense, r)
        train(run, f"finetune_neurons_{round(100 * r)}", small, data, **fine)
        removed = 1 - sum(m.weight.numel() for m in small.layers) / n_weights
        curve["neurons, fine-tuned"].append((removed, accuracy(small, data["x_test"], data["y_test"])))

    half = copy.deepcopy(dense)
    prune_magnitude(half, 0.5, cfg.scope)
    ms = _median_ms({"dense": dense, "unstructured": remove_masks(half), "structured": _shrink(dense, 0.5)},
                    data["x_test"], cfg.timing_repeats)
    metrics.update(dense_ms=ms["dense"], structured_speedup=ms["dense"] / ms["structured"],
                   unstructured_speedup=ms["dense"] / ms["unstructured"])

    with run.figure("sparsity_curve") as (fig, ax):
        for (name, points), style in zip(curve.items(), ("o--", "o-", "s-")):
            xs, ys = zip(*points)
            ax.plot([100 * v for v in xs], ys, style, label=name)
        ax.axhline(dense_acc, color="black", lw=0.8, ls=":", label="dense")
        ax.set(title=f"MNIST subset, 784-{cfg.hidden}-{cfg.hidden}-10", xlabel="weights removed (%)",
               ylabel="test accuracy")
        ax.legend()
    return metrics


# ---------------------------------------------------------------- int8 quantisation

BITS = (8, 6, 4, 3, 2)


@dataclass
class QuantizationConfig:
    hidden: int = 256
    steps: int = 1000
    lr: float = 1e-3
    batch: int = 128
    calibration: int = 500  # training images whose activations fix the input ranges


@torch.no_grad()
def _fake_quantized(net: MLP, bits: int, per_channel: bool) -> MLP:
    """A float copy of `net` whose weights are rounded to `bits`-bit affine codes and back."""
    qmin, qmax = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    net = copy.deepcopy(net)
    for layer in net.layers:
        w = layer.weight  # (out, in)
        lo, hi = (w.amin(1), w.amax(1)) if per_channel else (w.min(), w.max())
        scale, zero_point = affine_qparams(lo, hi, qmin, qmax)  # (out,) or ()
        axis = 0 if per_channel else None
        layer.weight.copy_(dequantize(quantize(w, scale, zero_point, axis, qmin, qmax), scale, zero_point, axis))
    return net


@lab(
    "quantization/int8",
    card="quantization",
    config=QuantizationConfig,
    scales={
        "quick": {"hidden": 64, "steps": 100, "calibration": 100},
        "default": {},
        "full": {"hidden": 1024, "steps": 5000},
    },
    goals=[Goal("size_ratio", ">=", 3.9), Goal("acc_drop", "<=", 0.01)],
    claims=[
        Check(
            "quantization-int8",
            lambda m: m["size_ratio"] >= 3.5 and m["acc_drop"] <= 0.01,
            "784-{hidden}-{hidden}-10 MLP: {float_bytes:,} bytes in float32, {int8_bytes:,} with int8 weights "
            "and activations ({size_ratio:.2f}x smaller); test accuracy {float_acc:.3f} -> {int8_acc:.3f} "
            "(weights only {weight_only_acc:.3f}, one scale per tensor {per_tensor_acc:.3f}); no speed-up measured: "
            "the layers dequantise and multiply in float",
        ),
    ],
    budget_s=30,
    threads=1,
)
def int8(run, cfg: QuantizationConfig) -> dict:
    """Post-training int8 quantisation: a 4x smaller model with almost the same accuracy."""
    data = _mnist(run.device)
    net = _trained_mlp(run, data, cfg)
    x_test, y_test = data["x_test"], data["y_test"]
    calib = data["x_train"][: cfg.calibration].split(100)  # a few batches of training images
    int8_net = quantize_model(net, per_channel=True, act_ranges=calibrate(net, calib))
    float_acc = accuracy(net, x_test, y_test)
    metrics = {
        "hidden": cfg.hidden, "float_acc": float_acc, "int8_acc": accuracy(int8_net, x_test, y_test),
        "weight_only_acc": accuracy(quantize_model(net, per_channel=True), x_test, y_test),
        "per_tensor_acc": accuracy(quantize_model(net, per_channel=False), x_test, y_test),
        "float_bytes": model_bytes(net), "int8_bytes": model_bytes(int8_net),
    }
    metrics["size_ratio"] = metrics["float_bytes"] / metrics["int8_bytes"]
    metrics["acc_drop"] = float_acc - metrics["int8_acc"]
    # |w - \hat w| \le s / 2 for every weight inside the calibrated range: the rounding error bound
    metrics["max_error_over_half_scale"] = max(
        ((layer.weight - q.weight()).abs() / (q.scale[:, None] / 2)).max().item()
        for layer, q in zip(net.layers, int8_net.layers))
    accs = {(b, per_channel): accuracy(_fake_quantized(net, b, per_channel), x_test, y_test)
            for b in BITS for per_channel in (True, False)}
    metrics.update({f"acc_{b}bit{'' if pc else '_per_tensor'}": a for (b, pc), a in accs.items()})

    with run.figure("int8", ncols=2) as (fig, (ax_bits, ax_w)):
        for per_channel, label in ((True, "one scale per output channel"), (False, "one scale per tensor")):
            ax_bits.plot(BITS, [accs[b, per_channel] for b in BITS], "o-", label=label)
        ax_bits.axhline(float_acc, color="black", ls="--", label="float32")
        ax_bits.set(title="test accuracy against weight bits", xlabel="bits", ylabel="test accuracy")
        ax_bits.invert_xaxis()
        ax_bits.legend()
        w = net.layers[1].weight.detach()
        scale, zero_point = weight_qparams(w, per_channel=False)
        ax_w.hist(w.flatten().cpu(), bins=200, color="#1f77b4")
        grid = dequantize(torch.arange(-128, 128, dtype=torch.int8), scale, zero_point)
        ax_w.vlines(grid[::8].cpu(), 0, ax_w.get_ylim()[1] * 0.05, color="#d62728", label="every 8th int8 level")
        ax_w.set(title="hidden layer weights and the int8 grid", xlabel="weight", ylabel="count")
        ax_w.legend()
    return metrics


# ---------------------------------------------------------------- gradient checkpointing

@dataclass
class CheckpointConfig:
    depth: int = 32  # hidden Linear + Tanh blocks
    width: int = 256
    batch: int = 256
    segments: int = 8  # about sqrt(number of layers)
    steps: int = 10  # SGD steps both nets take side by side
    lr: float = 0.05
    repeats: int = 7


def _deep_net(cfg: CheckpointConfig) -> list[nn.Module]:
    """64 -> width, `depth` blocks of (Linear, Tanh), -> 10: 2 * depth + 3 layers."""
    layers: list[nn.Module] = [nn.Linear(64, cfg.width), nn.Tanh()]
    for _ in range(cfg.depth):
        layers += [nn.Linear(cfg.width, cfg.width), nn.Tanh()]
    return layers + [nn.Linear(cfg.width, 10)]


def _peak_bytes(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with SavedActivationMeter(net) as meter:
        cross_entropy(net(x), y).backward()
    net.zero_grad()
    return meter.peak


def _median_step_ms(net: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        cross_entropy(net(x), y).backward()
        times.append(1000 * (time.perf_counter() - start))
        net.zero_grad()
    return statistics.median(times)


def _grads(net: nn.Module, forward, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad()
    cross_entropy(forward(x), y).backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    return grads


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((u - v).abs().max().item() for u, v in zip(a, b))


@lab(
    "gradient-checkpointing/memory",
    card="gradient-checkpointing",
    config=CheckpointConfig,
    scales={
        "quick": {"depth": 6, "width": 32, "batch": 32, "segments": 3, "steps": 3, "repeats": 2},
        "default": {},
        "full": {"depth": 128, "width": 1024, "segments": 16, "steps": 100},
    },
    goals=[Goal("grad_max_abs_diff", "<=", 1e-6), Goal("memory_ratio", "<=", 0.5)],
    claims=[
        Check(
            "gradient-checkpointing-memory",
            lambda m: m["grad_max_abs_diff"] <= 1e-6 and m["memory_ratio"] < 1,
            "{layers}-layer tanh net, batch {batch}, {segments} segments: autograd keeps at most {ckpt_mb:.2f} MB "
            "of activations for backward instead of {plain_mb:.2f} MB ({memory_ratio:.2f}x); gradients differ by "
            "{grad_max_abs_diff:.1e} (from torch.utils.checkpoint by {grad_diff_torch:.1e}), parameters after "
            "{steps} SGD steps by {param_max_abs_diff:.1e}; a step takes {time_overhead:.2f}x as long",
        ),
    ],
    budget_s=30,
    threads=1,
)
def memory(run, cfg: CheckpointConfig) -> dict:
    """Gradient checkpointing: the same gradients from fewer stored activations, for some recomputation."""
    data = digits(flatten=True)
    # copies, not views: a view would keep (and the meter would count) the whole training set's storage
    x, y = data.x_train[: cfg.batch].clone().to(run.device), data.y_train[: cfg.batch].clone().to(run.device)
    plain = nn.Sequential(*_deep_net(cfg)).to(run.device)
    ckpt = CheckpointedSequential(copy.deepcopy(list(plain)), cfg.segments)

    g_plain = _grads(plain, plain, x, y)
    g_ckpt = _grads(ckpt, ckpt, x, y)
    g_torch = _grads(plain, lambda v: checkpoint_sequential(
        plain, cfg.segments, v, use_reentrant=False), x, y)
    metrics = {"layers": len(plain), "batch": cfg.batch, "segments": cfg.segments, "steps": cfg.steps,
               "grad_max_abs_diff": _max_diff(g_ckpt, g_plain), "grad_diff_torch": _max_diff(g_ckpt, g_torch)}

    # the same gradients give the same training: take SGD steps with both nets side by side
    opts = {name: SGD(net.parameters(), lr=cfg.lr) for name, net in (("plain", plain), ("ckpt", ckpt))}
    for step in run.progress(range(cfg.steps), desc="training both"):
        for name, net in (("plain", plain), ("ckpt", ckpt)):
            loss = cross_entropy(net(x), y)
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
            run.log(step, **{f"{name}_loss": loss})
    metrics["param_max_abs_diff"] = _max_diff(list(plain.parameters()), list(ckpt.parameters()))

    plain_bytes = _peak_bytes(plain, x, y)
    ckpt_bytes = _peak_bytes(ckpt, x, y)
    plain_ms = _median_step_ms(plain, x, y, cfg.repeats)
    ckpt_ms = _median_step_ms(ckpt, x, y, cfg.repeats)
    metrics.update(plain_mb=plain_bytes / 2 ** 20, ckpt_mb=ckpt_bytes / 2 ** 20, memory_ratio=ckpt_bytes / plain_bytes,
                   plain_ms=plain_ms, ckpt_ms=ckpt_ms, time_overhead=ckpt_ms / plain_ms)

    ks = sorted({k for k in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, len(plain)) if k <= len(plain)} | {cfg.segments})
    sweep = {k: _peak_bytes(CheckpointedSequential(list(plain), k), x, y) / 2 ** 20 for k in ks}
    metrics["best_segments"] = min(sweep, key=sweep.get)
    with run.figure("checkpointing") as (fig, ax):
        ax.plot(ks, [sweep[k] for k in ks], "o-", label="checkpointed (measured)")
        ax.axhline(plain_bytes / 2 ** 20, color="black", ls="--", label="plain backprop")
        ax.axvline(math.sqrt(len(plain)), color="gray", ls=":", label=r"$\sqrt{n}$ segments")
        ax.set(title=f"{len(plain)}-layer net: activations kept for backward", xscale="log", xlabel="segments k",
               ylabel="peak saved activations (MB)")
        ax.legend()
    return metrics
