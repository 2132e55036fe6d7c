"""The Transformer: an encoder-decoder built from attention alone, without recurrence or convolution.

The encoder turns the source tokens into a memory with N layers of self-attention and a
position-wise feed-forward network; the decoder reads the target so far through causally masked
self-attention, reads the memory through cross-attention, and predicts the next token. Token
order enters only through positional encodings added to the embeddings, and every position is
computed at once, so training needs no step-by-step loop over time.

    X = E[\\text{tokens}] \\sqrt{d_{model}} + PE
    \\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}(Q K^\\top / \\sqrt{d_k}) V
    p(y_t \\mid y_{<t}, x) = \\mathrm{softmax}(W_o\\, \\mathrm{Dec}(Y_{<t}, \\mathrm{Enc}(X))_t)

Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser & Polosukhin, "Attention Is All You
Need", NeurIPS 2017 (arXiv 1706.03762). The layers themselves (multi-head attention, the FFN, the
encoder and decoder layers with residual + LayerNorm) are shared blocks in deepatlas.nn.attention
and deepatlas.nn.transformer; this file assembles them into the model and runs its labs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.sequences import PAD, SEP, seq_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.attention import causal_mask, scaled_dot_product_attention
from deepatlas.nn.recurrent import Recurrent
from deepatlas.nn.transformer import DecoderLayer, EncoderLayer, sinusoidal_positions
from deepatlas.registry import register_model
from deepatlas.zoo.sequence.self_attention import sequential_depth

BOS = SEP  # the separator token doubles as the decoder's beginning-of-sequence
POSITIONS = ("sinusoidal", "learned")


class Positions(nn.Module):
    """PE (T, d_model): the fixed sinusoids of the paper, or a learned table with one row per position.

    A learned table only knows the positions it was trained on; rows past the training lengths keep
    their random initialisation (deepatlas.zoo.sequence.positional_encoding measures what that costs)."""

    def __init__(self, d_model: int, kind: str = "sinusoidal", max_len: int = 256):
        super().__init__()
        if kind not in POSITIONS:
            raise ValueError(f"unknown positions {kind!r}; choose from {', '.join(POSITIONS)}")
        self.kind, self.max_len = kind, max_len
        if kind == "sinusoidal":
            self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)  # (max_len, D)
        else:
            self.table = nn.Parameter(torch.randn(max_len, d_model) * 0.02)  # (max_len, D), GPT-2's init

    def forward(self, T: int) -> torch.Tensor:  # -> (T, D)
        if T > self.max_len:
            raise ValueError(f"sequence of length {T} is longer than max_len={self.max_len}")
        return self.pe[:T] if self.kind == "sinusoidal" else self.table[:T]


class TokenEmbedding(nn.Module):
    """Token ids plus their positions: x = E[tokens] sqrt(d_model) + PE.

    E starts at N(0, 1/d_model), so that both terms are of order one."""

    def __init__(self, vocab: int, d_model: int, positions: str = "sinusoidal", max_len: int = 256,
                 dropout: float = 0.0):
        super().__init__()
        self.E = nn.Embedding(vocab, d_model)
        nn.init.normal_(self.E.weight, std=d_model ** -0.5)
        self.positions = Positions(d_model, positions, max_len)
        self.drop, self.scale = nn.Dropout(dropout), math.sqrt(d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, D)
        # X = E[\text{tokens}] \sqrt{d_{model}} + PE
        return self.drop(self.E(tokens) * self.scale + self.positions(tokens.shape[1]))


class Encoder(nn.Module):
    """N encoder layers; pre-LN stacks end with a LayerNorm (post-LN ones already end normalised)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, n_layers: int, dropout: float = 0.0,
                 norm_first: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None, need_weights: bool = False) -> torch.Tensor:
        """x (B, S, D), pad (B, S) bool True = padding -> memory (B, S, D)."""
        for layer in self.layers:
            x = layer(x, key_padding_mask=pad, need_weights=need_weights)
        return self.norm(x)


class Decoder(nn.Module):
    """N decoder layers (masked self-attention, cross-attention, FFN); a final LayerNorm when pre-LN."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, n_layers: int, dropout: float = 0.0,
                 norm_first: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, y: torch.Tensor, memory: torch.Tensor, tgt_pad: torch.Tensor | None = None,
                src_pad: torch.Tensor | None = None, need_weights: bool = False) -> torch.Tensor:
        """y (B, T, D) the target so far, memory (B, S, D) -> (B, T, D). Position t sees targets <= t only."""
        mask = causal_mask(y.shape[1], device=y.device)  # (T, T)
        for layer in self.layers:
            y = layer(y, memory, attn_mask=mask, memory_key_padding_mask=src_pad, key_padding_mask=tgt_pad,
                      need_weights=need_weights)
        return self.norm(y)


class Transformer(nn.Module):
    """The encoder-decoder Transformer over token ids; PAD (0) marks padding in both source and target.

    forward(src (B, S), tgt (B, T)) -> logits (B, T, tgt_vocab): teacher forcing, tgt starts with BOS and
    logits[:, t] predict tgt's next token. greedy(src, steps) decodes without a target."""

    def __init__(self, src_vocab: int = 10, tgt_vocab: int = 10, d_model: int = 64, n_heads: int = 4,
                 d_ff: int = 128, n_layers: int = 2, dropout: float = 0.0, norm_first: bool = False,
                 positions: str = "sinusoidal", max_len: int = 256, pad: int = PAD):
        super().__init__()
        if min(src_vocab, tgt_vocab, d_model, n_heads, d_ff, n_layers) < 1:
            raise ValueError("vocab sizes, d_model, n_heads, d_ff and n_layers must all be >= 1")
        self.d_model, self.pad = d_model, pad
        self.src_embed = TokenEmbedding(src_vocab, d_model, positions, max_len, dropout)
        self.tgt_embed = TokenEmbedding(tgt_vocab, d_model, positions, max_len, dropout)
        self.encoder = Encoder(d_model, n_heads, d_ff, n_layers, dropout, norm_first)
        self.decoder = Decoder(d_model, n_heads, d_ff, n_layers, dropout, norm_first)
        self.out = nn.Linear(d_model, tgt_vocab)  # W_o: pre-softmax projection

    def encode(self, src: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) -> (memory (B, S, D), src_pad (B, S) bool)."""
        src_pad = src == self.pad
        return self.encoder(self.src_embed(src), src_pad, need_weights), src_pad

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor,
               need_weights: bool = False) -> torch.Tensor:
        """tgt (B, T) -> logits (B, T, tgt_vocab)."""
        y = self.decoder(self.tgt_embed(tgt), memory, tgt == self.pad, src_pad, need_weights)
        return self.out(y)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, need_weights: bool = False) -> torch.Tensor:
        """need_weights=True leaves every layer's attention weights on it (.last_weights, .last_cross_weights)."""
        memory, src_pad = self.encode(src, need_weights)
        return self.decode(tgt, memory, src_pad, need_weights)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, steps: int, bos: int = BOS) -> torch.Tensor:
        """Decode `steps` tokens one at a time, each the argmax given the ones before: (B, S) -> (B, steps).
        With dropout, call .eval() first."""
        memory, src_pad = self.encode(src)
        ys = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)  # (B, 1)
        for _ in range(steps):
            # \hat y_t = \arg\max_v p(v \mid \hat y_{<t}, x)
            nxt = self.decode(ys, memory, src_pad)[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            ys = torch.cat([ys, nxt], dim=1)
        return ys[:, 1:]


class TransformerTagger(nn.Module):
    """Encoder-only Transformer that classifies every token: tokens (B, T) -> logits (B, T, n_classes)."""

    def __init__(self, vocab: int = 10, n_classes: int = 10, d_model: int = 64, n_heads: int = 4, d_ff: int = 128,
                 n_layers: int = 2, dropout: float = 0.0, norm_first: bool = False, positions: str = "sinusoidal",
                 max_len: int = 256, pad: int = PAD):
        super().__init__()
        self.pad = pad
        self.embed = TokenEmbedding(vocab, d_model, positions, max_len, dropout)
        self.encoder = Encoder(d_model, n_heads, d_ff, n_layers, dropout, norm_first)
        self.out = nn.Linear(d_model, n_classes)

    def forward(self, tokens: torch.Tensor, need_weights: bool = False) -> torch.Tensor:
        return self.out(self.encoder(self.embed(tokens), tokens == self.pad, need_weights))


@register_model("transformer", card="transformer",
                example=lambda: (torch.randint(2, 10, (2, 7)), torch.cat([torch.ones(2, 1, dtype=torch.long),
                                                                          torch.randint(2, 10, (2, 4))], 1)))
def transformer(**kw) -> Transformer:
    return Transformer(**kw)


@register_model("transformer_tagger", card="transformer", example=lambda: (torch.randint(1, 10, (2, 7)),))
def transformer_tagger(**kw) -> TransformerTagger:
    return TransformerTagger(**kw)


# --- transformer/reverse-sort: reversal and sorting, attention maps, and a race against an LSTM --------------

class LSTMSeq2Seq(nn.Module):
    """The named baseline: an LSTM encoder-decoder without attention (Sutskever et al. 2014). Its LSTMs run on
    torch's fused kernel (deepatlas.nn.recurrent.Recurrent with fused=True, i.e. nn.LSTM's), the fastest
    recurrent layer torch offers, so that the race is against a fast RNN, not against a Python loop."""

    def __init__(self, vocab: int, d_embed: int = 64, hidden: int = 128):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(vocab, d_embed), nn.Embedding(vocab, d_embed)
        self.encoder = Recurrent("lstm", d_embed, hidden, fused=True)
        self.decoder = Recurrent("lstm", d_embed, hidden, fused=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:  # (B, S), (B, T) -> (B, T, V)
        _, state = self.encoder(self.src_embed(src))  # the whole source squeezed into (h_S, c_S)
        out, _ = self.decoder(self.tgt_embed(tgt), state)  # (B, T, H)
        return self.out(out)


@dataclass
class ReverseSortConfig:
    length: int = 10
    vocab: int = 8  # symbols; the token vocabulary adds PAD and SEP (= BOS)
    n_train: int = 20_000
    n_test: int = 1000  # held out: no test input occurs in training
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 128
    n_layers: int = 2
    steps: int = 300  # per task, Adam at lr cosine-annealed to 0 over the steps, batches of batch_size
    batch_size: int = 64
    lr: float = 2e-3  # 1e-3, 2e-3 and 3e-3 reach the target loss in the same ~110 steps; 1e-2 diverges
    target_loss: float = 0.05  # nats/token, mean of the last `window` batches: the race's finish line
    window: int = 20
    lstm_hidden: int = 128
    lstm_lr: float = 1e-2  # the fastest to the target of 1e-3, 3e-3, 5e-3, 1e-2, 2e-2 and 3e-2 (seed 0)
    lstm_max_steps: int = 3000


def teacher_forcing(y: torch.Tensor) -> torch.Tensor:
    """The decoder's input: BOS then the target shifted right by one, (B, T) -> (B, T)."""
    return torch.cat([torch.full_like(y[:, :1], BOS), y[:, :-1]], dim=1)


def train_to(run, name: str, model: nn.Module, data, cfg: ReverseSortConfig, lr: float, steps: int,
             stop_at_target: bool, g: torch.Generator) -> dict:
    """Adam on the teacher-forced cross-entropy (cosine-annealed over `steps`), timed over the training steps only.

    Two clocks: wall time, and the CPU time of this process, which on one thread is the wall time the
    run would take on an idle core (the shared machines these labs are verified on inflate wall time
    unevenly). Records when the running mean of the batch loss first reaches cfg.target_loss."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    x, y = data.x_train.to(run.device), data.y_train.to(run.device)
    recent, curve = [], {"cpu_s": [], "loss": []}
    reached = None
    wall = cpu = 0.0
    for step in run.progress(range(steps), desc=name):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=g).to(run.device)
        # \mathcal{L} = -\frac{1}{BT} \sum_{b,t} \log p(y_t \mid y_{<t}, x)
        logits = model(x[idx], teacher_forcing(y[idx]))  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        recent = (recent + [loss.item()])[-cfg.window:]
        wall, cpu = wall + time.perf_counter() - wall0, cpu + time.process_time() - cpu0
        curve["cpu_s"].append(cpu)
        curve["loss"].append(recent[-1])
        if step % 20 == 0:
            run.log(step, **{f"{name}_loss": recent[-1]})
        if reached is None and len(recent) == cfg.window and sum(recent) / cfg.window <= cfg.target_loss:
            reached = {"reached": 1, "step": step + 1, "wall_s": wall, "cpu_s": cpu}
            if stop_at_target:
                break
    # a run that never gets there: its whole length is a lower bound on the time it needs
    reached = reached or {"reached": 0, "step": step + 1, "wall_s": wall, "cpu_s": cpu}
    return {"curve": curve, "ms_per_step": 1000 * cpu / (step + 1), **reached}


def exact_match(model: Transformer, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of sequences whose greedy decoding is right at every position."""
    return (model.greedy(x, y.shape[1]) == y).all(dim=1).float().mean().item()


def cross_attention(model: Transformer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The last decoder layer's cross-attention, averaged over heads, when reading the true target: (B, T, S)."""
    with torch.no_grad():
        model(x, teacher_forcing(y), need_weights=True)
    return model.decoder.layers[-1].last_cross_weights.mean(dim=1)


@lab(
    "transformer/reverse-sort",
    card="transformer",
    config=ReverseSortConfig,
    scales={
        "quick": {"length": 6, "n_train": 1000, "n_test": 50, "steps": 20, "d_model": 32, "d_ff": 64,
                  "n_layers": 1, "lstm_max_steps": 20, "lstm_hidden": 32},
        "default": {},
        "full": {"length": 20, "n_train": 100_000, "steps": 3000, "d_model": 128, "d_ff": 512, "n_layers": 3,
                 "lstm_hidden": 256, "lstm_max_steps": 20_000},
    },
    goals=[Goal("reverse_exact", ">=", 0.99), Goal("sort_exact", ">=", 0.99)],
    claims=[
        Check(
            "transformer-trains-faster-than-lstm",
            lambda m: m["tf_reached"] == 1 and m["speedup"] >= 2.0,
            "to a training loss of {target_loss} nats/token on reversal (length {length}) the Transformer "
            "({tf_params} parameters) took {tf_step} steps and {tf_cpu_s:.1f} s ({tf_ms_per_step:.1f} ms/step; "
            "reached: {tf_reached}), the LSTM encoder-decoder on torch's fused kernel ({lstm_params} parameters) "
            "{lstm_step} steps and {lstm_cpu_s:.1f} s ({lstm_ms_per_step:.1f} ms/step; reached: {lstm_reached}): "
            "the Transformer got there {speedup:.1f}x faster on one CPU thread ({speedup_wall:.1f}x in wall time "
            "on a shared machine: {tf_wall_s:.1f} s vs {lstm_wall_s:.1f} s), needing {step_ratio:.1f}x fewer "
            "steps that each cost {step_cost_ratio:.1f}x the LSTM's; rule: supported if >= 2x",
        ),
        Check(
            "self-attention-weights-interpretable",
            lambda m: m["mirror_argmax"] >= 0.9,
            "in reversal, the last decoder layer's cross-attention (mean over heads) peaks on the mirror position "
            "S-1-t for {mirror_argmax:.3f} of the outputs and puts {mirror_mass:.2f} of its mass there (uniform "
            "would be {uniform:.2f}); in sorting it puts {sort_same_token_mass:.2f} of its mass on source "
            "positions holding the token being written (rule: supported if the peak is on the mirror for >= 0.9)",
        ),
    ],
    budget_s=90,
    threads=1,
)
def reverse_sort(run, cfg: ReverseSortConfig) -> dict:
    """A Transformer reverses and sorts digit strings; its cross-attention is the anti-diagonal; an LSTM races it."""
    tokens = cfg.vocab + 2  # PAD, SEP and the symbols
    g = torch.Generator().manual_seed(run.seed)
    metrics: dict = {"length": cfg.length, "target_loss": cfg.target_loss, "uniform": 1 / cfg.length}
    maps, curves = {}, {}
    for task in ("reverse", "sort"):
        data = seq_split(task, cfg.n_train, cfg.n_test, seed=run.seed, length=cfg.length, vocab=cfg.vocab)
        torch.manual_seed(run.seed)
        model = Transformer(tokens, tokens, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers).to(run.device)
        result = train_to(run, task, model, data, cfg, cfg.lr, cfg.steps, stop_at_target=False, g=g)
        model.eval()
        x, y = data.x_test.to(run.device), data.y_test.to(run.device)
        metrics[f"{task}_exact"] = exact_match(model, x, y)
        maps[task] = (x, y, cross_attention(model, x, y).cpu())
        if task == "reverse":
            curves["Transformer"], reverse_data = result["curve"], data
            metrics.update(_race_metrics("tf", model, result))

    torch.manual_seed(run.seed)
    lstm = LSTMSeq2Seq(tokens, cfg.d_model, cfg.lstm_hidden).to(run.device)
    result = train_to(run, "lstm", lstm, reverse_data, cfg, cfg.lstm_lr, cfg.lstm_max_steps, stop_at_target=True,
                      g=g)
    curves["LSTM enc-dec"] = result["curve"]
    metrics.update(_race_metrics("lstm", lstm, result))
    metrics["speedup"] = metrics["lstm_cpu_s"] / metrics["tf_cpu_s"]
    metrics["speedup_wall"] = metrics["lstm_wall_s"] / metrics["tf_wall_s"]
    metrics["step_ratio"] = metrics["lstm_step"] / metrics["tf_step"]
    metrics["step_cost_ratio"] = metrics["tf_ms_per_step"] / metrics["lstm_ms_per_step"]

    x, y, w = maps["reverse"]
    t = torch.arange(cfg.length)
    metrics["mirror_mass"] = w[:, t, cfg.length - 1 - t].mean().item()
    metrics["mirror_argmax"] = (w.argmax(-1) == cfg.length - 1 - t).float().mean().item()
    x, y, w = maps["sort"]
    same = (x[:, None, :] == y[:, :, None]).float()  # (B, T, S): source s holds the token written at t
    metrics["sort_same_token_mass"] = (w * same).sum(-1).mean().item()
    _plot_reverse_sort(run, maps, curves, cfg)
    return metrics


def _race_metrics(prefix: str, model: nn.Module, result: dict) -> dict:
    keys = ("reached", "step", "wall_s", "cpu_s", "ms_per_step")
    return {f"{prefix}_params": sum(p.numel() for p in model.parameters()),
            **{f"{prefix}_{k}": result[k] for k in keys}}


def _plot_reverse_sort(run, maps: dict, curves: dict, cfg: ReverseSortConfig) -> None:
    with run.figure("cross_attention", ncols=2, size=(9, 4)) as (fig, axes):
        for ax, (task, (x, y, w)) in zip(axes, maps.items()):
            ax.imshow(w[0], cmap="viridis", vmin=0, vmax=1)
            src, out = (x[0] - 2).tolist(), (y[0] - 2).tolist()
            ax.set_xticks(range(len(src)), src)
            ax.set_yticks(range(len(out)), out)
            ax.set(xlabel="source symbol", ylabel="output symbol",
                   title=f"{task}: last decoder layer's cross-attention")
    with run.figure("race") as (fig, ax):
        for name, curve in curves.items():
            ax.plot(curve["cpu_s"], curve["loss"], label=name)
        ax.axhline(cfg.target_loss, color="grey", ls="--", lw=1, label=f"target {cfg.target_loss}")
        ax.set(xlabel="training time (CPU s, one thread)", ylabel="batch loss (nats/token)", yscale="log",
               title=f"reversal, length {cfg.length}")
        ax.legend()


# --- transformer/attention-complexity: parallel over positions, quadratic in their number -------------------

@dataclass
class ComplexityConfig:
    d_model: int = 64  # the width of both layers: d_model for attention, the hidden size for the LSTM
    n_heads: int = 4
    batch_size: int = 4
    t_min: int = 16  # layers timed at lengths t_min .. t_max, doubling
    t_max: int = 512
    score_t_max: int = 1024  # the attention scores alone, up to this length
    fit_from: int = 128  # growth exponents fitted over T >= fit_from
    repeats: int = 5  # timings are medians of this many runs


def cpu_ms(fn, repeats: int) -> float:
    """Median CPU time of fn() in milliseconds, after one untimed warm-up call: on one thread, the wall
    time on an idle core."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1000 * float(np.median(times))


def growth_exponent(lengths: list[int], values: list[float], fit_from: int) -> float:
    """p in value ~ T^p, by least squares on log-log over T >= fit_from."""
    keep = [i for i, T in enumerate(lengths) if T >= fit_from]
    return float(np.polyfit(np.log([lengths[i] for i in keep]), np.log([values[i] for i in keep]), 1)[0])


@lab(
    "transformer/attention-complexity",
    card="transformer",
    config=ComplexityConfig,
    scales={
        "quick": {"t_max": 64, "score_t_max": 128, "fit_from": 32, "repeats": 2},
        "default": {},
        "full": {"t_max": 4096, "score_t_max": 8192, "fit_from": 1024},
    },
    claims=[
        Check(
            "transformer-parallel-over-positions",
            lambda m: (m["attn_depth_tmax"] == m["attn_depth_tmin"]
                       and m["lstm_depth_tmax"] / m["lstm_depth_tmin"] >= 0.5 * m["t_max"] / m["t_min"]),
            "a Transformer encoder layer (d_model {d_model}) computes all positions in the same {attn_depth_tmax} "
            "sequential operations at T = {t_min} and at T = {t_max}, while an LSTM layer of the same width "
            "chains {lstm_depth_tmin} -> {lstm_depth_tmax}, one step per position (rule: supported if "
            "attention's chain does not grow with T and the LSTM's grows at least half as fast as T). Forward "
            "+ backward CPU time on one thread, T = {t_min} -> {t_max}: attention layer {attn_ms_tmin:.2f} -> "
            "{attn_ms_tmax:.1f} ms, LSTM written out step by step {loop_ms_tmin:.2f} -> {loop_ms_tmax:.1f} ms, "
            "torch's fused LSTM kernel {fused_ms_tmin:.2f} -> {fused_ms_tmax:.1f} ms (growth exponent "
            "{fused_exponent:.2f} vs attention's {attn_exponent:.2f}; one thread has no parallel units for "
            "attention's position-wide matmuls to fill)",
        ),
        Check(
            "transformer-superlinear-attention-cost",
            lambda m: m["score_time_exponent"] > 1.0,
            "attention scores softmax(QK^T/sqrt(d))V for T = {fit_from} -> {score_t_max}: forward + backward time "
            "grows as T^{score_time_exponent:.2f} ({score_ms_fit_from:.1f} -> {score_ms_tmax:.0f} ms), counted "
            "FLOPs as T^{score_flop_exponent:.2f} and the weight matrix's memory as T^{score_memory_exponent:.2f} "
            "({score_mb_tmax:.0f} MB at T = {score_t_max}, batch {batch_size}, {n_heads} heads); the whole layer "
            "grows as T^{attn_exponent:.2f} and the LSTM as T^{fused_exponent:.2f} (rule: supported if the time "
            "exponent > 1)",
        ),
    ],
    budget_s=60,
    threads=1,
)
def attention_complexity(run, cfg: ComplexityConfig) -> dict:
    """One attention layer vs one LSTM layer as T grows: sequential steps, time, and the T^2 of the scores."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(run.seed)
    D, B, H = cfg.d_model, cfg.batch_size, cfg.n_heads
    layer = EncoderLayer(D, H, 4 * D).to(run.device)
    loop, fused = Recurrent("lstm", D, D).to(run.device), Recurrent("lstm", D, D, fused=True).to(run.device)
    g = torch.Generator().manual_seed(run.seed)

    def fwd_bwd(module, x):
        return lambda: module(x)[0].sum().backward() if isinstance(module, Recurrent) else module(x).sum().backward()

    lengths = [cfg.t_min * 2**i for i in range(int(math.log2(cfg.t_max // cfg.t_min)) + 1)]
    rows = []
    for T in run.progress(lengths, desc="layers"):
        x = torch.randn(B, T, D, generator=g).to(run.device).requires_grad_(True)
        rows.append({"T": T, "attn_depth": sequential_depth(layer(x), x),
                     "lstm_depth": sequential_depth(loop(x)[0], x),
                     "attn_ms": cpu_ms(fwd_bwd(layer, x), cfg.repeats),
                     "loop_ms": cpu_ms(fwd_bwd(loop, x), cfg.repeats),
                     "fused_ms": cpu_ms(fwd_bwd(fused, x), cfg.repeats)})
        run.log(T, attn_ms=rows[-1]["attn_ms"], fused_ms=rows[-1]["fused_ms"])

    score_lengths = [cfg.t_min * 2**i for i in range(int(math.log2(cfg.score_t_max // cfg.t_min)) + 1)]
    scores = []
    for T in run.progress(score_lengths, desc="scores"):
        q, k, v = (torch.randn(B, H, T, D // H, generator=g).to(run.device).requires_grad_(True) for _ in range(3))
        with FlopCounterMode(display=False) as counter:
            out, weights = scaled_dot_product_attention(q, k, v)
        ms = cpu_ms(lambda: scaled_dot_product_attention(q, k, v)[0].sum().backward(), cfg.repeats)
        scores.append({"T": T, "ms": ms, "flops": counter.get_total_flops(),
                       "mb": weights.nelement() * weights.element_size() / 2**20})
        run.log(T, score_ms=ms)

    col = {key: [r[key] for r in rows] for key in rows[0]}
    sc = {key: [r[key] for r in scores] for key in scores[0]}
    metrics: dict = {"d_model": D, "n_heads": H, "batch_size": B, "t_min": lengths[0], "t_max": lengths[-1],
                     "score_t_max": score_lengths[-1], "fit_from": cfg.fit_from}
    for key in ("attn_depth", "lstm_depth", "attn_ms", "loop_ms", "fused_ms"):
        metrics[f"{key}_tmin"], metrics[f"{key}_tmax"] = col[key][0], col[key][-1]
    for key in ("attn", "loop", "fused"):
        metrics[f"{key}_exponent"] = growth_exponent(lengths, col[f"{key}_ms"], cfg.fit_from)
    metrics["score_ms_fit_from"] = sc["ms"][score_lengths.index(cfg.fit_from)]
    metrics["score_ms_tmax"], metrics["score_mb_tmax"] = sc["ms"][-1], sc["mb"][-1]
    for key, name in (("ms", "time"), ("flops", "flop"), ("mb", "memory")):
        metrics[f"score_{name}_exponent"] = growth_exponent(score_lengths, sc[key], cfg.fit_from)

    with run.figure("complexity", ncols=2, size=(10, 4)) as (fig, (ax_t, ax_d)):
        ax_t.plot(lengths, col["attn_ms"], "o-", label="encoder layer (attention + FFN)")
        ax_t.plot(lengths, col["loop_ms"], "s-", label="LSTM, step by step")
        ax_t.plot(lengths, col["fused_ms"], "^-", label="LSTM, torch's fused kernel")
        ax_t.plot(score_lengths, sc["ms"], "d--", label="attention scores alone")
        ax_t.set(yscale="log", xlabel="T", ylabel="forward + backward (CPU ms, one thread)")
        ax_t.legend(fontsize=8)
        ax_d.plot(lengths, col["attn_depth"], "o-", label="encoder layer")
        ax_d.plot(lengths, col["lstm_depth"], "s-", label="LSTM layer")
        ax_d.set(yscale="log", xlabel="T", ylabel="sequential operations (autograd graph depth)")
        ax_d.legend(fontsize=8)
        for ax in (ax_t, ax_d):
            ax.set_xscale("log", base=2)
            ax.set_xticks(score_lengths, [str(T) for T in score_lengths])
            ax.minorticks_off()
    return metrics
