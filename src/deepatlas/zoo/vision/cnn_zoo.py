"""The CNN zoo: every vision classifier of the atlas trained the same short way on the same digits.

Architectures are usually compared on ImageNet accuracy against parameters and multiply-adds.
This file holds the counters the vision labs share - parameters, convolution weights and the
multiply-adds of one forward pass - and the zoo lab, which trains each registered 28x28 classifier
for the same steps on the MNIST subset and puts test accuracy, parameters and CPU throughput in one
table and plot.

    \\mathrm{MACs}(\\text{conv}) = H_{out} W_{out} \\cdot C_{out} \\cdot k_h k_w \\cdot C_{in} / g

The zoo's question is that of the survey papers, e.g. Canziani, Paszke & Culurciello, "An Analysis of
Deep Neural Network Models for Practical Applications", arXiv 1605.07678, 2016.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import ModelEntry, create_model, model_entries


def n_params(net: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def conv_weights(net: nn.Module) -> int:
    """Weights of the convolutions only: the papers' count for a block (no biases, no BatchNorm)."""
    return sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d))


def multiply_adds(net: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-adds of the convolutions and linear layers in one forward pass of `inputs`, per example.

    The convention of the architecture papers: normalisation, activations, pooling and additions are
    not counted (they are a small fraction of the total)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _, out: torch.Tensor) -> None:
        nonlocal total
        k_h, k_w = m.kernel_size
        # H_{out} W_{out} C_{out} \cdot k_h k_w C_{in} / g
        total += out[0].numel() * k_h * k_w * m.in_channels // m.groups

    def linear_hook(m: nn.Linear, _, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in net.modules() if isinstance(m, nn.Linear)]
    training = net.training
    try:
        with torch.no_grad():
            net.eval()  # BatchNorm on running statistics: any batch size works
            net(*inputs)
    finally:
        net.train(training)
        for h in hooks:
            h.remove()
    return total // len(inputs[0])


# --- cnn/zoo: every vision classifier, the same short training ------------------------------------------

# Registered variants that are ablations or depth variants of a model already in the zoo; their labs
# compare them (resnet/degradation), and at 96M multiply-adds the 56-layer nets alone would take most
# of the budget.
NOT_COMPARED = {
    "plain20": "ResNet-20 without its shortcuts (an ablation; see resnet/degradation)",
    "plain56": "ResNet-56 without its shortcuts (an ablation; see resnet/degradation)",
    "resnet56": "a deeper ResNet-20 (see resnet/degradation)",
}


def _probe(entry: ModelEntry) -> str | None:
    """Why the default model is not a classifier of 28x28 digits, or None when it is: it must map
    (2, 1, 28, 28) to a (2, 10) tensor of logits, in training and in evaluation mode."""
    net = create_model(entry.name)
    x = torch.zeros(2, 1, 28, 28)
    for mode in (True, False):
        try:
            with torch.no_grad():
                out = net.train(mode)(x)
        except (RuntimeError, ValueError) as err:
            return f"does not take 28x28 digits ({type(err).__name__}: {str(err).splitlines()[0]})"
        if not isinstance(out, torch.Tensor) or out.shape != (2, 10):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            return f"returns {shape}, not (2, 10) logits"
    return None


def zoo_models(vision_family: str = "vision") -> tuple[list[str], dict[str, str]]:
    """The zoo: every registered model whose card's family is `vision...`, minus NOT_COMPARED and minus
    those that are not 28x28 digit classifiers (U-Net maps an image to a mask). Also returns why each
    left-out vision model is left out."""
    from deepatlas.catalog import load_catalog

    by_id = load_catalog().by_id
    chosen, left_out = [], {}
    for entry in model_entries():
        if not by_id[entry.card].family.startswith(vision_family):
            continue
        reason = NOT_COMPARED.get(entry.name) or _probe(entry)
        if reason:
            left_out[entry.name] = reason
        else:
            chosen.append(entry.name)
    return chosen, left_out


@dataclass
class ZooConfig:
    steps: int = 150  # Adam steps, the same for every model
    batch_size: int = 32
    lr: float = 2e-3  # constant; the BatchNorm nets start from He et al.'s scale, which learns slowly at 1e-3
    n_test: int = 1000  # of the subset's 1,000 test images
    throughput_batch: int = 256
    throughput_repeats: int = 2
    models: str = ""  # comma-separated names; empty: every model that zoo_models() selects
    tolerance: float = 0.01  # an accuracy gap within the noise of 1,000 test images


def _throughput(net: nn.Module, batch: int, repeats: int, device) -> float:
    """Images per second at inference, the best of `repeats` timed batches after one warm-up."""
    x = torch.rand(batch, 1, 28, 28, device=device)
    best = float("inf")
    with torch.no_grad():
        net(x)
        for _ in range(repeats):
            start = time.perf_counter()
            net(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return batch / best


def _densenet_check(m: dict) -> bool:
    # the same accuracy within the test set's noise, with at most half of ResNet-20's parameters
    return (m["densenet_small_acc"] >= m["resnet20_acc"] - m["tolerance"]
            and m["densenet_small_params"] <= 0.5 * m["resnet20_params"])


@lab(
    "cnn/zoo",
    card="cnn",
    config=ZooConfig,
    scales={
        "quick": {"steps": 3, "batch_size": 16, "n_test": 100, "throughput_batch": 16, "throughput_repeats": 1,
                  "models": "densenet_small,resnet20"},
        "default": {},
        "full": {"steps": 1500, "batch_size": 64},
    },
    goals=[Goal("best_acc", ">=", 0.93), Goal("n_models", ">=", 12)],
    claims=[
        Check(
            "densenet-param-efficiency",
            _densenet_check,
            "after the same {steps} Adam steps: DenseNet-BC (small) {densenet_small_acc:.3f} test accuracy with "
            "{densenet_small_params:,} parameters vs ResNet-20 {resnet20_acc:.3f} with {resnet20_params:,} "
            "({param_ratio:.2f}x the parameters); supported if within {tolerance} of ResNet-20 at at most half "
            "its parameters; accuracy per 100k parameters {densenet_acc_per_100k:.2f} vs {resnet20_acc_per_100k:.2f} "
            "(DenseNet ranks {densenet_rank_per_param} of {n_models} models by accuracy per parameter)",
        ),
    ],
    budget_s=180,
    threads=1,  # about 100 s of CPU on one thread; robust when other processes share the 2 cores
)
def zoo(run, cfg: ZooConfig) -> dict:
    """Every vision classifier after the same short training on MNIST: accuracy, parameters, speed."""
    names, left_out = zoo_models()
    if cfg.models:
        wanted = [n.strip() for n in cfg.models.split(",")]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ValueError(f"not in the zoo: {', '.join(unknown)}; the zoo has {', '.join(names)}")
        names = wanted
    if not {"densenet_small", "resnet20"} <= set(names):
        raise ValueError("the zoo judges densenet-param-efficiency: `models` must include densenet_small and resnet20")
    data = mnist_subset(flatten=False)
    x, y = data.x_train.to(run.device), data.y_train.to(run.device)  # (4000, 1, 28, 28)
    x_test, y_test = data.x_test[:cfg.n_test].to(run.device), data.y_test[:cfg.n_test].to(run.device)

    rows = {}
    for name in run.progress(names, desc="zoo"):
        torch.manual_seed(run.seed)
        net = create_model(name).to(run.device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        g = torch.Generator().manual_seed(run.seed)  # every model sees the same batches
        net.train()
        start = time.perf_counter()
        for step in range(cfg.steps):
            idx = torch.randint(len(x), (cfg.batch_size,), generator=g).to(run.device)
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 0 or step == cfg.steps - 1:
                run.log(step, **{f"{name}_loss": loss})
        train_s = time.perf_counter() - start
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(xb).argmax(1) for xb in x_test.split(250)])
        rows[name] = {"acc": (pred == y_test).float().mean().item(), "params": n_params(net),
                      "macs": multiply_adds(net, x_test[:1]), "train_s": train_s,
                      "ips": _throughput(net, cfg.throughput_batch, cfg.throughput_repeats, run.device)}

    metrics: dict = {"steps": cfg.steps, "tolerance": cfg.tolerance, "n_models": len(rows), "n_left_out": len(left_out)}
    for name, row in rows.items():
        for key, value in row.items():
            metrics[f"{name}_{key}"] = value
    metrics["best_acc"] = max(r["acc"] for r in rows.values())
    metrics["param_ratio"] = rows["resnet20"]["params"] / rows["densenet_small"]["params"]
    metrics["densenet_acc_per_100k"] = 1e5 * rows["densenet_small"]["acc"] / rows["densenet_small"]["params"]
    metrics["resnet20_acc_per_100k"] = 1e5 * rows["resnet20"]["acc"] / rows["resnet20"]["params"]
    ranking = sorted(rows, key=lambda n: -rows[n]["acc"] / rows[n]["params"])
    metrics["densenet_rank_per_param"] = ranking.index("densenet_small") + 1
    _write_table(run, rows, left_out)
    _plot_zoo(run, rows, cfg.steps)
    return metrics


def _write_table(run, rows: dict, left_out: dict) -> None:
    lines = ["model,test_acc,params,multiply_adds,images_per_s,train_s"]
    lines += [f"{n},{r['acc']:.4f},{r['params']},{r['macs']},{r['ips']:.0f},{r['train_s']:.2f}"
              for n, r in rows.items()]
    lines += [f"# left out: {n}: {why}" for n, why in left_out.items()]
    (run.dir / "zoo.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _plot_zoo(run, rows: dict, steps: int) -> None:
    with run.figure("zoo", ncols=2, size=(11, 4.5)) as (fig, (ax_p, ax_t)):
        panels = ((ax_p, "params", "parameters"), (ax_t, "ips", "images / s at inference (CPU, batch 256)"))
        for ax, key, xlabel in panels:
            for name, r in rows.items():
                ax.scatter(r[key], r["acc"], s=25)
                ax.annotate(name, (r[key], r["acc"]), fontsize=7, xytext=(3, 2), textcoords="offset points")
            ax.set(xscale="log", xlabel=xlabel, ylabel="test accuracy")
        ax_p.set_title(f"MNIST subset after {steps} Adam steps")
        ax_t.set_title("accuracy against speed")
