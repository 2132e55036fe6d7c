"""The position-wise feed-forward network: the second sublayer of every Transformer layer, a two-layer
MLP applied to each position separately with the same weights.

Attention moves information between positions, but what it writes into a position is a weighted
average of linear maps of the inputs; the FFN is where each position gets a non-linear function of
what it has gathered. In the original model it widens d_model = 512 to d_ff = 2048 and back, and
holds about two thirds of a layer's parameters.

    \\mathrm{FFN}(x) = \\max(0,\\ x W_1 + b_1)\\, W_2 + b_2

Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (arXiv 1706.03762), section 3.3. The block
itself is deepatlas.nn.transformer.FeedForward; this file ablates it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.transformer import sinusoidal_positions
from deepatlas.registry import register_model
from deepatlas.zoo.sequence.transformer import Encoder

VARIANTS = ("relu", "linear", "none")


class NoFeedForward(nn.Module):
    """The FFN sublayer removed: in a pre-LN layer x + Sublayer(LN(x)) becomes x + 0 = x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class ValueTagger(nn.Module):
    """A pre-LN Transformer encoder over a sequence of real numbers that classifies every position:
    x (B, T) -> logits (B, T, n_classes). ffn = "relu" (the paper's FFN), "linear" (the same two
    matrices without the ReLU: exactly the same parameters, one linear map) or "none" (no FFN sublayer)."""

    def __init__(self, n_classes: int = 2, d_model: int = 64, n_heads: int = 4, d_ff: int = 256, n_layers: int = 2,
                 ffn: str = "relu", max_len: int = 256):
        super().__init__()
        if ffn not in VARIANTS:
            raise ValueError(f"unknown FFN variant {ffn!r}; choose from {', '.join(VARIANTS)}")
        self.embed = nn.Linear(1, d_model)  # x_t -> x_t w + b
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)
        self.encoder = Encoder(d_model, n_heads, d_ff, n_layers, norm_first=True)
        for layer in self.encoder.layers:
            if ffn == "linear":
                # \mathrm{FFN}(x) = (x W_1 + b_1) W_2 + b_2: still two matrices, but one linear map
                layer.ffn.phi = nn.Identity()
            elif ffn == "none":
                layer.ffn = NoFeedForward()
        self.out = nn.Linear(d_model, n_classes)
        self.ffn = ffn

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, n_classes)
        h = self.embed(x[..., None]) + self.pe[:x.shape[1]]  # (B, T, D)
        return self.out(self.encoder(h))


@register_model("transformer_value_tagger", card="feed-forward-network", example=lambda: (torch.rand(2, 6),))
def transformer_value_tagger(**kw) -> ValueTagger:
    return ValueTagger(**kw)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sawtooth_parity(n: int, length: int, pieces: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, length) uniform in [-1, 1); each position's label is the parity of the piece it falls in when
    [-1, 1) is cut into `pieces` equal intervals: y_t = floor(pieces (x_t + 1) / 2) mod 2. A per-token
    function with pieces - 1 jumps, which no linear map of x_t can draw."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, length, generator=g) * 2 - 1
    return x, torch.floor(pieces * (x + 1) / 2).long() % 2


# --- feed-forward-network/ablation: a ReLU FFN, a linear FFN, and none -------------------------------------

@dataclass
class AblationConfig:
    length: int = 16
    pieces: int = 8
    n_train: int = 4000  # sequences
    n_test: int = 500
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 256
    n_layers: int = 2
    steps: int = 700
    batch_size: int = 64
    lr: float = 2e-3  # Adam, cosine-annealed to 0; the same for every variant


@lab(
    "feed-forward-network/ablation",
    card="feed-forward-network",
    config=AblationConfig,
    scales={"quick": {"n_train": 500, "n_test": 100, "steps": 15, "d_model": 32, "d_ff": 64, "n_layers": 1},
            "default": {},
            "full": {"steps": 5000, "pieces": 16, "n_train": 20_000}},
    goals=[Goal("relu_acc", ">=", 0.95)],
    claims=[
        Check(
            "feed-forward-network-nonlinearity",
            lambda m: m["relu_margin"] > m["margin_2se"],
            "labelling each of {length} numbers by the parity of its interval ({pieces} intervals), "
            "{n_layers}-layer pre-LN encoders make test errors of {relu_err:.3f} with the ReLU FFN "
            "({relu_params} parameters), {linear_err:.3f} with the same FFN made linear ({linear_params}) and "
            "{none_err:.3f} without FFN, widened to d_model {wide_d_model} ({none_params}); chance is 0.5. The "
            "FFN's non-linearity lowers the best error without it by {relu_margin:.3f} (two standard errors of "
            "that difference over {n_test_tokens} test tokens: {margin_2se:.3f}); attention's softmax and "
            "LayerNorm are non-linear too (rule: supported if the ReLU FFN's error is lower by more than two "
            "standard errors)",
        ),
    ],
    budget_s=90,
    threads=1,
)
def ablation(run, cfg: AblationConfig) -> dict:
    """A small Transformer with a ReLU FFN, a linear FFN, or none, on a per-token non-linear map."""
    x, y = (t.to(run.device) for t in sawtooth_parity(cfg.n_train, cfg.length, cfg.pieces, 2 * run.seed))
    x_test, y_test = (t.to(run.device) for t in sawtooth_parity(cfg.n_test, cfg.length, cfg.pieces, 2 * run.seed + 1))
    base = n_params(ValueTagger(2, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers))
    wide = cfg.d_model  # the narrowest FFN-free width (a multiple of 2 n_heads) with as many parameters
    while n_params(ValueTagger(2, wide, cfg.n_heads, cfg.d_ff, cfg.n_layers, ffn="none")) < base:
        wide += 2 * cfg.n_heads
    metrics: dict = {"length": cfg.length, "pieces": cfg.pieces, "n_layers": cfg.n_layers, "wide_d_model": wide}
    g = torch.Generator().manual_seed(run.seed)
    curves, sweep = {}, torch.linspace(-1, 1, 201)
    for ffn in VARIANTS:
        torch.manual_seed(run.seed)
        width = wide if ffn == "none" else cfg.d_model
        model = ValueTagger(2, width, cfg.n_heads, cfg.d_ff, cfg.n_layers, ffn=ffn).to(run.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
        curves[ffn] = []
        for step in run.progress(range(cfg.steps), desc=ffn):
            idx = torch.randint(0, len(x), (cfg.batch_size,), generator=g).to(run.device)
            # \mathcal{L} = -\frac{1}{BT} \sum_{b,t} \log p(y_{bt} \mid x_b)
            loss = F.cross_entropy(model(x[idx]).flatten(0, 1), y[idx].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            curves[ffn].append(loss.item())
            if step % 20 == 0:
                run.log(step, **{f"{ffn}_loss": curves[ffn][-1]})
        model.eval()
        with torch.no_grad():
            metrics[f"{ffn}_acc"] = (model(x_test).argmax(-1) == y_test).float().mean().item()
            # the map each net drew: one position swept over [-1, 1] inside 20 random test sequences
            contexts = x_test[:20].repeat(len(sweep), 1)  # (S*20, T)
            contexts[:, cfg.length // 2] = sweep.to(run.device).repeat_interleave(20)
            p = model(contexts).softmax(-1)[:, cfg.length // 2, 1].view(len(sweep), 20)
            curves[f"{ffn}_map"] = p.mean(1).cpu()
        metrics[f"{ffn}_err"] = 1 - metrics[f"{ffn}_acc"]
        metrics[f"{ffn}_params"] = n_params(model)
    n = metrics["n_test_tokens"] = y_test.numel()
    best = min(metrics["linear_err"], metrics["none_err"])
    metrics["relu_margin"] = best - metrics["relu_err"]
    # standard error of a difference of two error rates measured on n tokens each
    metrics["margin_2se"] = 2 * ((best * (1 - best) + metrics["relu_err"] * (1 - metrics["relu_err"])) / n) ** 0.5

    with run.figure("ffn_ablation", ncols=2, size=(10, 3.8)) as (fig, (ax_loss, ax_map)):
        for ffn in VARIANTS:
            ax_loss.plot(curves[ffn], label=ffn)
            ax_map.plot(sweep, curves[f"{ffn}_map"], label=ffn)
        ax_loss.set(xlabel="step", ylabel="training cross-entropy", yscale="log", title="training")
        ax_loss.legend()
        ax_map.plot(sweep, torch.floor(cfg.pieces * (sweep + 1) / 2) % 2, "k:", lw=1, label="target")
        ax_map.set(xlabel="x_t", ylabel="p(y_t = 1), mean over 20 contexts", title="the per-token map each net learned")
        ax_map.legend(fontsize=8)
    return metrics
