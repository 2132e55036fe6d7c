"""Deep belief network: RBMs stacked and trained greedily, one layer at a time, then fine-tuned.

The first RBM learns the data; the probabilities of its hidden units become the data of the next
RBM, and so on up the stack. Each added layer raises a variational lower bound on the data's
log-likelihood (Hinton et al. 2006). The stack then serves as the initialisation of a sigmoid MLP of
the same shape, which backpropagation fine-tunes on labels; with few labels, the unlabelled
pre-training is what carries the structure of the data into the classifier.

    p(\\mathbf{v}, \\mathbf{h}^1, \\dots, \\mathbf{h}^L) = p(\\mathbf{h}^{L-1}, \\mathbf{h}^L)
        \\prod_{k=0}^{L-2} p(\\mathbf{h}^k \\mid \\mathbf{h}^{k+1}),
    p(h^k_i = 1 \\mid \\mathbf{h}^{k+1}) = \\sigma\\big(b^k_i + \\sum_j W^{k+1}_{ij} h^{k+1}_j\\big)

Hinton, Osindero & Teh, "A Fast Learning Algorithm for Deep Belief Nets", Neural Computation 18(7), 2006;
Hinton & Salakhutdinov, "Reducing the Dimensionality of Data with Neural Networks", Science 2006.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.generative.rbm import RBM, cd_loss, contrastive_divergence


class DBN(nn.Module):
    """A stack of RBMs with sizes (n_visible, n_1, ..., n_L). forward(v) runs the deterministic up-pass to the
    top layer's probabilities (B, n_L) and back down through the directed layers: (top, reconstruction (B, n_v))."""

    def __init__(self, sizes: tuple[int, ...] = (64, 128, 64), generator: torch.Generator | None = None):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"a DBN needs at least a visible and a hidden layer, got sizes {sizes}")
        self.sizes = tuple(sizes)
        self.rbms = nn.ModuleList(RBM(a, b, generator) for a, b in zip(sizes, sizes[1:]))

    def up(self, v: torch.Tensor, n_layers: int | None = None) -> torch.Tensor:
        """p(h^k | h^{k-1}) probabilities through the first n_layers RBMs (all by default)."""
        for rbm in self.rbms[:n_layers]:
            v = rbm.p_h(v)
        return v

    def down(self, h: torch.Tensor) -> torch.Tensor:
        """p(h^{k-1} | h^k) probabilities from the top layer down to the visible units."""
        for rbm in reversed(self.rbms):
            h = rbm.p_v(h)
        return h

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top = self.up(v)  # (B, n_L)
        return top, self.down(top)  # (B, n_L), (B, n_v)

    def classifier(self, n_classes: int) -> nn.Sequential:
        """The sigmoid MLP of the same shape, its hidden layers initialised from the RBMs' W and b,
        with a fresh softmax read-out."""
        layers: list[nn.Module] = []
        for rbm in self.rbms:
            linear = nn.Linear(*rbm.W.shape)
            with torch.no_grad():
                linear.weight.copy_(rbm.W.T)  # h = \sigma(W^T v + b)
                linear.bias.copy_(rbm.b)
            layers += [linear, nn.Sigmoid()]
        return nn.Sequential(*layers, nn.Linear(self.sizes[-1], n_classes))


def sigmoid_mlp(sizes: tuple[int, ...], n_classes: int) -> nn.Sequential:
    """The same MLP from PyTorch's default initialisation: the from-scratch twin."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], n_classes))


def pretrain(run, dbn: DBN, x: torch.Tensor, epochs: int, lr: float, batch_size: int, k: int,
             g: torch.Generator) -> list[float]:
    """Greedy layer-wise training: RBM k learns the hidden probabilities of RBM k - 1, with CD-k.
    Returns the mean squared reconstruction error of each layer's data after its training."""
    errors = []
    data = x
    for layer, rbm in enumerate(dbn.rbms):
        opt = torch.optim.SGD(rbm.parameters(), lr=lr, momentum=0.9)
        steps = len(data) // batch_size
        for _ in run.progress(range(epochs), desc=f"rbm {layer + 1}"):
            order = torch.randperm(len(data), generator=g).to(data.device)
            for i in range(steps):
                v = data[order[i * batch_size:(i + 1) * batch_size]]
                loss = cd_loss(rbm, v, contrastive_divergence(rbm, v, k, g))
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            errors.append((rbm.reconstruct(data) - data).square().mean().item())
            run.log(layer + 1, recon_err=errors[-1])
            data = rbm.p_h(data)  # the next RBM's data: this layer's hidden probabilities
    return errors


def fine_tune(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> nn.Module:
    """Full-batch Adam on the cross-entropy of the few labelled examples."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


@register_model("dbn", card="dbn", example=lambda: (torch.rand(4, 64),))
def dbn(sizes: tuple[int, ...] = (64, 128, 64), **kw) -> DBN:
    return DBN(sizes, **kw)


# --- dbn/few-labels: pre-training then fine-tuning, against the same MLP from scratch ----------------

@dataclass
class FewLabelsConfig:
    hidden: str = "128,64"  # hidden layer sizes
    labels_per_class: int = 5
    draws: int = 5  # labelled subsets, each fine-tuned from the same pre-trained stack
    pretrain_epochs: int = 30
    pretrain_lr: float = 0.05
    k: int = 1
    finetune_steps: int = 300
    finetune_lr: float = 3e-3


def _labelled_subset(y: torch.Tensor, per_class: int, g: torch.Generator) -> torch.Tensor:
    return torch.cat([(y == c).nonzero()[:, 0][torch.randperm(int((y == c).sum()), generator=g)[:per_class]]
                      for c in range(int(y.max()) + 1)])


@lab(
    "dbn/few-labels",
    card="dbn",
    config=FewLabelsConfig,
    scales={"quick": {"hidden": "32,16", "draws": 1, "pretrain_epochs": 1, "finetune_steps": 20},
            "default": {}, "full": {"hidden": "500,500", "draws": 20, "pretrain_epochs": 100}},
    goals=[Goal("gain", ">", 0.0), Goal("dbn_acc", ">=", 0.7)],
    budget_s=60,
    threads=1,
)
def few_labels(run, cfg: FewLabelsConfig) -> dict:
    """Greedy RBM pre-training on all digits, fine-tuning on 5 labels per class, against training from scratch."""
    data = digits(flatten=True)
    x_train, y_train = data.x_train.to(run.device), data.y_train.to(run.device)  # pixel intensities in [0, 1]
    x_test, y_test = data.x_test.to(run.device), data.y_test.to(run.device)
    sizes = (64, *(int(s) for s in cfg.hidden.split(",")))
    g = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)
    stack = DBN(sizes, g).to(run.device)
    errors = pretrain(run, stack, x_train, cfg.pretrain_epochs, cfg.pretrain_lr, 32, cfg.k, g)  # no labels used

    accs: dict[str, list[float]] = {"dbn": [], "scratch": []}
    for draw in range(cfg.draws):
        idx = _labelled_subset(data.y_train, cfg.labels_per_class, g).to(run.device)
        torch.manual_seed(run.seed * 1000 + draw)  # the same read-out initialisation for both nets
        nets = {"dbn": stack.classifier(10).to(run.device)}
        torch.manual_seed(run.seed * 1000 + draw)
        nets["scratch"] = sigmoid_mlp(sizes, 10).to(run.device)
        for name, net in nets.items():
            fine_tune(net, x_train[idx], y_train[idx], cfg.finetune_steps, cfg.finetune_lr)
            with torch.no_grad():
                accs[name].append((net(x_test).argmax(1) == y_test).float().mean().item())
        run.log(draw, dbn_acc=accs["dbn"][-1], scratch_acc=accs["scratch"][-1])

    dbn_acc = sum(accs["dbn"]) / cfg.draws
    scratch_acc = sum(accs["scratch"]) / cfg.draws
    with run.figure("few_labels") as (fig, ax):
        for i, name in enumerate(("scratch", "dbn")):
            ax.scatter([i] * cfg.draws, accs[name], color=f"C{i}", alpha=0.6)
            ax.bar(i, sum(accs[name]) / cfg.draws, color=f"C{i}", alpha=0.3)
        ax.set(xticks=[0, 1], xticklabels=["from scratch", "DBN pre-trained"], ylabel="test accuracy",
               title=f"{cfg.labels_per_class} labels per class, MLP {'-'.join(map(str, sizes))}-10")
    return {"dbn_acc": dbn_acc, "scratch_acc": scratch_acc, "gain": dbn_acc - scratch_acc,
            "dbn_wins": sum(a > b for a, b in zip(accs["dbn"], accs["scratch"])), "draws": cfg.draws,
            "labels": 10 * cfg.labels_per_class, **{f"recon_err_{i + 1}": e for i, e in enumerate(errors)}}
