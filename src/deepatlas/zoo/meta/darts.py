"""DARTS: make the choice of operation continuous, then search the architecture by gradient descent.

Every layer of a supernet computes all candidate operations and mixes them with the softmax of
architecture logits alpha. The network weights w descend the training loss and alpha descends the
validation loss, alternately (the first-order approximation of the bilevel problem, which ignores
how w* depends on alpha). At the end each layer keeps its operation of largest alpha.

    \\bar o(h) = \\sum_{o \\in \\mathcal{O}} \\frac{\\exp \\alpha_o}{\\sum_{o'} \\exp \\alpha_{o'}} o(h),
    \\min_\\alpha \\mathcal{L}_{val}(w^*(\\alpha), \\alpha)  s.t.  w^*(\\alpha) = \\arg\\min_w \\mathcal{L}_{train}(w, \\alpha)

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.meta.evolutionary_nas import OPS, all_architectures, arch_index, architecture_table

ACTIVATIONS = {"linear": nn.Identity(), "relu": nn.ReLU(), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}


def _linear(d_in: int, d_out: int, generator: torch.Generator | None) -> nn.Linear:
    """nn.Linear with PyTorch's default uniform(+-1/sqrt(fan_in)) init drawn from `generator`."""
    layer = nn.Linear(d_in, d_out)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) / math.sqrt(d_in))
    return layer


class MixedOp(nn.Module):
    """All ops of OPS on h (N, d), each parametric one with its own weights, mixed by `weights` (len(OPS),)."""

    def __init__(self, width: int, generator: torch.Generator | None = None):
        super().__init__()
        self.ops = nn.ModuleDict({name: _linear(width, width, generator) for name in OPS if name != "skip"})

    def forward(self, h: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        outs = [h] + [ACTIVATIONS[name](linear(h)) for name, linear in self.ops.items()]  # in OPS order
        # \bar o(h) = \sum_o \mathrm{softmax}(\alpha)_o \, o(h)
        return sum(w * o for w, o in zip(weights, outs))

    def path(self, h: torch.Tensor, op: int) -> torch.Tensor:
        """Only op number `op` of OPS on h (N, d): one discrete choice, as in single-path weight sharing."""
        name = OPS[op]
        return h if name == "skip" else ACTIVATIONS[name](self.ops[name](h))


class DartsMLP(nn.Module):
    """Supernet over the space of evolutionary_nas: stem -> n_layers mixed ops -> head. x (N, D) -> (N, C)."""

    def __init__(self, d_in: int = 64, width: int = 16, n_layers: int = 3, n_classes: int = 10,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.stem = _linear(d_in, width, generator)
        self.cells = nn.ModuleList(MixedOp(width, generator) for _ in range(n_layers))
        self.head = _linear(width, n_classes, generator)
        self.alpha = nn.Parameter(torch.zeros(n_layers, len(OPS)))  # architecture logits, uniform at start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))  # (N, width)
        for cell, weights in zip(self.cells, self.alpha.softmax(-1)):
            h = cell(h, weights)
        return self.head(h)

    def path(self, x: torch.Tensor, arch: tuple[int, ...]) -> torch.Tensor:
        """One architecture of the space with the supernet's (shared) weights: x (N, D) -> (N, C)."""
        h = torch.relu(self.stem(x))
        for cell, op in zip(self.cells, arch):
            h = cell.path(h, op)
        return self.head(h)

    def weights(self) -> list[nn.Parameter]:
        """The network weights w (everything but alpha)."""
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def derive(self) -> tuple[int, ...]:
        """The discrete architecture: each layer's op of largest alpha."""
        return tuple(self.alpha.argmax(-1).tolist())


@register_model("darts-mlp-digits", card="darts", example=lambda: (torch.randn(4, 64),))
def darts_mlp_digits(width: int = 16, n_layers: int = 3) -> DartsMLP:
    return DartsMLP(64, width, n_layers)


def search(model: DartsMLP, x_train, y_train, x_val, y_val, steps: int, lr: float, alpha_lr: float, run) -> None:
    """First-order DARTS: alternate one Adam step on w (training loss) and one on alpha (validation loss)."""
    opt_w, opt_alpha = Adam(model.weights(), lr=lr), Adam([model.alpha], lr=alpha_lr)
    for step in range(steps):
        # w \leftarrow w - \xi \nabla_w \mathcal{L}_{train}(w, \alpha)
        loss = F.cross_entropy(model(x_train), y_train)
        opt_w.zero_grad()
        loss.backward()
        opt_w.step()
        # \alpha \leftarrow \alpha - \eta \nabla_\alpha \mathcal{L}_{val}(w, \alpha)   (first order: w held fixed)
        val_loss = F.cross_entropy(model(x_val), y_val)
        opt_alpha.zero_grad()
        val_loss.backward()
        opt_alpha.step()
        if (step + 1) % 20 == 0:
            run.log(step + 1, train_loss=loss.detach(), val_loss=val_loss.detach())


# --- darts/tiny-cell-search ------------------------------------------------------------------------

@dataclass
class TinyCellConfig:
    n_layers: int = 3  # the space of evolutionary-nas/vs-hill-climbing: len(OPS)^n_layers architectures
    width: int = 16
    n_train: int = 500  # of digits' training split; the rest is the validation set
    train_steps: int = 60  # full-batch Adam steps per stand-alone architecture (the ground-truth table)
    lr: float = 0.01
    search_steps: int = 200  # DARTS steps (each one w step and one alpha step)
    alpha_lr: float = 0.03


def multiply_adds(n_layers: int, width: int, n_ops: float, d_in: int = 64, n_classes: int = 10) -> float:
    """Multiply-adds of one forward pass of one example through a stack with n_ops parametric ops a layer."""
    return d_in * width + n_layers * n_ops * width * width + width * n_classes


@lab(
    "darts/tiny-cell-search",
    card="darts",
    config=TinyCellConfig,
    scales={
        "quick": {"n_layers": 2, "n_train": 200, "train_steps": 10, "search_steps": 10},
        "default": {},
        "full": {"n_layers": 4, "width": 32, "n_train": 1000, "train_steps": 300, "search_steps": 1000},
    },
    goals=[Goal("darts_percentile", ">=", 0.75)],
    claims=[
        Check(
            "darts-relaxation-search",
            lambda m: m["darts_regret"] <= 0.01,
            "after {search_steps} first-order DARTS steps the derived architecture reaches validation accuracy "
            "{darts_val_acc:.4f} when trained alone, against {best_val_acc:.4f} for the best of all {n_archs} "
            "architectures (regret {darts_regret:.4f}, better than {darts_percentile:.2f} of them; median "
            "{median_val_acc:.4f}); the search (one supernet) cost {cost_ratio:.1f}x fewer multiply-adds than training "
            "every architecture for {train_steps} steps. Rule: the derived architecture is within one point of "
            "validation accuracy (0.01) of the best",
        ),
    ],
    budget_s=90,
    threads=1,
)
def tiny_cell_search(run, cfg: TinyCellConfig) -> dict:
    """DARTS on a 3-layer MLP search space over digits, scored against every architecture trained alone."""
    table = architecture_table(cfg.n_layers, cfg.n_train, cfg.width, cfg.train_steps, cfg.lr, run)
    data = digits()
    x, y = data.x_train.float(), data.y_train
    model = DartsMLP(x.shape[1], cfg.width, cfg.n_layers, generator=torch.Generator().manual_seed(run.seed))
    search(model, x[:cfg.n_train], y[:cfg.n_train], x[cfg.n_train:], y[cfg.n_train:], cfg.search_steps, cfg.lr,
           cfg.alpha_lr, run)
    derived = model.derive()
    score = table[arch_index(derived)].item()
    archs = all_architectures(cfg.n_layers)
    n_param_ops = (archs != OPS.index("skip")).sum(1).double().mean().item()  # parametric ops per architecture
    n_val = len(x) - cfg.n_train
    # the table: every architecture, train_steps forward + backward (~3x forward) passes on n_train examples;
    # DARTS: search_steps x (a w step on n_train and an alpha step on n_val), all ops of every layer
    table_cost = len(archs) * cfg.train_steps * 3 * cfg.n_train * multiply_adds(cfg.n_layers, cfg.width, n_param_ops
                                                                                / cfg.n_layers)
    darts_cost = cfg.search_steps * 3 * (cfg.n_train + n_val) * multiply_adds(cfg.n_layers, cfg.width, len(OPS) - 1)
    metrics = {"n_archs": len(archs), "search_steps": cfg.search_steps, "train_steps": cfg.train_steps,
               "best_val_acc": table.max().item(), "median_val_acc": table.median().item(), "darts_val_acc": score,
               "darts_regret": table.max().item() - score,
               "darts_percentile": (table < score).double().mean().item(), "cost_ratio": table_cost / darts_cost}
    for layer, probs in enumerate(model.alpha.detach().softmax(-1)):
        for op, p in zip(OPS, probs):
            metrics[f"alpha_{layer}_{op}"] = p.item()
    _plot(run, cfg, model, table, score)
    return metrics


def _plot(run, cfg: TinyCellConfig, model: DartsMLP, table: torch.Tensor, score: float) -> None:
    with run.figure("darts", ncols=2, size=(10, 3.6)) as (fig, (ax, hist)):
        image = ax.imshow(model.alpha.detach().softmax(-1), cmap="viridis", vmin=0, vmax=1)
        ax.set(xticks=range(len(OPS)), xticklabels=OPS, yticks=range(cfg.n_layers), ylabel="layer",
               title="softmax(alpha) after the search")
        fig.colorbar(image, ax=ax)
        hist.hist(table.numpy(), bins=30, label="every architecture, trained alone")
        hist.axvline(score, color="red", label="DARTS' derived architecture")
        hist.set(xlabel="validation accuracy", ylabel="architectures", title="where the search landed")
        hist.legend(fontsize=8)
