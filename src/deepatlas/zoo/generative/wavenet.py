"""WaveNet: an autoregressive model of raw waveforms built from dilated causal convolutions.

Each sample is predicted from the samples before it, as a softmax over mu-law-quantised amplitudes.
A causal convolution never looks ahead; doubling its dilation from layer to layer (1, 2, 4, ...)
makes the receptive field grow exponentially with depth, so a few layers see hundreds of past
samples. Each layer is a gated unit, tanh times sigmoid, with a residual connection to the next layer
and a skip connection to the output head.

    p(\\mathbf{x}) = \\prod_{t=1}^{T} p(x_t \\mid x_1, \\dots, x_{t-1}),
    \\mathbf{z} = \\tanh(W_{f,k} * \\mathbf{x}) \\odot \\sigma(W_{g,k} * \\mathbf{x}),
    R = 1 + (K - 1) \\sum_l d_l

van den Oord, Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior & Kavukcuoglu,
"WaveNet: A Generative Model for Raw Audio", arXiv 1609.03499, 2016.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.waveforms import sample_waveforms
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model


def mu_law_encode(x: torch.Tensor, q: int = 256) -> torch.Tensor:
    """Amplitudes in [-1, 1] -> integer levels 0..q-1 after mu-law companding with mu = q - 1."""
    mu = q - 1
    # f(x) = \mathrm{sign}(x) \ln(1 + \mu |x|) / \ln(1 + \mu)
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return ((f + 1) / 2 * mu).round().long().clamp(0, mu)


def mu_law_decode(idx: torch.Tensor, q: int = 256) -> torch.Tensor:
    """Levels 0..q-1 -> amplitudes: the inverse companding of each level's centre."""
    mu = q - 1
    f = 2 * idx.double() / mu - 1
    # x = \mathrm{sign}(f) ((1 + \mu)^{|f|} - 1) / \mu
    return (torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu).float()


class CausalConv1d(nn.Conv1d):
    """A dilated convolution padded on the left only: output t sees inputs t - (K - 1) d .. t."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int = 1):
        super().__init__(c_in, c_out, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T)
        return super().forward(F.pad(x, (self.left, 0)))


class ResidualBlock(nn.Module):
    """Dilated causal convolution, gated unit, then 1x1 convolutions to the residual and the skip path.
    The last block of the stack feeds only the skip path (`residual=False`)."""

    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int, residual: bool = True):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation)  # [W_f; W_g]
        self.res = nn.Conv1d(channels, channels, 1) if residual else None
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, g = self.conv(x).chunk(2, dim=1)  # (B, C, T) each
        # z = \tanh(W_f * x) \odot \sigma(W_g * x)
        z = torch.tanh(f) * torch.sigmoid(g)
        out = x if self.res is None else x + self.res(z)
        return out, self.skip(z)  # residual (B, C, T), skip (B, C_skip, T)


class WaveNet(nn.Module):
    """Levels (B, T) or one-hot (B, q, T) -> logits (B, q, T); the logits at t are for x_{t+1}.

    A 1x1 input convolution (no reach in time), the residual blocks with `dilations`, and a head
    ReLU -> 1x1 -> ReLU -> 1x1 on the sum of the skips. Receptive field 1 + (K - 1) sum(dilations)."""

    def __init__(self, q: int = 64, channels: int = 32, skip_channels: int = 64, kernel_size: int = 2,
                 dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32)):
        super().__init__()
        if q < 2 or kernel_size < 2 or not dilations or min(dilations) < 1:
            raise ValueError(f"need q >= 2, kernel_size >= 2 and positive dilations, got {q}, {kernel_size}, "
                             f"{dilations}")
        self.q, self.kernel_size, self.dilations = q, kernel_size, tuple(dilations)
        self.inp = nn.Conv1d(q, channels, 1)
        last = len(dilations) - 1
        self.blocks = nn.ModuleList(ResidualBlock(channels, skip_channels, kernel_size, d, residual=i < last)
                                    for i, d in enumerate(dilations))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(skip_channels, q, 1))

    @property
    def receptive_field(self) -> int:
        # R = 1 + (K - 1) \sum_l d_l
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.long:
            x = F.one_hot(x, self.q).transpose(1, 2).float()  # (B, q, T)
        h = self.inp(x)  # (B, C, T)
        skips = 0
        for block in self.blocks:
            h, s = block(h)
            skips = skips + s  # (B, C_skip, T)
        return self.head(skips)  # (B, q, T)


def next_sample_nll(logits: torch.Tensor, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
    """-\\frac{1}{T'} \\sum_t \\ln p(x_{t+1} \\mid x_{\\le t}) in nats per sample, over targets from `start` on."""
    return F.cross_entropy(logits[:, :, start - 1 if start else 0:-1], idx[:, max(start, 1):])


@torch.no_grad()
def generate(net: WaveNet, prompt: torch.Tensor, n: int, generator: torch.Generator,
             temperature: float = 1.0) -> torch.Tensor:
    """Continue levels (B, T0) by n samples, one network pass per sample over the last R inputs."""
    x = prompt
    for _ in range(n):
        logits = net(x[:, -net.receptive_field:])[:, :, -1] / temperature  # (B, q)
        x = torch.cat([x, torch.multinomial(logits.softmax(-1), 1, generator=generator)], dim=1)
    return x


def measured_receptive_field(net: nn.Module, q: int, length: int, t: int, trials: int = 8) -> tuple[int, int]:
    """Which inputs move output t, by gradients: (the span from the earliest to the latest input position with a
    nonzero gradient, that latest position). Dilations without a 1 leave holes inside the span. Gradients of
    several random one-hot inputs are pooled, so that a ReLU of the head that happens to be off at t for one
    input hides nothing."""
    g = torch.Generator().manual_seed(0)
    moved = torch.zeros(length, dtype=torch.float64)
    net.double()
    for _ in range(trials):
        x = F.one_hot(torch.randint(0, q, (1, length), generator=g), q).transpose(1, 2).double().requires_grad_(True)
        net(x)[0, :, t].sum().backward()
        moved += x.grad[0].abs().sum(0)  # (length,)
    net.float()
    seen = (moved > 0).nonzero()[:, 0]
    return int(seen.max() - seen.min()) + 1, int(seen.max())


def _example():
    return (torch.randint(0, 64, (2, 80)),)


@register_model("wavenet", card="wavenet", example=_example)
def wavenet(**kw) -> WaveNet:
    return WaveNet(**kw)


# --- the baselines the next-sample NLL is judged against -------------------------------------------

def marginal_nll(train: torch.Tensor, test: torch.Tensor, q: int) -> float:
    """Every sample from the training histogram of levels (Laplace-smoothed): nats per sample."""
    counts = torch.bincount(train.flatten(), minlength=q).double() + 1
    return -(counts / counts.sum()).log()[test.flatten()].mean().item()


def linear_ar_nll(train: torch.Tensor, test: torch.Tensor, q: int, p: int, start: int) -> float:
    """A linear AR(p) model on the companded levels with Gaussian noise, discretised onto the same q bins:

        \\hat f_{t+1} = b + \\sum_{l=0}^{p-1} w_l f_{t-l},  P(\\text{bin } k) = \\Phi((e_k^+ - \\hat f) / s)
        - \\Phi((e_k^- - \\hat f) / s)

    fitted by least squares on the training waves; nats per test sample over targets from `start` on."""
    def lagged(idx):
        f = 2 * idx.double() / (q - 1) - 1  # the bin centres in [-1, 1]
        windows = f.unfold(1, p + 1, 1)  # (B, T - p, p + 1): p inputs, then the target
        return windows[..., :p].reshape(-1, p), windows[..., p].reshape(-1), windows

    x, y, _ = lagged(train)
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    coef = torch.linalg.lstsq(design, y[:, None]).solution  # (p + 1, 1)
    s = (design @ coef - y[:, None]).std().clamp_min(1e-4)
    _, _, windows = lagged(test)
    windows = windows[:, start - p:]  # targets from `start` on
    xt, yt = windows[..., :p].reshape(-1, p), windows[..., p].reshape(-1)
    mean = (torch.cat([xt, torch.ones(len(xt), 1, dtype=xt.dtype)], 1) @ coef)[:, 0]
    half = 1.0 / (q - 1)  # half a bin
    normal = torch.distributions.Normal(mean, s)
    upper = torch.where(yt + half >= 1, torch.ones_like(yt), normal.cdf(yt + half))
    lower = torch.where(yt - half <= -1, torch.zeros_like(yt), normal.cdf(yt - half))
    return -(upper - lower).clamp_min(1e-12).log().mean().item()


# --- wavenet/waveforms -----------------------------------------------------------------------------

@dataclass
class WaveformsConfig:
    q: int = 64  # mu-law levels
    channels: int = 32
    kernel_size: int = 2
    n_dilations: int = 6  # dilations 1, 2, 4, ..., 2^(n - 1)
    length: int = 192
    n_train: int = 1024
    n_test: int = 256
    steps: int = 500
    batch_size: int = 32
    lr: float = 3e-3  # Adam, cosine decay


@lab(
    "wavenet/waveforms",
    card="wavenet",
    config=WaveformsConfig,
    scales={
        "quick": {"channels": 8, "n_dilations": 3, "length": 48, "n_train": 64, "n_test": 32, "steps": 20},
        "default": {},
        "full": {"q": 256, "channels": 64, "n_dilations": 10, "length": 4096, "steps": 20_000},
    },
    goals=[Goal("rf_error", "==", 0), Goal("gain_over_ar", ">", 0.0)],
    claims=[
        Check("wavenet-autoregressive-audio",
              lambda m: m["rf_error"] == 0 and m["latest_input"] == m["t_probe"] and m["gain_over_ar"] > 0
              and m["gain_over_marginal"] > 0,
              "dilations 1, 2, ..., {max_dilation} with kernel {kernel_size}: designed receptive field {rf_designed}, "
              "measured by gradients {rf_measured} (latest input seen: {latest_input} for the output at {t_probe}); "
              "next-sample NLL on held-out waves {wavenet_nll:.3f} nats against a linear AR({ar_order}) {ar_nll:.3f} "
              "and the marginal {marginal_nll:.3f} ({q} mu-law levels)"),
    ],
    budget_s=90,
    threads=1,
)
def waveforms(run, cfg: WaveformsConfig) -> dict:
    """WaveNet on generated waves: the receptive field by gradients, next-sample NLL against linear AR."""
    train = mu_law_encode(sample_waveforms(cfg.n_train, cfg.length, 2 * run.seed).x, cfg.q)  # (N, T) levels
    test = mu_law_encode(sample_waveforms(cfg.n_test, cfg.length, 2 * run.seed + 1).x, cfg.q)
    dilations = tuple(2 ** i for i in range(cfg.n_dilations))
    torch.manual_seed(run.seed)
    g = torch.Generator().manual_seed(run.seed)
    net = WaveNet(cfg.q, cfg.channels, 2 * cfg.channels, cfg.kernel_size, dilations)
    rf = net.receptive_field
    if rf >= cfg.length:
        raise ValueError(f"length={cfg.length} must exceed the receptive field {rf}")
    rf_measured, latest = measured_receptive_field(net, cfg.q, 2 * rf, 2 * rf - 2)
    net.to(run.device)

    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    train_d = train.to(run.device)
    for step in run.progress(range(1, cfg.steps + 1), desc="wavenet"):
        xb = train_d[torch.randint(0, len(train), (cfg.batch_size,), generator=g).to(run.device)]
        loss = next_sample_nll(net(xb), xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            run.log(step, nll=loss)
    net.eval()
    with torch.no_grad():  # every model is scored on the targets that have a full receptive field behind them
        wavenet_nll = next_sample_nll(net(test.to(run.device)), test.to(run.device), start=rf).item()
    ar = linear_ar_nll(train, test, cfg.q, rf - 1, rf)
    marginal = marginal_nll(train, test[:, rf:], cfg.q)

    prompt = test[:4, :rf].to(run.device)
    continued = generate(net, prompt, cfg.length - rf, g).cpu()
    with run.figure("waveforms", ncols=2, size=(11, 4)) as (fig, (ax_w, ax_r)):
        t = torch.arange(cfg.length)
        for i, color in enumerate(("C0", "C1", "C2", "C3")):
            ax_w.plot(t, mu_law_decode(test[i], cfg.q) + 2.2 * i, color=color, lw=0.8, alpha=0.4)
            ax_w.plot(t[rf:], mu_law_decode(continued[i, rf:], cfg.q) + 2.2 * i, color=color, lw=0.9)
        ax_w.axvline(rf, color="k", ls=":", lw=0.8)
        ax_w.set(title="held-out waves (faint), WaveNet continuations", xlabel="t", yticks=[])
        names = ["marginal", f"linear AR({rf - 1})", "WaveNet"]
        values = [marginal, ar, wavenet_nll]
        ax_r.bar(names, values, color=["C7", "C0", "C2"])
        for i, v in enumerate(values):
            ax_r.text(i, v, f"{v:.3f}", ha="center", va="bottom")
        ax_r.set(ylabel="next-sample NLL (nats)", title=f"receptive field {rf_measured} (designed {rf})")
    return {
        "rf_designed": rf, "rf_measured": rf_measured, "rf_error": abs(rf_measured - rf),
        "latest_input": latest, "t_probe": 2 * rf - 2, "kernel_size": cfg.kernel_size,
        "max_dilation": dilations[-1], "q": cfg.q, "ar_order": rf - 1,
        "wavenet_nll": wavenet_nll, "ar_nll": ar, "marginal_nll": marginal,
        "gain_over_ar": ar - wavenet_nll, "gain_over_marginal": marginal - wavenet_nll,
    }
