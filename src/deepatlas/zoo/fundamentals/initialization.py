"""Initialisation: the weight scale decides whether a signal survives fifty layers, and randomness breaks symmetry.

A layer with n inputs multiplies the second moment of its input by n Var[W] and by what the
nonlinearity keeps: about 1 for tanh near zero, 1/2 for ReLU. Xavier's Var[W] = 2/(n_in + n_out)
(= 1/n for square layers) suits tanh; He's 2/n_in makes up for the half that ReLU drops; a fixed
std of 0.01 multiplies the variance by n * 1e-4 at every layer. With constant weights every unit of
a layer computes the same thing and receives the same gradient, so the units never become different,
except through floating-point rounding, whose tiny differences the lab measures.

    \\mathbb{E}[h_l^2] = \\tfrac12\\, n\\, \\mathrm{Var}[W_l]\\, \\mathbb{E}[h_{l-1}^2] \\ \\text{(ReLU)}, \\qquad
    \\mathrm{Var}_{\\text{Xavier}}[W] = \\frac{2}{n_{\\text{in}} + n_{\\text{out}}}, \\quad \\mathrm{Var}_{\\text{He}}[W] = \\frac{2}{n_{\\text{in}}}

Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks",
AISTATS 2010; He, Zhang, Ren & Sun, "Delving Deep into Rectifiers", arXiv:1502.01852;
Rumelhart, Hinton & Williams, "Learning internal representations by error propagation", PDP 1986.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn import init
from deepatlas.nn.activations import relu, tanh
from deepatlas.zoo.fundamentals.vanishing_gradients import PlainMLP

SMALL_STD = 0.01
# activation and weight sampler for each scheme of the variance probe
SCHEMES = {
    "tanh_xavier": (tanh, lambda w, g: init.xavier_normal_(w, generator=g)),
    "relu_he": (relu, lambda w, g: init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
    "relu_xavier": (relu, lambda w, g: init.xavier_normal_(w, generator=g)),
    "small_normal": (tanh, lambda w, g: init.normal_(w, 0.0, SMALL_STD, generator=g)),
}
# weight initialisations for the symmetry experiment (biases are zero in all three)
STARTS = {
    "zeros": lambda w, g, c: init.zeros_(w),
    "const": lambda w, g, c: init.constant_(w, c),
    "random": lambda w, g, c: init.xavier_normal_(w, generator=g),
}


@dataclass
class VarianceConfig:
    layers: int = 50
    width: int = 256
    batch: int = 250  # Gaussian inputs x ~ N(0, I)
    hidden: int = 32  # symmetry experiment: a 64-hidden-hidden-10 tanh MLP on digits
    const: float = 0.1
    steps: int = 300
    train_batch: int = 128
    lr: float = 0.5  # plain SGD


def probe(phi, sample, cfg: VarianceConfig, g: torch.Generator, device) -> tuple[list[float], list[float]]:
    """Variance of the activations h_1..h_L of a fresh random net, and of dL/dh_1..dL/dh_L
    for L = <h_L, r> with a fixed random r. float64: ReLU+Xavier reaches 2^-49 and std 0.01 reaches 1e-78."""
    x = torch.randn(cfg.batch, cfg.width, generator=g, dtype=torch.float64).to(device).requires_grad_()  # (B, n)
    h, hs = x, []
    for _ in range(cfg.layers):
        w = sample(torch.empty(cfg.width, cfg.width, dtype=torch.float64), g).to(device)  # (n, n)
        # h_l = \phi(h_{l-1} W_l^\top)
        h = phi(h @ w.T)
        h.retain_grad()
        hs.append(h)
    r = torch.randn(cfg.batch, cfg.width, generator=g, dtype=torch.float64).to(device)
    (h * r).sum().backward()
    return [h.var().item() for h in hs], [h.grad.var().item() for h in hs]


def train_from(start, cfg: VarianceConfig, data, g: torch.Generator, run) -> tuple[PlainMLP, list, list]:
    x, y = data.x_train.double().to(run.device), data.y_train.to(run.device)
    sizes = [x.shape[1], cfg.hidden, cfg.hidden, 10]
    net = PlainMLP(sizes, tanh, lambda w: start(w, g, cfg.const)).double().to(run.device)
    before = [layer.weight.detach().clone() for layer in net.layers]
    losses = []
    for step in range(cfg.steps):
        idx = torch.randint(0, len(x), (cfg.train_batch,), generator=g).to(run.device)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        net.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= cfg.lr * p.grad  # identical units get identical gradients, hence identical updates
        if step % 10 == 0 or step == cfg.steps - 1:
            losses.append((step, loss.item()))
    return net, before, losses


@lab(
    "xavier-init/variance",
    card="xavier-init",
    config=VarianceConfig,
    scales={"quick": {"layers": 20, "width": 64, "batch": 100, "steps": 30},
            "default": {},
            "full": {"layers": 100, "width": 512, "batch": 1000, "steps": 3000}},
    goals=[
        Goal("tanh_xavier_layer_factor", ">=", 0.9),
        Goal("relu_he_ratio", ">=", 0.1),
        Goal("relu_he_ratio", "<=", 10.0),
        Goal("relu_xavier_ratio", "<=", 1e-10),
        Goal("small_normal_ratio", "<=", 1e-50),
        # rounding noise between the units grows with training: 3.5e-8 after the full scale's 3000 steps
        Goal("const_max_diff", "<=", 1e-12, scales=("default",)),
        Goal("random_test_acc", ">=", 0.9),
    ],
    claims=[
        Check(
            "xavier-init-keeps-variance",
            lambda m: 0.9 <= m["tanh_xavier_layer_factor"] <= 1.1 and 0.9 <= m["tanh_xavier_grad_factor"] <= 1.1,
            "tanh+Xavier through {layers} layers of width {width}: the activation variance changes by a factor "
            "{tanh_xavier_layer_factor:.3f} per layer and the gradient variance by {tanh_xavier_grad_factor:.3f} "
            "(roughly constant counted as within 10%); over all layers that drifts to {tanh_xavier_ratio:.3f} "
            "(activations, last/first) and {tanh_xavier_grad_ratio:.3f} (gradients, first/last), against "
            "{relu_xavier_ratio:.1e} for ReLU+Xavier and {small_normal_ratio:.1e} for std {small_std}",
        ),
        Check(
            "he-init-relu-variance",
            lambda m: 0.9 <= m["relu_he_layer_factor"] <= 1.1 and m["relu_xavier_layer_factor"] < 0.9,
            "ReLU through {layers} layers: with He the activation variance at the last layer is {relu_he_ratio:.2f}x "
            "the first (factor {relu_he_layer_factor:.3f} per layer); with Xavier it is {relu_xavier_ratio:.1e} = "
            "2^{relu_xavier_log2_ratio:.1f} (factor {relu_xavier_layer_factor:.3f} per layer; halving predicts "
            "2^-{halvings})",
        ),
        Check(
            "random-init-bad-scale",
            lambda m: m["small_normal_layer_factor"] < 0.9,
            "weights drawn with a fixed std {small_std} (tanh, width {width}): the activation variance is multiplied "
            "by {small_normal_layer_factor:.4f} per layer (n s^2 = {small_normal_predicted:.4f}) and ends "
            "{small_normal_ratio:.1e} of the first layer's after {layers} layers",
        ),
        Check(
            "zero-init-symmetry",
            lambda m: m["zeros_max_diff"] == 0 and m["const_moved"] > 0
            and m["const_max_diff"] <= 1e-9 * m["const_moved"],
            "after {steps} SGD steps on digits, the largest difference between two hidden units' incoming weights "
            "is {zeros_max_diff:.1e} from zero init (whose hidden weights moved {zeros_moved:.1e}: no gradient "
            "reaches them) and {const_max_diff:.1e} from constant {const} init (the weights moved up to "
            "{const_moved:.1e}; identical counted as within 1e-9 of that), against {random_min_dist:.2f} for the "
            "closest pair from random init; test accuracy {zeros_test_acc:.2f} / {const_test_acc:.2f} / "
            "{random_test_acc:.2f}",
        ),
        Check(
            "random-init-breaks-symmetry",
            lambda m: m["random_min_dist"] > 0.01 and m["random_test_acc"] >= m["const_test_acc"] + 0.2,
            "from Xavier-random weights the closest pair of hidden units differs by {random_min_dist:.2f} (L2) after "
            "training and the net reaches test accuracy {random_test_acc:.2f}; from constant weights the closest "
            "and farthest pairs differ by {const_min_dist:.1e} and {const_max_diff:.1e}, and it reaches "
            "{const_test_acc:.2f}",
        ),
    ],
    budget_s=30,
    threads=1,
)
def variance(run, cfg: VarianceConfig) -> dict:
    """Activation variance through 50 layers for four initialisations; constant weights keep units identical."""
    metrics: dict = {"layers": cfg.layers, "width": cfg.width, "steps": cfg.steps, "const": cfg.const,
                     "small_std": SMALL_STD, "halvings": cfg.layers - 1,
                     "small_normal_predicted": cfg.width * SMALL_STD**2}
    curves = {}
    for i, (name, (phi, sample)) in enumerate(run.progress(SCHEMES.items(), desc="variance probe")):
        g = torch.Generator().manual_seed(run.seed)
        act, grad = probe(phi, sample, cfg, g, run.device)
        curves[name] = act
        n = cfg.layers - 1  # transitions from layer 1 to layer L
        metrics[f"{name}_ratio"] = act[-1] / act[0]
        metrics[f"{name}_layer_factor"] = metrics[f"{name}_ratio"] ** (1 / n)  # geometric mean per layer
        metrics[f"{name}_grad_ratio"] = grad[0] / grad[-1]
        metrics[f"{name}_grad_factor"] = metrics[f"{name}_grad_ratio"] ** (1 / n)
        run.log(i, **{f"{name}_log10_ratio": math.log10(metrics[f"{name}_ratio"])})
    metrics["relu_xavier_log2_ratio"] = math.log2(metrics["relu_xavier_ratio"])

    data = digits()
    losses = {}
    for name, start in STARTS.items():
        g = torch.Generator().manual_seed(run.seed)
        net, before, losses[name] = train_from(start, cfg, data, g, run)
        for step, loss in losses[name]:
            run.log(step, **{f"{name}_loss": loss})
        hidden = [layer.weight.detach() for layer in net.layers[:-1]]  # row i: unit i's incoming weights
        metrics[f"{name}_max_diff"] = max((w - w[:1]).abs().max().item() for w in hidden)
        metrics[f"{name}_min_dist"] = min(torch.pdist(w).min().item() for w in hidden)
        metrics[f"{name}_moved"] = max((w - w0).abs().max().item() for w, w0 in zip(hidden, before))
        with torch.no_grad():
            pred = net(data.x_test.double().to(run.device)).argmax(1)
        metrics[f"{name}_test_acc"] = (pred == data.y_test.to(run.device)).float().mean().item()

    _plot(run, cfg, curves, losses)
    return metrics


def _plot(run, cfg: VarianceConfig, curves: dict, losses: dict) -> None:
    labels = {"tanh_xavier": "tanh + Xavier", "relu_he": "ReLU + He", "relu_xavier": "ReLU + Xavier",
              "small_normal": f"tanh + N(0, {SMALL_STD}²)"}
    with run.figure("variance", ncols=2, size=(11, 4)) as (fig, axes):
        layers = torch.arange(1, cfg.layers + 1)
        for name, act in curves.items():
            axes[0].plot(layers, act, label=labels[name])
        first = curves["relu_xavier"][0]
        axes[0].plot(layers, first * 0.5 ** (layers - 1.0), "k:", lw=1, label=r"$2^{-(l-1)}$")
        axes[0].set(title="activation variance at initialisation", xlabel="layer l",
                    ylabel=r"Var$[h_l]$", yscale="log")
        axes[0].legend(fontsize=8)
        for name, curve in losses.items():
            steps, values = zip(*curve)
            axes[1].plot(steps, values, label=f"{name} init")
        axes[1].set(title=f"64-{cfg.hidden}-{cfg.hidden}-10 tanh MLP on digits", xlabel="SGD step",
                    ylabel="cross-entropy")
        axes[1].legend()
