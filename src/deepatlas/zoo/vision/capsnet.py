"""Capsule network: groups of neurons whose output vector's length is the probability that an entity
is present and whose direction describes it; higher capsules are chosen by routing by agreement.

Every primary capsule i predicts each digit capsule j through its own matrix, \\hat u_{j|i} = W_{ij} u_i.
Dynamic routing then sends i's output mostly to the parents whose output agrees with i's
prediction: coupling coefficients c_ij (a softmax over parents) are recomputed r times per input
from the agreement \\hat u_{j|i} \\cdot v_j. A squash keeps every capsule's length below 1.

    v_j = \\frac{\\|s_j\\|^2}{1 + \\|s_j\\|^2} \\frac{s_j}{\\|s_j\\|},  s_j = \\sum_i c_{ij} \\hat u_{j|i},
    c_{ij} = \\mathrm{softmax}_j(b_{ij}),  b_{ij} \\leftarrow b_{ij} + \\hat u_{j|i} \\cdot v_j

Sabour, Frosst & Hinton, "Dynamic Routing Between Capsules", NIPS 2017. The paper's net (256
convolution channels, 32 types of 8-D primary capsules, 1152 primary capsules) is scaled down in
its labs to 32 channels and 4 types (144 primary capsules) so that it trains on a CPU in a minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Shrink a vector's length into [0, 1) and keep its direction; a zero vector stays zero."""
    sq = s.square().sum(dim, keepdim=True)  # \|s\|^2
    # v = \frac{\|s\|^2}{1 + \|s\|^2} \frac{s}{\|s\|}
    return sq / (1 + sq) * s / (sq + eps).sqrt()


def dynamic_routing(u_hat: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Routing by agreement (the paper's Procedure 1).

    u_hat (B, N_out, N_in, D): every child's prediction for every parent (parents first, so that the
    sums over children are batched matrix products). Returns the parents' outputs v (B, N_out, D) and
    the coupling coefficients c (B, N_in, N_out) of the last iteration; each child's c sums to 1
    over the parents. One iteration leaves c uniform."""
    if iterations < 1:
        raise ValueError(f"routing needs at least one iteration, got {iterations}")
    b = u_hat.new_zeros(u_hat.shape[:3])  # (B, N_out, N_in) log priors b_ij, 0 at the start
    for it in range(iterations):
        # c_{ij} = \exp b_{ij} / \sum_k \exp b_{ik}
        c = torch.softmax(b, dim=1)
        # s_j = \sum_i c_{ij} \hat u_{j|i}
        s = (c[:, :, None, :] @ u_hat)[:, :, 0]  # (B, N_out, 1, N_in) @ (B, N_out, N_in, D) -> (B, N_out, D)
        v = squash(s)
        if it < iterations - 1:
            # b_{ij} \leftarrow b_{ij} + \hat u_{j|i} \cdot v_j
            b = b + (u_hat @ v[..., None])[..., 0]  # (B, N_out, N_in)
    return v, c.transpose(1, 2)


def margin_loss(lengths: torch.Tensor, target: torch.Tensor, m_plus: float = 0.9, m_minus: float = 0.1,
                lam: float = 0.5) -> torch.Tensor:
    """Sum over classes of the paper's margin loss, averaged over the batch. lengths (B, K), target (B,)."""
    t = F.one_hot(target, lengths.shape[1]).to(lengths.dtype)  # T_k
    # L_k = T_k \max(0, m^+ - \|v_k\|)^2 + \lambda (1 - T_k) \max(0, \|v_k\| - m^-)^2
    loss = t * F.relu(m_plus - lengths).square() + lam * (1 - t) * F.relu(lengths - m_minus).square()
    return loss.sum(1).mean()


class CapsNet(nn.Module):
    """Conv (9x9, ReLU) -> PrimaryCaps (9x9 conv, stride 2, grouped into `primary_dim`-D capsules,
    squashed) -> DigitCaps (`num_classes` capsules of `digit_dim` D, by dynamic routing).

    forward returns the digit capsules' lengths (B, num_classes): probabilities in [0, 1), not logits;
    train them with `margin_loss`. With reconstruction=True a decoder rebuilds the image from the
    target class's capsule (`reconstruct`), as the paper's regulariser."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, conv_channels: int = 32,
                 primary_types: int = 4, primary_dim: int = 8, digit_dim: int = 16, routing_iterations: int = 3,
                 reconstruction: bool = False):
        super().__init__()
        grid = ((image_size - 8) - 9) // 2 + 1  # after the 9x9 conv and the 9x9 stride-2 conv
        if grid < 1:
            raise ValueError(f"images of side {image_size} are too small for two 9x9 convolutions (need >= 25)")
        if routing_iterations < 1:
            raise ValueError(f"routing_iterations must be at least 1, got {routing_iterations}")
        self.primary_types, self.primary_dim, self.routing_iterations = primary_types, primary_dim, routing_iterations
        self.image_shape = (in_channels, image_size, image_size)
        self.conv1 = nn.Conv2d(in_channels, conv_channels, 9)
        self.primary = nn.Conv2d(conv_channels, primary_types * primary_dim, 9, stride=2)
        self.n_primary = primary_types * grid * grid
        # W_{ij}: one (digit_dim x primary_dim) matrix for every (primary capsule i, digit capsule j)
        self.W = nn.Parameter(torch.randn(self.n_primary, num_classes, digit_dim, primary_dim) / math.sqrt(primary_dim))
        self.decoder = nn.Sequential(
            nn.Linear(num_classes * digit_dim, 512), nn.ReLU(), nn.Linear(512, 1024), nn.ReLU(),
            nn.Linear(1024, math.prod(self.image_shape)), nn.Sigmoid(),
        ) if reconstruction else None

    def predictions(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> every primary capsule's prediction for every digit capsule, (B, K, N_in, digit_dim)."""
        h = F.relu(self.conv1(x))  # (B, conv_channels, 20, 20)
        p = self.primary(h)  # (B, types * dim, 6, 6)
        B, _, gh, gw = p.shape
        u = p.view(B, self.primary_types, self.primary_dim, gh * gw).transpose(2, 3)  # (B, types, 36, dim)
        u = squash(u.reshape(B, self.n_primary, self.primary_dim))  # u_i, (B, N_in, dim)
        # \hat u_{j|i} = W_{ij} u_i
        return torch.einsum("ijdk,bik->bjid", self.W, u)

    def capsules(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) -> digit capsules v (B, K, digit_dim) and coupling coefficients c (B, N_in, K)."""
        return dynamic_routing(self.predictions(x), self.routing_iterations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K) capsule lengths
        v, _ = self.capsules(x)
        return v.norm(dim=-1)

    def reconstruct(self, v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Rebuild the image from the capsule of class `target` (the others masked to zero): (B, C, H, W)."""
        if self.decoder is None:
            raise ValueError("this CapsNet was built without a decoder; pass reconstruction=True")
        keep = F.one_hot(target, v.shape[1]).to(v.dtype)[..., None]  # (B, K, 1)
        return self.decoder((v * keep).flatten(1)).view(-1, *self.image_shape)


@register_model("capsnet", card="capsnet", example=lambda: (torch.randn(2, 1, 28, 28),))
def capsnet(**kw) -> CapsNet:
    return CapsNet(**kw)


def shift(x: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Translate every image by its own random offset of up to `max_shift` pixels, filling with zeros
    (the paper's only augmentation, 2 pixels)."""
    B, _, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    oy, ox = (torch.randint(0, 2 * max_shift + 1, (2, B), generator=g)).to(x.device)
    rows = (oy[:, None] + torch.arange(H, device=x.device))[:, :, None]  # (B, H, 1)
    cols = (ox[:, None] + torch.arange(W, device=x.device))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(B, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


# --- capsnet/mnist and capsnet/routing-iterations ------------------------------------------------

@dataclass
class MnistConfig:
    epochs: int = 6
    batch_size: int = 32
    lr: float = 2e-3  # Adam, cosine-annealed to 0
    n_train: int = 4000
    routing_iterations: int = 3
    conv_channels: int = 32
    primary_types: int = 4
    reconstruction: bool = True
    recon_weight: float = 0.0005  # times the summed squared error, as in the paper
    max_shift: int = 1  # random translations of up to this many pixels (the paper: 2)


def train_capsnet(run, net: CapsNet, data, cfg, g: torch.Generator, name: str = "capsnet") -> list[float]:
    """Adam on margin loss (+ reconstruction) with random shifts; returns the mean loss of every epoch."""
    x, y = data.x_train[:cfg.n_train].to(run.device), data.y_train[:cfg.n_train].to(run.device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps_per_epoch = len(x) // cfg.batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    losses = []
    for epoch in run.progress(range(cfg.epochs), desc=name):
        order = torch.randperm(len(x), generator=g).to(run.device)
        total = torch.zeros((), device=run.device)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            xb, yb = shift(x[idx], cfg.max_shift, g), y[idx]
            v, _ = net.capsules(xb)
            loss = margin_loss(v.norm(dim=-1), yb)
            if net.decoder is not None:
                # \mathcal{L} = \mathcal{L}_{margin} + 0.0005 \sum_{pixels} (x - \hat x)^2
                loss = loss + cfg.recon_weight * (net.reconstruct(v, yb) - xb).square().flatten(1).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.detach()
        losses.append(total.item() / steps_per_epoch)
        run.log((epoch + 1) * steps_per_epoch, **{f"{name}_loss": losses[-1]})
    return losses


@torch.no_grad()
def evaluate(net: CapsNet, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Test accuracy, capsule lengths, and how routing coupled children to the active (longest) parent."""
    out = {"correct": 0.0, "true_len": 0.0, "other_len": 0.0, "max_len": 0.0, "c_max": 0.0, "c_entropy": 0.0,
           "c_winner": 0.0, "agree_active": 0.0, "agree_inactive": 0.0, "pred_len": 0.0}
    for xb, yb in zip(x.split(250), y.split(250)):
        u_hat = net.predictions(xb)  # (B, K, N_in, D)
        v, c = dynamic_routing(u_hat, net.routing_iterations)
        lengths = v.norm(dim=-1)  # (B, K)
        pred = lengths.argmax(1)
        active = F.one_hot(pred, lengths.shape[1]).bool()  # (B, K)
        truth = F.one_hot(yb, lengths.shape[1]).bool()
        # agreement of the predictions for parent j: R_j = \|\sum_i \hat u_{j|i}\| / \sum_i \|\hat u_{j|i}\|
        agree = u_hat.sum(2).norm(dim=-1) / u_hat.norm(dim=-1).sum(2)  # (B, K), 1 when all point alike
        out["correct"] += (pred == yb).sum().item()
        out["true_len"] += lengths[truth].sum().item()
        out["other_len"] += lengths[~truth].sum().item() / (lengths.shape[1] - 1)
        out["max_len"] = max(out["max_len"], lengths.max().item())
        out["c_max"] += c.max(2).values.mean(1).sum().item()
        out["c_entropy"] += (-(c * c.clamp_min(1e-12).log()).sum(2) / math.log(c.shape[2])).mean(1).sum().item()
        out["c_winner"] += c.gather(2, pred[:, None, None].expand(-1, c.shape[1], 1)).mean((1, 2)).sum().item()
        out["agree_active"] += agree[active].sum().item()
        out["agree_inactive"] += agree[~active].sum().item() / (lengths.shape[1] - 1)
        out["pred_len"] += u_hat.norm(dim=-1).mean((1, 2)).sum().item()
    n = len(x)
    return {("test_acc" if key == "correct" else key): (value if key == "max_len" else value / n)
            for key, value in out.items()}


def _make(cfg, routing_iterations: int) -> CapsNet:
    return CapsNet(conv_channels=cfg.conv_channels, primary_types=cfg.primary_types,
                   routing_iterations=routing_iterations, reconstruction=cfg.reconstruction)


@lab(
    "capsnet/mnist",
    card="capsnet",
    config=MnistConfig,
    scales={
        "quick": {"epochs": 1, "n_train": 128, "conv_channels": 8, "primary_types": 2},
        "default": {},
        "full": {"epochs": 30, "conv_channels": 256, "primary_types": 32},
    },
    goals=[Goal("test_acc", ">=", 0.97)],
    claims=[
        Check(
            "capsnet-length-probability",
            lambda m: m["max_len"] < 1 and m["true_len"] >= 0.5 > m["other_len"] and m["test_acc"] >= 0.97,
            "the longest digit capsule names the digit for {test_acc:.3f} of 1,000 held-out MNIST digits; every "
            "capsule length stays below 1 (largest {max_len:.3f}); the true digit's capsule is {true_len:.3f} "
            "long on average, the other nine {other_len:.3f} ({n_primary} primary capsules, r = "
            "{routing_iterations}, {epochs} epochs on {n_train} images)",
        ),
    ],
    budget_s=90,
    threads=1,  # measured: these small convolutions ran ~25x slower on 2 threads than on 1 with the cores shared
)
def mnist(run, cfg: MnistConfig) -> dict:
    """CapsNet on the MNIST subset: test accuracy of at least 0.97."""
    data = mnist_subset(flatten=False)
    g = torch.Generator().manual_seed(run.seed)
    net = _make(cfg, cfg.routing_iterations).to(run.device)
    losses = train_capsnet(run, net, data, cfg, g)
    metrics = evaluate(net, data.x_test.to(run.device), data.y_test.to(run.device))
    _plot_mnist(run, net, data.x_test[:8].to(run.device), data.y_test[:8].to(run.device), losses)
    return {**metrics, "final_loss": losses[-1], "n_primary": net.n_primary, "epochs": cfg.epochs,
            "n_train": cfg.n_train, "routing_iterations": cfg.routing_iterations,
            "n_params": sum(p.numel() for p in net.parameters())}


def _plot_mnist(run, net: CapsNet, x: torch.Tensor, y: torch.Tensor, losses: list[float]) -> None:
    with torch.no_grad():
        v, _ = net.capsules(x)
        lengths = v.norm(dim=-1).cpu()  # (8, 10)
        recon = net.reconstruct(v, v.norm(dim=-1).argmax(1)).cpu() if net.decoder is not None else None
    rows = 3 if recon is not None else 2
    with run.figure("capsules", ncols=len(x), nrows=rows, size=(1.8 * len(x), 2.0 * rows)) as (fig, axes):
        axes = axes.reshape(rows, len(x))
        for k in range(len(x)):
            axes[0, k].imshow(x[k, 0].cpu().numpy(), cmap="gray")
            axes[0, k].set_title(f"digit {y[k].item()}")
            axes[1, k].bar(range(10), lengths[k].tolist(), color=["C3" if j == y[k] else "C0" for j in range(10)])
            axes[1, k].set(ylim=(0, 1), xticks=range(10))
            axes[1, k].tick_params(labelsize=6)
            if recon is not None:
                axes[2, k].imshow(recon[k, 0].numpy(), cmap="gray")
            for ax in axes[::2, k]:
                ax.set_xticks([])
                ax.set_yticks([])
        axes[1, 0].set_ylabel("capsule length")
        if recon is not None:
            axes[2, 0].set_ylabel("reconstruction")


@dataclass
class RoutingConfig(MnistConfig):
    iterations: str = "1,2,3"  # the routing iterations r to train a net with, one net each
    epochs: int = 4
    n_train: int = 2000
    reconstruction: bool = False


@lab(
    "capsnet/routing-iterations",
    card="capsnet",
    config=RoutingConfig,
    scales={
        "quick": {"iterations": "1,3", "epochs": 1, "n_train": 128, "conv_channels": 8, "primary_types": 2},
        "default": {},
        "full": {"iterations": "1,2,3,5", "epochs": 20, "n_train": 4000, "reconstruction": True,
                 "conv_channels": 256, "primary_types": 32},
    },
    claims=[
        Check(
            "capsnet-routing-agreement",
            lambda m: m["agree_active_r3"] >= 2 * m["agree_inactive_r3"] and m["c_winner_r3"] >= 1.5 / 10,
            "with r = 3 the incoming predictions of the active (longest) digit capsule agree with resultant "
            "length {agree_active_r3:.3f} against {agree_inactive_r3:.3f} for the others (supported needs at least "
            "twice), and routing gives the active capsule a mean coupling coefficient of {c_winner_r3:.3f} against "
            "the uniform 0.100 of r = 1 (supported needs >= 0.150); mean largest c of a child {c_max_r3:.3f}, "
            "normalised entropy of c {c_entropy_r3:.3f}, mean prediction length |u_hat| {pred_len_r3:.3f} (it bounds "
            "each update of b). Test accuracy r = 1: {acc_r1:.3f}, r = 3: {acc_r3:.3f} ({epochs} epochs on "
            "{n_train} images)",
        ),
    ],
    budget_s=90,
    threads=1,  # measured: these small convolutions ran ~25x slower on 2 threads than on 1 with the cores shared
)
def routing_iterations(run, cfg: RoutingConfig) -> dict:
    """Routing iterations r = 1, 2, 3: accuracy, and how far routing concentrates the coupling coefficients."""
    iterations = [int(r) for r in cfg.iterations.split(",")]
    if not {1, 3} <= set(iterations) or min(iterations) < 1:
        raise ValueError(f"iterations must be positive and include 1 (uniform coupling) and 3 (the paper's), "
                         f"got {cfg.iterations!r}")
    data = mnist_subset(flatten=False)
    x_test, y_test = data.x_test.to(run.device), data.y_test.to(run.device)
    metrics: dict = {"epochs": cfg.epochs, "n_train": cfg.n_train}
    for r in run.progress(iterations, desc="routing iterations"):
        g = torch.Generator().manual_seed(run.seed)
        torch.manual_seed(run.seed)  # the same initial weights for every r
        net = _make(cfg, r).to(run.device)
        train_capsnet(run, net, data, cfg, g, name=f"r{r}")
        m = evaluate(net, x_test, y_test)
        metrics.update({f"{'acc' if k == 'test_acc' else k}_r{r}": v for k, v in m.items()})
    with run.figure("routing", ncols=3) as (fig, (ax_acc, ax_c, ax_agree)):
        ax_acc.plot(iterations, [metrics[f"acc_r{r}"] for r in iterations], "o-")
        ax_acc.set(xlabel="routing iterations r", ylabel="test accuracy", xticks=iterations, title="accuracy")
        ax_c.plot(iterations, [metrics[f"c_winner_r{r}"] for r in iterations], "o-", label="c to the active parent")
        ax_c.plot(iterations, [metrics[f"c_max_r{r}"] for r in iterations], "s-", label="largest c of a child")
        ax_c.axhline(0.1, color="grey", ls="--", lw=1, label="uniform 1/10")
        top = max(metrics[f"c_max_r{r}"] for r in iterations)
        ax_c.set(xlabel="routing iterations r", ylabel="mean coupling", xticks=iterations,
                 ylim=(0, max(0.3, 1.1 * top)), title="coupling (1 = all to one parent)")
        ax_c.legend(fontsize=8)
        ax_agree.plot(iterations, [metrics[f"agree_active_r{r}"] for r in iterations], "o-", label="active parent")
        ax_agree.plot(iterations, [metrics[f"agree_inactive_r{r}"] for r in iterations], "s-", label="others")
        ax_agree.set(xlabel="routing iterations r", ylabel="resultant length of predictions", xticks=iterations,
                     title="agreement of predictions")
        ax_agree.legend(fontsize=8)
    return metrics
