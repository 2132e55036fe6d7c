"""One-shot NAS with weight sharing: train one supernet once, then score every architecture with its weights.

Every architecture of the space is a path through one supernet whose layers hold the weights of
every candidate operation. Training samples a path uniformly at random each step and updates only
that path's weights; afterwards each architecture is scored on validation data with the inherited
weights, without training of its own. The search is useful if that ranking agrees with the ranking
the architectures reach when each is trained alone, which costs one training per architecture.

    W^* = \\arg\\min_W \\mathbb{E}_{a \\sim \\mathrm{Uniform}(\\mathcal{A})} \\mathcal{L}_{train}(W_a),
    \\hat a = \\arg\\max_{a \\in \\mathcal{A}} \\mathrm{Acc}_{val}(W^*_a)

Pham, Guan, Zoph, Le & Dean, "Efficient Neural Architecture Search via Parameter Sharing", ICML 2018;
Bender et al., "Understanding and Simplifying One-Shot Architecture Search", ICML 2018;
Guo et al., "Single Path One-Shot Neural Architecture Search with Uniform Sampling", ECCV 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import Adam
from deepatlas.zoo.meta.darts import DartsMLP, multiply_adds
from deepatlas.zoo.meta.evolutionary_nas import OPS, all_architectures, architecture_table, random_arch


def train_supernet(supernet: DartsMLP, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
                   generator: torch.Generator, run) -> None:
    """Single-path training: each step one uniformly drawn architecture, one Adam step on its weights."""
    opt = Adam(supernet.weights(), lr=lr)
    for step in range(steps):
        arch = random_arch(len(supernet.cells), generator)
        # W \leftarrow W - \eta \nabla_W \mathcal{L}_{train}(W_a),   a \sim \mathrm{Uniform}(\mathcal{A})
        loss = F.cross_entropy(supernet.path(x, arch), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            run.log(step + 1, supernet_loss=loss.detach())


def shared_weight_accuracy(supernet: DartsMLP, archs: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Validation accuracy of every architecture (A, L) with the supernet's weights: (A,) float64."""
    with torch.no_grad():
        return torch.tensor([(supernet.path(x, tuple(a.tolist())).argmax(-1) == y).double().mean().item()
                             for a in archs], dtype=torch.float64)


# --- nas/weight-sharing ----------------------------------------------------------------------------

@dataclass
class WeightSharingConfig:
    n_layers: int = 3  # the space of evolutionary-nas/vs-hill-climbing
    width: int = 16
    n_train: int = 500  # of digits' training split; the rest is the validation set
    train_steps: int = 60  # full-batch Adam steps per stand-alone architecture
    lr: float = 0.01
    supernet_steps: int = 400  # single-path steps of the shared supernet
    supernet_lr: float = 0.003  # below the stand-alone rate: the last paths sampled overwrite less of the others


@lab(
    "nas/weight-sharing",
    card="nas",
    config=WeightSharingConfig,
    scales={
        "quick": {"n_layers": 2, "n_train": 200, "train_steps": 10, "supernet_steps": 20},
        "default": {},
        "full": {"n_layers": 4, "width": 32, "n_train": 1000, "train_steps": 300, "supernet_steps": 5000},
    },
    goals=[Goal("spearman", ">=", 0.2)],  # > 2 standard errors of Spearman under no association (125 archs)
    claims=[
        Check(
            "nas-weight-sharing",
            lambda m: m["cost_ratio"] >= 10 and m["spearman"] >= 0.5,
            "one supernet trained for {supernet_steps} single-path steps costs {cost_ratio:.1f}x fewer "
            "multiply-adds than training all {n_archs} architectures alone for {train_steps} steps; the "
            "shared-weight validation accuracies rank the architectures with Spearman {spearman:.3f} against "
            "their stand-alone accuracies; the shared-weight favourite reaches {picked_val_acc:.4f} alone "
            "(best {best_val_acc:.4f}, median {median_val_acc:.4f}). Rule: at least 10x cheaper and Spearman "
            "at least 0.5",
        ),
    ],
    budget_s=90,
    threads=1,
)
def weight_sharing(run, cfg: WeightSharingConfig) -> dict:
    """Shared-weight (one-shot) ranking of a 3-layer MLP space on digits against stand-alone training."""
    table = architecture_table(cfg.n_layers, cfg.n_train, cfg.width, cfg.train_steps, cfg.lr, run)
    data = digits()
    x, y = data.x_train.float(), data.y_train
    g = torch.Generator().manual_seed(run.seed)
    supernet = DartsMLP(x.shape[1], cfg.width, cfg.n_layers, generator=g)
    train_supernet(supernet, x[:cfg.n_train], y[:cfg.n_train], cfg.supernet_steps, cfg.supernet_lr, g, run)
    archs = all_architectures(cfg.n_layers)
    shared = shared_weight_accuracy(supernet, archs, x[cfg.n_train:], y[cfg.n_train:])
    n_param_ops = (archs != OPS.index("skip")).sum(1).double().mean().item() / cfg.n_layers
    madds = multiply_adds(cfg.n_layers, cfg.width, n_param_ops)  # one example, an average architecture
    n_val = len(x) - cfg.n_train
    # both ways score every architecture once on the validation set; training is forward + backward (~3x)
    stand_alone_cost = len(archs) * (cfg.train_steps * 3 * cfg.n_train + n_val) * madds
    shared_cost = (cfg.supernet_steps * 3 * cfg.n_train + len(archs) * n_val) * madds
    metrics = {"n_archs": len(archs), "train_steps": cfg.train_steps, "supernet_steps": cfg.supernet_steps,
               "spearman": float(spearmanr(shared.numpy(), table.numpy()).statistic),
               "cost_ratio": stand_alone_cost / shared_cost,
               "best_val_acc": table.max().item(), "median_val_acc": table.median().item(),
               "picked_val_acc": table[shared.argmax()].item()}
    with run.figure("weight_sharing", size=(5, 4)) as (fig, ax):
        ax.scatter(shared.numpy(), table.numpy(), s=10)
        ax.set(xlabel="validation accuracy with shared weights", ylabel="validation accuracy trained alone",
               title=f"{len(archs)} architectures, Spearman {metrics['spearman']:.2f}")
    return metrics
