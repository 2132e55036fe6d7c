"""Warm-up + cosine against a constant learning rate: the same MLP, steps and peak rate.

A schedule spends a fixed budget of steps differently. A constant rate keeps taking steps of
the same size, so mini-batch noise keeps the weights bouncing to the end; cosine decay shrinks
the steps so the model settles. Warm-up ramps the rate up over the first steps, when Adam's
second-moment estimate rests on a handful of gradients and a full-size step can throw the
weights far. Both parts are measured here on an MLP on MNIST-1D, over several initialisations.

    \\eta_t = \\eta_{\\max} t / T_w \\ (t < T_w),\\quad
    \\eta_t = \\tfrac12 \\eta_{\\max} (1 + \\cos(\\pi (t - T_w) / (T - T_w)))\\ \\text{after}

Loshchilov & Hutter, "SGDR", ICLR 2017 (arXiv 1608.03983); Goyal et al., "Accurate, large
minibatch SGD", 2017 (arXiv 1706.02677); Liu et al., "On the variance of the adaptive learning
rate and beyond", ICLR 2020 (arXiv 1908.03265), on why Adam needs warm-up.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import mnist1d
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import Adam
from deepatlas.optim.schedules import LinearWarmup, WarmupCosine
from deepatlas.zoo.fundamentals.mlp import MLP


@dataclass
class ScheduleConfig:
    samples: int = 4000  # MNIST-1D signals (80% train)
    hidden: int = 128
    batch_size: int = 128
    steps: int = 1000
    peak_lr: float = 0.01  # Adam's rate: the constant one, and the top of the schedule
    warmup_steps: int = 100
    start_factor: float = 0.01  # warm-up starts at 1% of the peak
    inits: int = 3  # initialisations (and batch orders) per schedule; results are averaged
    eval_every: int = 50
    high_lr: float = 0.1  # a rate 10x too large, for the warm-up test
    high_steps: int = 300


def train(run, net, data, schedule, cfg, lr, steps, seed, desc):
    """Adam with `schedule(opt)` (None: constant rate). Returns per-step losses, rates, test-accuracy curve."""
    opt = Adam(net.parameters(), lr=lr)
    sched = schedule(opt) if schedule else None
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(data.y_train), (steps, cfg.batch_size), generator=g).to(data.x_train.device)
    losses, rates, accs = [], [], []
    for step in run.progress(range(steps), desc=desc):
        rates.append(opt.param_groups[0]["lr"])
        loss = nn.functional.cross_entropy(net(data.x_train[idx[step]]), data.y_train[idx[step]])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched:
            sched.step()
        losses.append(loss.detach())
        if (step + 1) % cfg.eval_every == 0:
            accs.append((step + 1, accuracy(net, data)))
            run.log(step, **{f"loss_{desc.replace(' ', '_')}": loss})
    return torch.stack(losses).cpu(), rates, accs


@torch.no_grad()
def accuracy(net, data) -> float:
    return (net(data.x_test).argmax(1) == data.y_test).float().mean().item()


@lab(
    "lr-schedule/warmup-cosine",
    card="lr-schedule",
    config=ScheduleConfig,
    scales={
        "quick": {"samples": 500, "hidden": 32, "steps": 60, "warmup_steps": 10, "inits": 1, "eval_every": 20,
                  "high_steps": 30},
        "default": {},
        "full": {"samples": 10000, "steps": 5000, "warmup_steps": 500, "inits": 5, "high_steps": 1000},
    },
    goals=[
        Goal("constant_test_acc", ">=", 0.55),
        Goal("schedule_test_acc", ">=", 0.55),
        Goal("schedule_minus_constant", ">=", -0.01),
    ],
    claims=[
        Check(
            "lr-schedule-decay-improves",
            lambda m: m["schedule_minus_constant"] > 0 and m["schedule_train_loss"] < m["constant_train_loss"],
            "Adam on an MNIST-1D MLP, {steps} steps, peak rate {peak_lr:g}, mean of {inits} initialisations: "
            "warm-up + cosine ends at test accuracy {schedule_test_acc:.3f} (training loss "
            "{schedule_train_loss:.3f}), the constant rate at {constant_test_acc:.3f} ({constant_train_loss:.3f}); "
            "a difference of {schedule_minus_constant:+.3f} (supported when the schedule is ahead on both)",
        ),
        Check(
            "lr-schedule-warmup-stabilises",
            lambda m: m["spike_no_warmup"] >= 2 and m["spike_warmup"] <= 1.1,
            "at a rate of {high_lr:g} ({high_ratio:.0f}x the peak), the largest loss in the first {warmup_steps} "
            "steps is {spike_no_warmup:.1f}x the initial loss without warm-up and {spike_warmup:.2f}x with a "
            "{warmup_steps}-step warm-up (mean of {inits}; supported at >= 2x against <= 1.1x). Warm-up does not "
            "make the rate itself safe: over all {high_steps} steps the largest loss is {spike_all_no_warmup:.1f}x "
            "without and {spike_all_warmup:.1f}x with it, and the loss at the end is {high_end_no_warmup:.2f} "
            "without and {high_end_warmup:.2f} with it",
        ),
    ],
    budget_s=40,
    threads=1,
)
def warmup_cosine(run, cfg: ScheduleConfig) -> dict:
    """Warm-up + cosine against a constant rate: final accuracy, curves, and warm-up at a too-large rate."""
    dev = run.device
    data = mnist1d(cfg.samples).to(dev)
    m: dict = {k: getattr(cfg, k) for k in ("steps", "peak_lr", "inits", "high_lr", "high_steps", "warmup_steps")}
    m["high_ratio"] = cfg.high_lr / cfg.peak_lr
    sizes = [data.x_train.shape[1], cfg.hidden, cfg.hidden, 10]
    seeds = [run.seed * cfg.inits + i for i in range(cfg.inits)]
    nets = []
    for seed in seeds:
        torch.manual_seed(seed)
        nets.append(MLP(sizes, activation="relu").to(dev))

    # 1. the same peak rate and step budget: constant against warm-up + cosine
    schedules = {
        "constant": None,
        "schedule": lambda opt: WarmupCosine(opt, cfg.warmup_steps, cfg.steps, start_factor=cfg.start_factor),
    }
    curves = {}
    for name, schedule in schedules.items():
        runs = [train(run, copy.deepcopy(net), data, schedule, cfg, cfg.peak_lr, cfg.steps, seed, name)
                for net, seed in zip(nets, seeds)]
        curves[name] = runs
        m[f"{name}_test_acc"] = sum(accs[-1][1] for _, _, accs in runs) / cfg.inits
        tail = max(cfg.steps // 20, 1)  # the last 5% of steps, averaged over mini-batches and inits
        m[f"{name}_train_loss"] = sum(losses[-tail:].mean().item() for losses, _, _ in runs) / cfg.inits
    m["schedule_minus_constant"] = m["schedule_test_acc"] - m["constant_test_acc"]

    # 2. a rate 10x too large: with and without warm-up (constant afterwards)
    warmup = {"no_warmup": None,
              "warmup": lambda opt: LinearWarmup(opt, cfg.warmup_steps, start_factor=cfg.start_factor)}
    high = {}
    for name, schedule in warmup.items():
        runs = [train(run, copy.deepcopy(net), data, schedule, cfg, cfg.high_lr, cfg.high_steps, seed,
                      f"high {name}")[0] for net, seed in zip(nets, seeds)]
        high[name] = runs
        # the blow-up a large initial rate causes: largest loss over the warm-up window, and over the whole run
        m[f"spike_{name}"] = sum((losses[:cfg.warmup_steps].max() / losses[0]).item() for losses in runs) / cfg.inits
        m[f"spike_all_{name}"] = sum((losses.max() / losses[0]).item() for losses in runs) / cfg.inits
        tail = max(cfg.high_steps // 20, 1)
        m[f"high_end_{name}"] = sum(losses[-tail:].mean().item() for losses in runs) / cfg.inits

    _plot(run, cfg, curves, high, m)
    return m


def _plot(run, cfg, curves, high, m) -> None:
    colors = {"constant": "#7f7f7f", "schedule": "#d62728", "no_warmup": "#7f7f7f", "warmup": "#d62728"}
    labels = {"constant": "constant", "schedule": "warm-up + cosine", "no_warmup": "no warm-up",
              "warmup": "linear warm-up"}
    window = max(cfg.steps // 50, 1)
    with run.figure("warmup_cosine", ncols=2, nrows=2, size=(11, 8)) as (fig, (ax_lr, ax_loss, ax_acc, ax_high)):
        for name, runs in curves.items():
            ax_lr.plot(runs[0][1], color=colors[name], label=labels[name])
            losses = torch.stack([r[0] for r in runs]).mean(0)  # (steps,) mean over inits
            smooth = losses[: len(losses) // window * window].reshape(-1, window).mean(1)
            ax_loss.plot(torch.arange(len(smooth)) * window + window / 2, smooth, color=colors[name],
                         label=labels[name])
            steps = [s for s, _ in runs[0][2]]
            accs = torch.tensor([[a for _, a in r[2]] for r in runs]).mean(0)
            ax_acc.plot(steps, accs, color=colors[name],
                        label=f"{labels[name]}: {m[f'{name}_test_acc']:.3f} at the end")
        for name, runs in high.items():
            for i, losses in enumerate(runs):
                ax_high.plot(losses, color=colors[name], alpha=0.7, lw=1, label=labels[name] if i == 0 else None)
        ax_high.axvline(cfg.warmup_steps, color="k", ls=":", lw=1, label="end of warm-up")
        ax_lr.set(title=f"learning rate (peak {cfg.peak_lr:g})", xlabel="step", ylabel="lr")
        ax_loss.set(title=f"training loss (mean of {cfg.inits} inits)", xlabel="step", yscale="log")
        ax_acc.set(title="test accuracy", xlabel="step")
        ax_high.set(title=f"lr {cfg.high_lr:g}: first {cfg.high_steps} steps", xlabel="step",
                    ylabel="mini-batch loss", yscale="log")
        for ax in (ax_lr, ax_loss, ax_acc, ax_high):
            ax.legend(fontsize=8)
