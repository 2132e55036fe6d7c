"""What the activation does to a small MLP on digits: dead units, centring, mean activation, GELU's tanh form.

ReLU passes no gradient for negative inputs, so a unit that is negative on every training
example stops learning; Leaky ReLU and ELU keep a slope there. Tanh is a zero-centred, four
times steeper sigmoid: tanh(x) = 2 sigma(2x) - 1, and the labs separate the two differences.
ELU's negative branch pulls the mean activation towards zero. GELU's tanh form approximates
x Phi(x) closely enough to swap one for the other.

    \\mathrm{ReLU}'(x) = 0 \\ (x < 0), \\quad \\mathrm{ELU}(x) = \\alpha (e^{x} - 1) \\ (x \\le 0), \\quad
    x\\Phi(x) \\approx \\tfrac12 x \\left(1 + \\tanh\\left[\\sqrt{2/\\pi}\\,(x + 0.044715 x^3)\\right]\\right)

Papers: Nair & Hinton, ICML 2010; Maas, Hannun & Ng, ICML workshop 2013; Clevert, Unterthiner &
Hochreiter, arXiv:1511.07289; LeCun, Kanter & Solla, PRL 1991; Hendrycks & Gimpel, arXiv:1606.08415.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn import init
from deepatlas.nn.activations import elu, gelu, leaky_relu, relu, sigmoid, tanh
from deepatlas.zoo.fundamentals.vanishing_gradients import PlainMLP


def he(g: torch.Generator):
    return lambda w: init.kaiming_normal_(w, nonlinearity="relu", generator=g)


def xavier(g: torch.Generator):
    return lambda w: init.xavier_normal_(w, generator=g)


def sgd_steps(run, net: PlainMLP, x, y, *, steps: int, lr: float, batch: int, g: torch.Generator,
              tag: str, start: int = 0, every: int = 10, probe=None) -> list[tuple[int, float]]:
    """Plain minibatch SGD; logs the loss every `every` steps, and `probe(step)` if given (the full-set loss)."""
    curve = []
    for step in range(start, start + steps):
        idx = torch.randint(0, len(x), (batch,), generator=g).to(x.device)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        net.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= lr * p.grad  # \theta \leftarrow \theta - \eta \nabla_\theta \mathcal{L}
        if (step + 1) % every == 0:
            value = probe() if probe else loss.item()
            run.log(step + 1, **{f"{tag}_loss": value})
            curve.append((step + 1, value))
    return curve


def pre_activations(net: PlainMLP, x: torch.Tensor) -> list[torch.Tensor]:
    """z_l = W_l h_{l-1} + b_l for every hidden layer: [(N, width), ...]."""
    zs, h = [], x
    for layer in net.layers[:-1]:
        z = layer(h)
        zs.append(z)
        h = net.phi(z)
    return zs


def accuracy(net: PlainMLP, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def load(run):
    return digits().to(run.device).tensors()


# -- relu/dying-units ----------------------------------------------------------------------------

RECTIFIERS = {"relu": relu, "leaky": leaky_relu, "elu": elu}  # Leaky ReLU with slope 0.01, ELU with alpha 1


@dataclass
class DyingConfig:
    hidden: int = 128
    layers: int = 3
    steps: int = 400  # dead units are counted at steps / 2 and followed to the end
    lr: float = 0.1
    batch: int = 128


def unit_report(net: PlainMLP, x, y) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Per hidden layer: units negative on every example, units whose full-batch gradient is exactly zero,
    and the unit's incoming weights and bias (width, fan_in + 1)."""
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y, reduction="sum").backward()
    with torch.no_grad():
        negative = [(z <= 0).all(0) for z in pre_activations(net, x)]
    hidden = net.layers[:-1]
    # a unit stops learning when dL/dw_i = 0 and dL/db_i = 0 summed over the whole training set
    dead = [(torch.cat([l.weight.grad, l.bias.grad[:, None]], 1) == 0).all(1) for l in hidden]
    weights = [torch.cat([l.weight, l.bias[:, None]], 1).detach().clone() for l in hidden]
    net.zero_grad()
    return negative, dead, weights


def time_ratio(f, ref, device, repeats: int = 7) -> float:
    """Median time of forward + backward of f over that of ref, on a (2048, 512) input."""
    def median_time(fn):
        z = torch.randn(2048, 512, device=device, requires_grad=True)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn(z).sum().backward()
            if z.is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return sorted(times)[repeats // 2]

    return median_time(f) / median_time(ref)


@lab(
    "relu/dying-units",
    card="relu",
    config=DyingConfig,
    scales={"quick": {"hidden": 32, "steps": 40}, "default": {}, "full": {"hidden": 512, "steps": 4000}},
    goals=[Goal("relu_test_acc", ">=", 0.9), Goal("leaky_test_acc", ">=", 0.9), Goal("elu_test_acc", ">=", 0.9)],
    claims=[
        Check(
            "relu-dying-units",
            lambda m: m["relu_dead_mid"] > 0 and m["relu_dead_mid"] == m["relu_negative_mid"]
            and m["relu_first_dead_moved"] == 0 and m["relu_still_dead"] >= 0.8 * m["relu_dead_mid"],
            "ReLU: at step {mid}, {relu_negative_mid} hidden units were negative on every training example and "
            "exactly those {relu_dead_mid} got a zero gradient; {relu_still_dead} of them were still dead at step "
            "{steps} (the others revived when earlier layers changed; 'forever' counted as at least 80%); the "
            "{relu_first_dead} dead first-layer units, whose inputs never change, moved {relu_first_dead_moved:.1e}",
        ),
        Check(
            "leaky-relu-no-dead-units",
            lambda m: m["leaky_dead_mid"] == 0 and m["leaky_dead_end"] == 0 and m["relu_dead_mid"] > 0
            and abs(m["leaky_negative_frac"] - m["relu_negative_frac"]) <= 0.1,
            "from the same initial weights, Leaky ReLU (slope 0.01) had {leaky_negative_mid} units negative on every "
            "example at step {mid} but {leaky_dead_mid} units with zero gradient (ReLU: {relu_dead_mid}; at the end "
            "{leaky_dead_end} vs {relu_dead_end}); {leaky_negative_frac:.2f} of its pre-activations are negative "
            "(ReLU: {relu_negative_frac:.2f})",
        ),
        Check(
            "elu-mitigates-dying",
            lambda m: m["elu_dead_mid"] == 0 and m["elu_dead_end"] == 0 and m["relu_dead_mid"] > 0
            and m["elu_time_ratio"] > 1,
            "from the same initial weights, ELU had {elu_dead_mid} units with zero gradient at step {mid} and "
            "{elu_dead_end} at step {steps} (ReLU: {relu_dead_mid} and {relu_dead_end}); {elu_negative_mid} units "
            "were negative on every example; forward + backward of this from-scratch ELU took {elu_time_ratio:.1f}x "
            "the time of ReLU (median of 7, a 2048x512 input)",
        ),
    ],
    budget_s=30,
    threads=1,
)
def dying_units(run, cfg: DyingConfig) -> dict:
    """Dead ReLU units get exactly zero gradient and stay dead; Leaky ReLU and ELU units keep learning."""
    x, y, x_test, y_test = load(run)
    sizes = [x.shape[1]] + [cfg.hidden] * cfg.layers + [10]
    mid = cfg.steps // 2
    metrics: dict = {"mid": mid, "steps": cfg.steps}
    counts = {}
    for name, phi in run.progress(RECTIFIERS.items(), desc="rectifiers"):
        g = torch.Generator().manual_seed(run.seed)  # the same initial weights and batches for all three
        net = PlainMLP(sizes, phi, he(g)).to(run.device)
        sgd_steps(run, net, x, y, steps=mid, lr=cfg.lr, batch=cfg.batch, g=g, tag=name)
        negative, dead, weights = unit_report(net, x, y)
        sgd_steps(run, net, x, y, steps=cfg.steps - mid, lr=cfg.lr, batch=cfg.batch, g=g, tag=name, start=mid)
        _, dead_end, weights_end = unit_report(net, x, y)
        # how far the units that were dead at mid moved afterwards, in the first layer
        moved = (weights_end[0] - weights[0]).abs().amax(1)[dead[0]]
        metrics.update({
            f"{name}_negative_mid": sum(int(n.sum()) for n in negative),
            f"{name}_dead_mid": sum(int(d.sum()) for d in dead),
            f"{name}_dead_end": sum(int(d.sum()) for d in dead_end),
            f"{name}_still_dead": sum(int((d & e).sum()) for d, e in zip(dead, dead_end)),
            f"{name}_first_dead": int(dead[0].sum()),
            f"{name}_first_dead_moved": moved.max().item() if len(moved) else 0.0,
            f"{name}_test_acc": accuracy(net, x_test, y_test),
        })
        with torch.no_grad():
            metrics[f"{name}_negative_frac"] = torch.cat([(z <= 0).flatten() for z in pre_activations(net, x)]
                                                         ).float().mean().item()
        counts[name] = ([int(d.sum()) for d in dead], [int(d.sum()) for d in dead_end])
    metrics["elu_time_ratio"] = time_ratio(elu, relu, run.device)

    with run.figure("dead_units", size=(6, 3.8)) as (fig, ax):
        width = 0.13
        for i, (name, (at_mid, at_end)) in enumerate(counts.items()):
            layers = torch.arange(1, cfg.layers + 1).float()
            ax.bar(layers + (2 * i - 2.5) * width, at_mid, width, label=f"{name}, step {mid}")
            ax.bar(layers + (2 * i - 1.5) * width, at_end, width, label=f"{name}, step {cfg.steps}", alpha=0.6)
        totals = ", ".join(f"{name} {sum(at_end)}" for name, (_, at_end) in counts.items())
        ax.text(0.98, 0.7, f"at step {cfg.steps}: {totals}", transform=ax.transAxes, ha="right", fontsize=8)
        ax.set(title="units with exactly zero gradient on the whole training set", xlabel="hidden layer",
               ylabel=f"dead units (of {cfg.hidden})", xticks=list(range(1, cfg.layers + 1)))
        ax.legend(fontsize=7)
    return metrics


# -- tanh/vs-sigmoid -----------------------------------------------------------------------------

# tanh(x) = 2 sigma(2x) - 1 differs from the sigmoid in slope (1 vs 1/4 at 0) and in centring;
# shifting each one separates the two
CENTRING = {
    "sigmoid": sigmoid,
    "centred_sigmoid": lambda z: sigmoid(z) - 0.5,  # zero-centred, slope 1/4
    "shifted_tanh": lambda z: tanh(z) + 1,  # outputs in (0, 2), slope 1
    "tanh": tanh,
}


@dataclass
class CentringConfig:
    hidden: int = 64
    steps: int = 800
    lr: float = 0.5  # plain SGD, the same for all four
    batch: int = 64
    target_loss: float = 0.5  # convergence: training-set cross-entropy below this


@lab(
    "tanh/vs-sigmoid",
    card="tanh",
    config=CentringConfig,
    scales={"quick": {"steps": 60}, "default": {}, "full": {"hidden": 256, "steps": 2000}},
    goals=[Goal("sigmoid_steps", "<=", 800), Goal("tanh_steps", "<=", 800), Goal("tanh_test_acc", ">=", 0.9)],
    claims=[
        Check(
            "tanh-zero-centred-faster",
            lambda m: m["tanh_steps"] < m["sigmoid_steps"] and m["tanh_steps"] < m["shifted_tanh_steps"],
            "steps to training loss {target_loss} (64-{hidden}-{hidden}-10 MLP, SGD lr {lr}): tanh {tanh_steps}, "
            "sigmoid {sigmoid_steps}; with the centring removed, tanh + 1 takes {shifted_tanh_steps}, and with it "
            "added, sigmoid - 1/2 takes {centred_sigmoid_steps} (a budget of {steps} means not reached)",
        ),
        Check(
            "sigmoid-not-zero-centred",
            lambda m: m["sigmoid_positive_frac"] == 1.0 and m["centred_sigmoid_steps"] < m["sigmoid_steps"]
            and m["tanh_steps"] < m["sigmoid_steps"],
            "{sigmoid_positive_frac:.2f} of the sigmoid net's hidden outputs are positive (tanh: "
            "{tanh_positive_frac:.2f}); steps to training loss {target_loss}: sigmoid {sigmoid_steps}, "
            "sigmoid - 1/2 {centred_sigmoid_steps}, tanh {tanh_steps} (a budget of {steps} means not reached)",
        ),
    ],
    budget_s=30,
    threads=1,
)
def vs_sigmoid(run, cfg: CentringConfig) -> dict:
    """Tanh against sigmoid, with the centring and the slope separated by shifted variants."""
    x, y, x_test, y_test = load(run)
    metrics: dict = {"hidden": cfg.hidden, "lr": cfg.lr, "steps": cfg.steps, "target_loss": cfg.target_loss}
    curves = {}
    for name, phi in run.progress(CENTRING.items(), desc="activations"):
        g = torch.Generator().manual_seed(run.seed)
        net = PlainMLP([x.shape[1], cfg.hidden, cfg.hidden, 10], phi, xavier(g)).to(run.device)

        def full_loss():
            with torch.no_grad():
                return nn.functional.cross_entropy(net(x), y).item()

        curves[name] = [(0, full_loss())] + sgd_steps(run, net, x, y, steps=cfg.steps, lr=cfg.lr, batch=cfg.batch,
                                                      g=g, tag=name, probe=full_loss)
        # first evaluation (every 10 steps) below the target; the whole budget when it was never reached
        metrics[f"{name}_steps"] = next((s for s, v in curves[name] if v < cfg.target_loss), cfg.steps)
        metrics[f"{name}_final_loss"] = curves[name][-1][1]
        metrics[f"{name}_test_acc"] = accuracy(net, x_test, y_test)
        with torch.no_grad():
            outputs = torch.cat([net.phi(z).flatten() for z in pre_activations(net, x)])
        metrics[f"{name}_positive_frac"] = (outputs > 0).float().mean().item()

    with run.figure("centring", size=(6, 4)) as (fig, ax):
        for name, curve in curves.items():
            steps, values = zip(*curve)
            ax.plot(steps, values, label=name.replace("_", " "))
        ax.axhline(cfg.target_loss, color="grey", ls=":", lw=1)
        ax.set(title="training loss, same init and batches", xlabel="SGD step", ylabel="cross-entropy (train set)",
               yscale="log")
        ax.legend()
    return metrics


# -- elu/mean-activation -------------------------------------------------------------------------

@dataclass
class MeanConfig:
    hidden: int = 128
    layers: int = 3
    steps: int = 400
    lr: float = 0.1
    batch: int = 128


def layer_means(net: PlainMLP, x) -> list[float]:
    """Mean activation phi(z_l) of each hidden layer over the training set."""
    with torch.no_grad():
        return [net.phi(z).mean().item() for z in pre_activations(net, x)]


@lab(
    "elu/mean-activation",
    card="elu",
    config=MeanConfig,
    scales={"quick": {"hidden": 32, "steps": 40}, "default": {}, "full": {"hidden": 512, "steps": 4000}},
    goals=[Goal("relu_test_acc", ">=", 0.9), Goal("elu_test_acc", ">=", 0.9)],
    claims=[
        Check(
            "elu-mean-near-zero",
            lambda m: abs(m["elu_mean_init"]) < abs(m["relu_mean_init"])
            and abs(m["elu_mean_end"]) < abs(m["relu_mean_end"]),
            "mean hidden activation over the digits training set (average of {layers} layers of {hidden}, same "
            "initial weights): ELU {elu_mean_init:.3f} vs ReLU {relu_mean_init:.3f} at initialisation, "
            "{elu_mean_end:.3f} vs {relu_mean_end:.3f} after {steps} SGD steps",
        ),
    ],
    budget_s=20,
    threads=1,
)
def mean_activation(run, cfg: MeanConfig) -> dict:
    """ELU's negative outputs pull a layer's mean activation towards zero; ReLU's cannot."""
    x, y, x_test, y_test = load(run)
    sizes = [x.shape[1]] + [cfg.hidden] * cfg.layers + [10]
    metrics: dict = {"layers": cfg.layers, "hidden": cfg.hidden, "steps": cfg.steps}
    means = {}
    for name, phi in (("relu", relu), ("elu", elu)):
        g = torch.Generator().manual_seed(run.seed)
        net = PlainMLP(sizes, phi, he(g)).to(run.device)
        at_init = layer_means(net, x)
        sgd_steps(run, net, x, y, steps=cfg.steps, lr=cfg.lr, batch=cfg.batch, g=g, tag=name)
        means[name] = (at_init, layer_means(net, x))
        metrics[f"{name}_mean_init"] = sum(at_init) / cfg.layers
        metrics[f"{name}_mean_end"] = sum(means[name][1]) / cfg.layers
        metrics[f"{name}_test_acc"] = accuracy(net, x_test, y_test)

    with run.figure("mean_activation", size=(6, 3.8)) as (fig, ax):
        layers = range(1, cfg.layers + 1)
        for name, (at_init, at_end) in means.items():
            line, = ax.plot(layers, at_end, marker="o", label=f"{name}, trained")
            ax.plot(layers, at_init, marker="o", ls="--", color=line.get_color(), label=f"{name}, initial")
        ax.axhline(0, color="grey", lw=1)
        ax.set(title="mean activation per hidden layer", xlabel="hidden layer", ylabel="mean of phi(z)",
               xticks=list(layers))
        ax.legend()
    return metrics


# -- gelu/tanh-approx ----------------------------------------------------------------------------

@dataclass
class GeluConfig:
    hidden: int = 128
    steps: int = 400
    lr: float = 0.1
    batch: int = 128


@lab(
    "gelu/tanh-approx",
    card="gelu",
    config=GeluConfig,
    scales={"quick": {"hidden": 32, "steps": 40}, "default": {}, "full": {"hidden": 512, "steps": 4000}},
    goals=[Goal("max_abs_error", "<=", 1e-3), Goal("exact_test_acc", ">=", 0.9), Goal("tanh_test_acc", ">=", 0.9)],
    claims=[
        Check(
            "gelu-tanh-approximation",
            lambda m: m["max_abs_error"] <= 1e-3 and abs(m["exact_test_acc"] - m["tanh_test_acc"]) <= 0.01,
            "on [-10, 10] the tanh form differs from x Phi(x) by at most {max_abs_error:.1e} (at x = "
            "{argmax_error:.2f}; slope by {max_grad_error:.1e}; x sigma(1.702x) by {sigmoid_max_abs_error:.1e}); "
            "two MLPs from the same weights reach test accuracy {exact_test_acc:.3f} (exact) and "
            "{tanh_test_acc:.3f} (tanh), outputs differing by up to {max_logit_gap:.1e}",
        ),
    ],
    budget_s=20,
    threads=1,
)
def tanh_approx(run, cfg: GeluConfig) -> dict:
    """How far GELU's tanh approximation is from x Phi(x), pointwise and after training a net with each."""
    t = torch.linspace(-10, 10, 200_001, dtype=torch.float64, device=run.device, requires_grad=True)  # step 1e-4
    exact, approx = gelu(t), gelu(t, "tanh")
    (d_exact,) = torch.autograd.grad(exact.sum(), t)
    (d_approx,) = torch.autograd.grad(approx.sum(), t)
    error = (exact - approx).detach()
    # the other common approximation, x \sigma(1.702 x), for scale
    sigmoid_error = (exact - t * sigmoid(1.702 * t)).detach()
    metrics: dict = {
        "max_abs_error": error.abs().max().item(),
        "argmax_error": t[error.abs().argmax()].item(),
        "max_grad_error": (d_exact - d_approx).abs().max().item(),
        "sigmoid_max_abs_error": sigmoid_error.abs().max().item(),
    }

    x, y, x_test, y_test = load(run)
    nets = {}
    for name, mode in (("exact", "none"), ("tanh", "tanh")):
        g = torch.Generator().manual_seed(run.seed)
        nets[name] = PlainMLP([x.shape[1], cfg.hidden, cfg.hidden, 10], lambda z, m=mode: gelu(z, m), he(g))
        nets[name].to(run.device)
        sgd_steps(run, nets[name], x, y, steps=cfg.steps, lr=cfg.lr, batch=cfg.batch, g=g, tag=name)
        metrics[f"{name}_test_acc"] = accuracy(nets[name], x_test, y_test)
    with torch.no_grad():
        metrics["max_logit_gap"] = (nets["exact"](x_test) - nets["tanh"](x_test)).abs().max().item()

    with run.figure("gelu_approx", ncols=2, size=(10, 3.8)) as (fig, axes):
        grid = t.detach().cpu()
        axes[0].plot(grid, exact.detach().cpu(), label=r"$x\Phi(x)$")
        axes[0].plot(grid, approx.detach().cpu(), "--", label="tanh form")
        axes[0].set(title="GELU", xlabel="x", xlim=(-4, 4), ylim=(-0.5, 4))
        axes[0].legend()
        axes[1].plot(grid, error.cpu(), label="exact - tanh form")
        axes[1].plot(grid, sigmoid_error.cpu(), label=r"exact - $x\sigma(1.702x)$", alpha=0.7)
        axes[1].set(title="approximation error", xlabel="x", xlim=(-8, 8), ylabel="error")
        axes[1].set_yscale("symlog", linthresh=1e-4)
        axes[1].legend()
    return metrics
