"""Neural Turing machine: a recurrent controller that reads and writes an external memory matrix
through soft, differentiable heads.

Each head emits a weighting w_t over the N memory rows. It starts from content (rows similar to a
key), may fall back to the previous weighting (interpolation), moves it by a small circular shift
and sharpens it again, so the same head can look things up by content or step through memory
like a tape. Reading is a weighted sum of rows; writing first erases, then adds, row by row in
proportion to the weighting. Everything is differentiable, so the controller learns to use the
memory by gradient descent from input-output examples alone.

    w_t^c(i) \\propto \\exp(\\beta_t K[k_t, M_t(i)]),   w^g = g w^c + (1 - g) w_{t-1},
    \\tilde w(i) = \\sum_j w^g(j) s(i - j),   w(i) \\propto \\tilde w(i)^{\\gamma},
    M_t(i) = M_{t-1}(i) [1 - w_t(i) e_t] + w_t(i) a_t,   r_t = \\sum_i w_t(i) M_t(i)

Graves, Wayne & Danihelka, "Neural Turing Machines", arXiv 1410.5401, 2014. Here every head
addresses the memory as the previous step left it and reads before the write head writes, so that
all heads can be addressed in one batched call. The lab follows the paper's copy task and its
finding that the NTM generalises to longer sequences than an LSTM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data import split_seeds
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.recurrent import LSTMCell, Recurrent
from deepatlas.optim.grad import clip_grad_norm_
from deepatlas.optim.optimizers import Adam
from deepatlas.optim.schedules import StepLR
from deepatlas.registry import register_model

EPS = 1e-8


# --- addressing ---------------------------------------------------------------------------------

def content_weights(memory: torch.Tensor, key: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Content addressing: memory (B, N, M), key (B, H, M), beta (B, H, 1) -> weights (B, H, N)."""
    # K[u, v] = \frac{u \cdot v}{\lVert u \rVert \lVert v \rVert}
    similarity = torch.einsum("bhm,bnm->bhn", key, memory) / (
        key.norm(dim=-1, keepdim=True) * memory.norm(dim=-1)[:, None, :] + EPS)  # (B, H, N)
    # w^c(i) = \frac{\exp(\beta K[k, M(i)])}{\sum_j \exp(\beta K[k, M(j)])}
    return torch.softmax(beta * similarity, dim=-1)


def shift(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Circular convolution of w (B, H, N) with a shift distribution s (B, H, 2R+1) over -R..R."""
    radius = s.shape[-1] // 2
    # \tilde w(i) = \sum_j w(j)\, s(i - j)   (roll by +1 moves the focus one row forward)
    return sum(s[..., k:k + 1] * torch.roll(w, k - radius, dims=-1) for k in range(s.shape[-1]))


def sharpen(w: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """w (B, H, N) raised to gamma (B, H, 1) >= 1 and renormalised, undoing the blur of the shift."""
    # w(i) = \frac{\tilde w(i)^{\gamma}}{\sum_j \tilde w(j)^{\gamma}}
    w = (w + EPS) ** gamma
    return w / w.sum(-1, keepdim=True)


def address(memory, w_prev, key, beta, g, s, gamma) -> torch.Tensor:
    """The NTM's four addressing steps: content, interpolation, shift, sharpening -> (B, H, N)."""
    w_c = content_weights(memory, key, beta)
    # w^g = g\, w^c + (1 - g)\, w_{t-1}
    w_g = g * w_c + (1 - g) * w_prev
    return sharpen(shift(w_g, s), gamma)


def write(memory: torch.Tensor, w: torch.Tensor, erase: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """Erase, then add: memory (B, N, M), w (B, H, N), erase and add (B, H, M) -> memory (B, N, M)."""
    # M(i) \leftarrow M(i) \prod_h [1 - w_h(i) e_h]
    keep = torch.prod(1 - w[..., None] * erase[:, :, None, :], dim=1)  # (B, N, M)
    # M(i) \leftarrow M(i) + \sum_h w_h(i)\, a_h
    return memory * keep + torch.einsum("bhn,bhm->bnm", w, add)


def read(memory: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """r = sum_i w(i) M(i): memory (B, N, M), w (B, H, N) -> (B, H, M)."""
    return torch.einsum("bhn,bnm->bhm", w, memory)


# --- the machine --------------------------------------------------------------------------------

class NTM(nn.Module):
    """An LSTM controller with `n_reads` read heads and one write head over an N x M memory.

    All heads address the memory of the previous step together (read, then write). forward(x (B, T,
    input_size)) -> logits (B, T, output_size); `self.trace` keeps the write and first read
    weightings of the last call, (B, T, N) each, for plots."""

    def __init__(self, input_size: int, output_size: int, hidden: int = 100, n_slots: int = 32,
                 slot_size: int = 16, n_reads: int = 1, shift_radius: int = 1):
        super().__init__()
        if min(input_size, output_size, hidden, n_slots, slot_size, n_reads) < 1 or shift_radius < 0:
            raise ValueError("NTM sizes must be positive and shift_radius >= 0")
        self.N, self.M, self.R = n_slots, slot_size, n_reads
        self.n_shifts = 2 * shift_radius + 1
        self.per_head = slot_size + 3 + self.n_shifts  # key, beta, g, gamma, shift
        self.controller = LSTMCell(input_size + n_reads * slot_size, hidden)
        # one layer emits every head's parameters: write head first, then the read heads, then erase and add
        self.heads = nn.Linear(hidden, (1 + n_reads) * self.per_head + 2 * slot_size)
        self.out = nn.Linear(hidden + n_reads * slot_size, output_size)
        self.trace: dict[str, torch.Tensor] = {}

    def _split(self, params: torch.Tensor):
        """Raw head outputs (B, 1 + R, per_head) as addressing parameters in their ranges."""
        M, S = self.M, self.n_shifts
        key = params[..., :M]
        beta = F.softplus(params[..., M:M + 1])  # \beta \ge 0
        g = torch.sigmoid(params[..., M + 1:M + 2])  # g \in (0, 1)
        gamma = 1 + F.softplus(params[..., M + 2:M + 3])  # \gamma \ge 1
        s = torch.softmax(params[..., M + 3:M + 3 + S], dim=-1)
        return key, beta, g, s, gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, O)
        B, T, _ = x.shape
        memory = x.new_full((B, self.N, self.M), 1e-6)  # M_0: small and uniform
        w = x.new_zeros(B, 1 + self.R, self.N)
        w[:, :, 0] = 1.0  # every head starts on row 0, so that shifts have a place to start from
        r = x.new_zeros(B, self.R, self.M)
        state = None
        hs, rs, ws = [], [], []
        for t in range(T):
            state = self.controller(torch.cat([x[:, t], r.flatten(1)], 1), state)  # (h, c), (B, hidden) each
            p = self.heads(state[0])  # (B, (1 + R) * per_head + 2M)
            w = address(memory, w, *self._split(p[:, :-2 * self.M].view(B, 1 + self.R, -1)))  # (B, 1 + R, N)
            r = read(memory, w[:, 1:])  # (B, R, M)
            erase = torch.sigmoid(p[:, None, -2 * self.M:-self.M])  # e_t \in (0, 1)^M, (B, 1, M)
            add = torch.tanh(p[:, None, -self.M:])  # a_t, (B, 1, M)
            memory = write(memory, w[:, :1], erase, add)
            hs.append(state[0])
            rs.append(r.flatten(1))
            ws.append(w[:, :2].detach())
        trace = torch.stack(ws, 1)  # (B, T, 2, N)
        self.trace = {"write": trace[:, :, 0], "read": trace[:, :, 1]}
        return self.out(torch.cat([torch.stack(hs, 1), torch.stack(rs, 1)], 2))


@register_model("ntm", card="ntm", example=lambda: (torch.rand(2, 5, 9),))
def ntm(input_size: int = 9, output_size: int = 8, **kw) -> NTM:
    return NTM(input_size, output_size, **kw)


# --- ntm/copy: copy a sequence of random bit vectors, then copy one twice as long ------------------

def copy_batch(B: int, length: int, bits: int, g: torch.Generator, device=None):
    """The copy task: x (B, 2L + 1, bits + 1) shows L random bit vectors, then a delimiter on the
    extra channel, then L blank steps during which the model must write the vectors back;
    y (B, L, bits) is what it must write."""
    y = torch.bernoulli(torch.full((B, length, bits), 0.5), generator=g)
    x = torch.zeros(B, 2 * length + 1, bits + 1)
    x[:, :length, :bits] = y
    x[:, length, bits] = 1.0  # the delimiter
    return x.to(device), y.to(device)


class LSTMBaseline(nn.Module):
    """The baseline the paper compares with: an LSTM reading the same inputs, a linear read-out."""

    def __init__(self, input_size: int, output_size: int, hidden: int = 256):
        super().__init__()
        self.lstm = Recurrent("lstm", input_size, hidden, fused=True)  # our LSTM, run by torch's fused kernel
        self.out = nn.Linear(hidden, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, O)
        return self.out(self.lstm(x)[0])


def bit_errors(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Wrong bits per sequence (B,) when the model's outputs after the delimiter are thresholded."""
    logits = net(x)[:, -y.shape[1]:]  # (B, L, bits)
    return ((logits > 0).to(y.dtype) != y).sum((1, 2)).to(torch.float32)


@dataclass
class CopyConfig:
    bits: int = 8
    max_len: int = 10  # training lengths are 1..max_len
    test_len: int = 20
    steps: int = 900  # each model sees the same 900 batches
    batch: int = 32
    lr: float = 3e-3  # Adam, divided by 10 for the last quarter of the steps to settle the memory models
    clip: float = 10.0  # gradient norm
    hidden: int = 100  # controllers
    n_slots: int = 32
    slot_size: int = 16
    lstm_hidden: int = 256
    n_test: int = 200  # test sequences per length


def train_copy(run, name: str, net: nn.Module, cfg: CopyConfig, g: torch.Generator) -> float:
    """Adam on the copy task with lengths 1..max_len, one length per batch; returns seconds taken."""
    opt = Adam(net.parameters(), lr=cfg.lr)
    schedule = StepLR(opt, step_size=max(1, cfg.steps * 3 // 4), gamma=0.1)
    start = time.perf_counter()
    total = torch.zeros((), device=run.device)
    for step in run.progress(range(cfg.steps), desc=f"{name} on copy"):
        length = int(torch.randint(1, cfg.max_len + 1, (1,), generator=g))
        x, y = copy_batch(cfg.batch, length, cfg.bits, g, run.device)
        # \mathcal{L} = \mathrm{BCE}(\sigma(\text{logits}), y) over the answer steps
        loss = F.binary_cross_entropy_with_logits(net(x)[:, -length:], y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(net.parameters(), cfg.clip)
        opt.step()
        schedule.step()
        total += loss.detach()
        if (step + 1) % 50 == 0:
            run.log(step + 1, **{f"{name}_loss": total / 50})
            total.zero_()
    return time.perf_counter() - start


@lab(
    "ntm/copy",
    card="ntm",
    config=CopyConfig,
    scales={
        "quick": {"steps": 10, "max_len": 4, "test_len": 6, "n_test": 8, "batch": 4},
        "default": {},
        "full": {"steps": 5000, "max_len": 20, "test_len": 40, "n_slots": 64, "slot_size": 20},
    },
    goals=[Goal("ntm_bit_err_long", "<=", 8.0), Goal("dnc_bit_err_long", "<=", 8.0)],  # <= 5% of 160 bits
    claims=[
        Check(
            "ntm-external-memory",
            lambda m: m["ntm_bit_err_long"] <= 0.25 * m["lstm_bit_err_long"],
            "trained on {steps} batches of {batch} copies of lengths 1..{max_len}, then copying {test_len} "
            "vectors of {bits} bits: the NTM gets {ntm_bit_err_long:.2f} of {bits_long} bits wrong per sequence, "
            "the LSTM {lstm_bit_err_long:.1f} (rule: at most a quarter of the LSTM's errors); at length {max_len} "
            "{ntm_bit_err_train:.2f} vs {lstm_bit_err_train:.1f}",
        ),
        Check(
            "dnc-external-memory",
            lambda m: m["dnc_bit_err_long"] <= 0.25 * m["lstm_bit_err_long"],
            "trained on {steps} batches of {batch} copies of lengths 1..{max_len}, then copying {test_len} "
            "vectors of {bits} bits: the DNC gets {dnc_bit_err_long:.2f} of {bits_long} bits wrong per sequence, "
            "the LSTM {lstm_bit_err_long:.1f} (rule: at most a quarter of the LSTM's errors); at length {max_len} "
            "{dnc_bit_err_train:.2f} vs {lstm_bit_err_train:.1f}",
        ),
    ],
    budget_s=150,  # 80-83 s on an idle 2-core machine
    threads=1,
)
def copy(run, cfg: CopyConfig) -> dict:
    """NTM, DNC and LSTM on the copy task: trained on lengths up to 10, tested on 20."""
    from deepatlas.zoo.memory.dnc import DNC  # imported here: dnc.py builds on this module

    torch.manual_seed(run.seed)
    train_seed, test_seed = split_seeds(run.seed)
    nets = {
        "ntm": NTM(cfg.bits + 1, cfg.bits, cfg.hidden, cfg.n_slots, cfg.slot_size),
        "dnc": DNC(cfg.bits + 1, cfg.bits, cfg.hidden, cfg.n_slots, cfg.slot_size),
        "lstm": LSTMBaseline(cfg.bits + 1, cfg.bits, cfg.lstm_hidden),
    }
    lengths = sorted({1, cfg.max_len // 2, cfg.max_len, (cfg.max_len + cfg.test_len) // 2, cfg.test_len} - {0})
    g_test = torch.Generator().manual_seed(test_seed)
    tests = {L: copy_batch(cfg.n_test, L, cfg.bits, g_test, run.device) for L in lengths}
    metrics: dict = {"bits": cfg.bits, "max_len": cfg.max_len, "test_len": cfg.test_len, "steps": cfg.steps,
                     "batch": cfg.batch, "bits_long": cfg.bits * cfg.test_len}
    curves = {}
    for name, net in nets.items():
        net.to(run.device)
        g = torch.Generator().manual_seed(train_seed)
        metrics[f"{name}_train_s"] = train_copy(run, name, net, cfg, g)
        with torch.no_grad():
            errors = {L: bit_errors(net, *tests[L]) for L in lengths}  # (n_test,) wrong bits per sequence
        curves[name] = [errors[L].mean().item() for L in lengths]
        metrics[f"{name}_bit_err_train"] = errors[cfg.max_len].mean().item()
        metrics[f"{name}_bit_err_long"] = errors[cfg.test_len].mean().item()
        metrics[f"{name}_perfect_long"] = (errors[cfg.test_len] == 0).float().mean().item()
        metrics[f"{name}_params"] = sum(p.numel() for p in net.parameters())
    _plot_copy(run, cfg, nets, lengths, curves, tests[cfg.test_len])
    return metrics


def _plot_copy(run, cfg: CopyConfig, nets: dict, lengths: list[int], curves: dict, long_test) -> None:
    with run.figure("copy_generalisation", ncols=3, size=(14, 3.8)) as (fig, (ax, ax_ntm, ax_dnc)):
        for name, errors in curves.items():
            ax.plot(lengths, [e / (cfg.bits * L) for e, L in zip(errors, lengths)], "o-", label=name.upper())
        ax.axvline(cfg.max_len, color="grey", ls="--", lw=1, label="longest trained")
        ax.set(xlabel="sequence length", ylabel="fraction of bits wrong", title="copy: generalisation in length")
        ax.legend()
        x, _ = long_test
        for axis, name in ((ax_ntm, "ntm"), (ax_dnc, "dnc")):
            with torch.no_grad():
                nets[name](x[:1])
            trace = nets[name].trace
            both = torch.cat([trace["write"][0], trace["read"][0]], 1).cpu()  # (T, 2N): write | read
            axis.imshow(both.T.numpy(), aspect="auto", cmap="magma", interpolation="nearest")
            axis.axhline(nets[name].N - 0.5, color="white", lw=1)
            axis.set(xlabel="time step", ylabel="memory row (write above, read below)",
                     title=f"{name.upper()} head weightings, length {cfg.test_len}")
