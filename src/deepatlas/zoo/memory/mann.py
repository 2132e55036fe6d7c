"""Memory-augmented neural network for one-shot learning: an LSTM controller that learns, across
many episodes, to bind each new sample to its label in an external memory and to look the label
up by content when the class comes back.

Every episode draws a few classes never seen before and gives them labels in a random order.
Samples arrive one at a time and each sample's label arrives one step late, together with the
next sample, so nothing but memory of this episode can tell the label of a class on its second
showing. Writes use least recently used access (LRUA): a write goes either to the row read last
(to update it) or to the least used row (to store something new), mixed by a learned gate;
reads are purely by content.

    w^r_t(i) \\propto \\exp(\\beta_t K(k_t, M_{t-1}(i))),   w^u_t = \\gamma w^u_{t-1} + w^r_t + w^w_t,
    w^w_t = \\sigma(\\alpha) w^r_{t-1} + (1 - \\sigma(\\alpha)) w^{lu}_{t-1},   M_t(i) = M_{t-1}(i) + w^w_t(i) a_t

Santoro, Bartunov, Botvinick, Wierstra & Lillicrap, "One-shot Learning with Memory-Augmented Neural
Networks", arXiv 1605.06065, 2016 (ICML 2016: "Meta-Learning with Memory-Augmented Neural
Networks"). Three changes from the paper, which together let training take off within a CPU
budget (the paper's form stayed near chance for its first thousand steps here): the head writes
its own vector a_t instead of its read key k_t; it reads the memory as the previous step left it,
before this step's write (so a read never merely finds what was just written); and a learned
strength beta sharpens the cosine similarity, as in the NTM. Omniglot
is not available offline, so the lab draws its classes from generated stroke glyphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data import split_seeds
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.recurrent import LSTMCell, Recurrent
from deepatlas.optim.grad import clip_grad_norm_
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.memory.ntm import content_weights


def least_used(usage: torch.Tensor, n: int) -> torch.Tensor:
    """w^{lu}: 1 on the n least used rows, 0 elsewhere: usage (B, N) -> (B, N)."""
    idx = usage.topk(n, dim=-1, largest=False).indices  # (B, n)
    return torch.zeros_like(usage).scatter(-1, idx, 1.0)


def lrua_write(memory: torch.Tensor, w_read_prev: torch.Tensor, w_lu: torch.Tensor, alpha: torch.Tensor,
               a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least recently used access: memory (B, N, M), previous read weights (B, H, N), least used
    rows (B, N), gate logits alpha (B, H, 1), write vectors (B, H, M) -> (memory, write weights (B, H, N))."""
    # w^w_t = \sigma(\alpha) w^r_{t-1} + (1 - \sigma(\alpha)) w^{lu}_{t-1}
    w_write = torch.sigmoid(alpha) * w_read_prev + (1 - torch.sigmoid(alpha)) * w_lu[:, None]
    # the least used rows are cleared first; then M_t(i) = M_{t-1}(i) + \sum_h w^w_t(i) a_t
    return memory * (1 - w_lu)[..., None] + torch.einsum("bhn,bhm->bnm", w_write, a), w_write


class MANN(nn.Module):
    """An LSTM controller with `n_reads` heads over an N x M memory, written by LRUA.

    forward(x (B, T, input_size)) -> logits (B, T, n_classes); the input of step t is the sample
    and the one-hot label of step t - 1."""

    def __init__(self, input_size: int, n_classes: int, hidden: int = 128, n_slots: int = 32,
                 slot_size: int = 40, n_reads: int = 1, decay: float = 0.95):
        super().__init__()
        if min(input_size, n_classes, hidden, n_slots, slot_size, n_reads) < 1 or not 0 <= decay <= 1:
            raise ValueError("MANN sizes must be positive and decay in [0, 1]")
        if n_reads >= n_slots:
            raise ValueError(f"n_reads ({n_reads}) must be smaller than n_slots ({n_slots})")
        self.N, self.M, self.R, self.decay = n_slots, slot_size, n_reads, decay
        self.controller = LSTMCell(input_size + n_reads * slot_size, hidden)
        # per head: read key k, key strength beta, write gate alpha, write vector a
        self.heads = nn.Linear(hidden, n_reads * (2 * slot_size + 2))
        self.out = nn.Linear(hidden + n_reads * slot_size, n_classes)
        with torch.no_grad():  # key strengths start near 10, so that the first reads are already selective
            self.heads.bias.view(n_reads, 2 * slot_size + 2)[:, slot_size] = 10.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, C)
        B, T, _ = x.shape
        N, M, R = self.N, self.M, self.R
        memory = x.new_full((B, N, M), 1e-6)
        w_read = x.new_zeros(B, R, N)
        w_usage = x.new_zeros(B, N)
        r = x.new_zeros(B, R, M)
        state = None
        hs, rs = [], []
        for t in range(T):
            state = self.controller(torch.cat([x[:, t], r.flatten(1)], 1), state)
            p = self.heads(state[0]).view(B, R, 2 * M + 2)
            key, beta, alpha, a = p[..., :M], F.softplus(p[..., M:M + 1]), p[..., M + 1:M + 2], p[..., M + 2:]
            # w^r_t(i) = \mathrm{softmax}_i(\beta K(k_t, M_{t-1}(i))): read what earlier steps wrote
            w_read_now = content_weights(memory, key, beta)  # (B, R, N)
            r = torch.einsum("bhn,bnm->bhm", w_read_now, memory)  # (B, R, M)
            # write where the last step read, or to the least used rows of the last step's usage
            memory, w_write = lrua_write(memory, w_read, least_used(w_usage, R), alpha, a)
            w_read = w_read_now
            # w^u_t = \gamma w^u_{t-1} + w^r_t + w^w_t
            w_usage = self.decay * w_usage + w_read.sum(1) + w_write.sum(1)
            hs.append(state[0])
            rs.append(r.flatten(1))
        return self.out(torch.cat([torch.stack(hs, 1), torch.stack(rs, 1)], 2))


@register_model("mann", card="mann", example=lambda: (torch.rand(2, 6, 105),))
def mann(input_size: int = 105, n_classes: int = 5, **kw) -> MANN:
    return MANN(input_size, n_classes, **kw)


# --- data: classes of generated stroke glyphs -----------------------------------------------------

def glyph_classes(n: int, g: torch.Generator, size: int = 10, strokes: int = 3) -> torch.Tensor:
    """n new classes, each a few straight strokes on a size x size canvas: endpoints (n, strokes, 2, 2)."""
    return torch.rand(n, strokes, 2, 2, generator=g) * (size - 1)


def draw(ends: torch.Tensor, g: torch.Generator, size: int = 10, jitter: float = 0.5) -> torch.Tensor:
    """One handwritten-like instance of each class: endpoints (..., S, 2, 2) -> images (..., size * size).

    Every endpoint moves by about `jitter` pixels, so two instances of a class overlap much more
    than two classes do, but rarely exactly (cosine 0.6 against 0.26 on average)."""
    ends = ends + jitter * torch.randn(ends.shape, generator=g)
    t = torch.linspace(0, 1, 2 * size)[:, None]  # (P, 1) points along each stroke
    points = ends[..., 0, None, :] + t * (ends[..., 1, None, :] - ends[..., 0, None, :])  # (..., S, P, 2)
    pixel = points.round().clamp(0, size - 1).long()
    flat = (pixel[..., 0] * size + pixel[..., 1]).flatten(-2)  # (..., S * P)
    return torch.zeros(*flat.shape[:-1], size * size).scatter_(-1, flat, 1.0)


def episodes(B: int, n_classes: int, length: int, g: torch.Generator, size: int = 10):
    """B episodes of `length` steps over n_classes fresh glyph classes, labelled 0..n_classes-1 at random.

    Returns x (B, T, size^2 + n_classes): the sample and the previous step's one-hot label;
    y (B, T) the labels; shown (B, T) which presentation of its class each step is (1 = first)."""
    classes = glyph_classes(B * n_classes, g, size).view(B, n_classes, -1, 2, 2)
    y = torch.randint(0, n_classes, (B, length), generator=g)
    images = draw(classes[torch.arange(B)[:, None], y], g, size)  # (B, T, size^2)
    previous = F.one_hot(y, n_classes).float().roll(1, dims=1)
    previous[:, 0] = 0  # no label before the first sample
    shown = (F.one_hot(y, n_classes).cumsum(1) * F.one_hot(y, n_classes)).sum(-1)  # (B, T)
    return torch.cat([images, previous], -1), y, shown


# --- mann/few-shot: one-shot labels of never-seen classes -------------------------------------

class LSTMBaseline(nn.Module):
    """The paper's baseline: an LSTM on the same inputs, with no external memory."""

    def __init__(self, input_size: int, n_classes: int, hidden: int = 128):
        super().__init__()
        self.lstm = Recurrent("lstm", input_size, hidden, fused=True)  # our LSTM, run by torch's fused kernel
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, C)
        return self.out(self.lstm(x)[0])


@dataclass
class FewShotConfig:
    n_classes: int = 5  # per episode
    length: int = 25  # steps per episode: each class shows up about five times
    steps: int = 800
    batch: int = 64  # episodes per step
    lr: float = 3e-3  # Adam
    clip: float = 10.0
    hidden: int = 128
    n_slots: int = 32
    slot_size: int = 40
    n_test: int = 1000  # test episodes, of classes drawn from the test seed
    max_shown: int = 5  # accuracies are reported for presentations 1..max_shown


def accuracy_by_presentation(right: torch.Tensor, shown: torch.Tensor, max_shown: int) -> list[float]:
    """Accuracy on the k-th presentation of a class, k = 1..max_shown: right and shown (B, T)."""
    return [right[shown == k].float().mean().item() for k in range(1, max_shown + 1)]


@lab(
    "mann/few-shot",
    card="mann",
    config=FewShotConfig,
    scales={
        "quick": {"steps": 10, "batch": 8, "n_test": 32},
        "default": {},
        "full": {"steps": 10000, "length": 50, "max_shown": 10, "n_slots": 128},
    },
    goals=[Goal("mann_acc_later", ">=", 0.7)],
    claims=[
        Check(
            "mann-few-shot",
            lambda m: m["mann_acc_later"] >= 2 * m["chance"] and m["mann_acc_later"] >= m["lstm_acc_later"] + 0.1,
            "{n_classes}-way episodes of never-seen glyph classes, labels one step late: the MANN labels a class "
            "right {mann_acc_1:.2f} of the time on its first showing (a guess) and {mann_acc_2:.2f} on its second "
            "({mann_acc_later:.2f} over showings 2-{max_shown}); the same LSTM without memory {lstm_acc_1:.2f}, "
            "{lstm_acc_2:.2f} and {lstm_acc_later:.2f}; chance {chance:.2f}, {steps} steps of {batch} episodes "
            "each. Rule: showings 2-{max_shown} at least twice chance and 0.1 above the LSTM",
        ),
    ],
    budget_s=90,
    threads=1,
)
def few_shot(run, cfg: FewShotConfig) -> dict:
    """MANN against an LSTM on one-shot labelling of new glyph classes, labels given one step late."""
    torch.manual_seed(run.seed)
    train_seed, test_seed = split_seeds(run.seed)
    size = 10
    x_test, y_test, shown_test = (t.to(run.device) for t in episodes(
        cfg.n_test, cfg.n_classes, cfg.length, torch.Generator().manual_seed(test_seed), size))
    input_size = size * size + cfg.n_classes
    nets = {"mann": MANN(input_size, cfg.n_classes, cfg.hidden, cfg.n_slots, cfg.slot_size),
            "lstm": LSTMBaseline(input_size, cfg.n_classes, cfg.hidden)}
    metrics: dict = {"n_classes": cfg.n_classes, "chance": 1 / cfg.n_classes, "max_shown": cfg.max_shown,
                     "steps": cfg.steps, "batch": cfg.batch}
    curves = {}
    for name, net in nets.items():
        net.to(run.device)
        g = torch.Generator().manual_seed(train_seed)  # both see the same episodes
        opt = Adam(net.parameters(), lr=cfg.lr)
        total = torch.zeros((), device=run.device)
        for step in run.progress(range(cfg.steps), desc=name):
            x, y, _ = (t.to(run.device) for t in episodes(cfg.batch, cfg.n_classes, cfg.length, g, size))
            # \mathcal{L} = -\sum_t \log p(y_t \mid x_{\le t}, y_{< t})
            loss = F.cross_entropy(net(x).flatten(0, 1), y.flatten())
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(net.parameters(), cfg.clip)
            opt.step()
            total += loss.detach()
            if (step + 1) % 50 == 0:
                run.log(step + 1, **{f"{name}_loss": total / 50})
                total.zero_()
        with torch.no_grad():
            right = net(x_test).argmax(-1).eq(y_test)  # (n_test, T)
        curves[name] = accuracy_by_presentation(right, shown_test, cfg.max_shown)
        for k, acc in enumerate(curves[name], start=1):
            metrics[f"{name}_acc_{k}"] = acc
        metrics[f"{name}_acc_later"] = right[(shown_test >= 2) & (shown_test <= cfg.max_shown)].float().mean().item()

    with run.figure("few_shot", ncols=2, size=(10, 3.8)) as (fig, (ax, ax_img)):
        shows = range(1, cfg.max_shown + 1)
        for name, accs in curves.items():
            ax.plot(shows, accs, "o-", label=name.upper())
        ax.axhline(1 / cfg.n_classes, color="grey", ls="--", lw=1, label="chance")
        ax.set(xlabel="presentation of the class in the episode", ylabel="test accuracy", ylim=(0, 1), xticks=shows,
               title=f"{cfg.n_classes}-way, never-seen classes")
        ax.legend()
        grid = x_test[0, :10, :size * size].reshape(10, size, size).cpu()
        ax_img.imshow(torch.cat(list(grid), 1).numpy(), cmap="gray_r")
        labels = " ".join(map(str, y_test[0, :10].tolist()))
        ax_img.set(xticks=[], yticks=[], title=f"one test episode, labels {labels}")
    return metrics
