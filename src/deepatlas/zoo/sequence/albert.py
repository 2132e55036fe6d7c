"""ALBERT: BERT with a factorised embedding and one set of layer weights shared by every layer.

Two changes cut BERT's parameters without changing its shape of computation. The vocabulary is
embedded in a small space of size E and projected up to the hidden size H, so the embedding costs
V E + E H instead of V H; and all L encoder layers are the same layer applied L times, so the
encoder costs one layer's weights instead of L. The forward pass still runs L layers: sharing
saves memory, not compute.

    V \\times H \\;\\to\\; V \\times E + E \\times H,  \\qquad  h^{(l)} = \\mathrm{Layer}_\\theta(h^{(l-1)}),\\ l = 1..L

Lan, Chen, Goodman, Gimpel, Sharma & Soricut, "ALBERT: A Lite BERT for Self-supervised Learning
of Language Representations", ICLR 2020 (arXiv 1909.11942).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.transformer import EncoderLayer
from deepatlas.registry import register_model
from deepatlas.zoo.sequence.bert import BERT, CLS, N_SPECIAL, PAD, MLMHead, _init_bert, bert_param_count


class ALBERT(nn.Module):
    """Encoder with the interface of `BERT` (encode, pool, forward -> (MLM logits, pooled)).

    share=True applies one EncoderLayer n_layer times (ALBERT); share=False keeps n_layer separate
    layers, which isolates what the factorised embedding alone saves."""

    def __init__(self, vocab_size: int, max_len: int = 64, n_layer: int = 2, n_head: int = 4, d_model: int = 64,
                 embedding_size: int = 16, d_ff: int | None = None, n_segments: int = 2, dropout: float = 0.0,
                 share: bool = True):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} is not divisible by n_head={n_head}")
        E, H = embedding_size, d_model
        self.max_len, self.n_layer, self.share = max_len, n_layer, share
        self.tok = nn.Embedding(vocab_size, E)  # V x E
        self.pos = nn.Embedding(max_len, E)
        self.seg = nn.Embedding(n_segments, E)
        self.emb_norm = nn.LayerNorm(E)
        self.drop = nn.Dropout(dropout)
        self.project = nn.Linear(E, H)  # E x H: up to the hidden size
        n_distinct = 1 if share else n_layer
        self.layers = nn.ModuleList(EncoderLayer(H, n_head, d_ff or 4 * H, dropout, activation="gelu")
                                    for _ in range(n_distinct))
        self.mlm = MLMHead(H, self.tok)  # H -> E, then the tied V x E read-out
        self.pooler = nn.Linear(H, H)
        _init_bert(self)

    def encode(self, ids: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        B, T = ids.shape
        if T > self.max_len:
            raise ValueError(f"sequence of length {T} is longer than max_len={self.max_len}")
        segments = torch.zeros_like(ids) if segments is None else segments
        e = self.drop(self.emb_norm(self.tok(ids) + self.seg(segments) + self.pos.weight[:T]))  # (B, T, E)
        x = self.project(e)  # (B, T, H)
        padding = ids == PAD
        for l in range(self.n_layer):
            # h^{(l)} = \mathrm{Layer}_\theta(h^{(l-1)}): the same weights at every depth when shared
            x = self.layers[0 if self.share else l](x, key_padding_mask=padding)
        return x

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """tanh(W h_{[CLS]} + b): (B, T, H) -> (B, H), as in BERT."""
        return torch.tanh(self.pooler(h[:, 0]))

    def forward(self, ids: torch.Tensor, segments: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encode(ids, segments)
        return self.mlm(h), self.pool(h)


def _example():
    ids = torch.randint(N_SPECIAL, 40, (2, 10), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = CLS
    return ids, torch.tensor([[0] * 5 + [1] * 5] * 2)


@register_model("albert_char", card="albert", example=_example)
def albert_char(**kw) -> ALBERT:
    """A small character-level ALBERT: 4 applications of one layer, 64 wide, embeddings of size 16."""
    return ALBERT(**{"vocab_size": 40, "max_len": 64, "n_layer": 4, "n_head": 4, "d_model": 64,
                     "embedding_size": 16, **kw})


def albert_param_count(vocab_size: int, max_len: int, n_layer: int, d_model: int, embedding_size: int,
                       d_ff: int | None = None, n_segments: int = 2, share: bool = True) -> int:
    """Parameters of `ALBERT` without its MLM head: embeddings (V + T + S) E + 2 E, the projection
    E H + H, one layer (or n_layer of them) of 4 H^2 + 9 H + 2 H f + f, and the pooler H^2 + H."""
    E, H, f = embedding_size, d_model, d_ff or 4 * d_model
    layer = (4 * H * H + 4 * H) + (2 * H * f + f + H) + 4 * H
    return ((vocab_size + max_len + n_segments) * E + 2 * E + E * H + H
            + (1 if share else n_layer) * layer + H * H + H)


def encoder_flops(model: nn.Module, T: int) -> int:
    """FLOPs of the encoder's forward pass over a (1, T) sequence (no MLM head), counted by torch's
    FlopCounterMode (matmuls only: what dominates a Transformer's compute); build the model on the meta
    device to count a large one without memory."""
    ids = torch.full((1, T), N_SPECIAL, dtype=torch.int64, device=model.pooler.weight.device)
    with FlopCounterMode(display=False) as counter:
        model.encode(ids)
    return counter.get_total_flops()


# The ALBERT paper's Table 1 (vocabulary 30,000, 512 positions, E = 128 for ALBERT) and its stated sizes.
CONFIGS = {
    "base": {"n_layer": 12, "d_model": 768, "n_head": 12, "bert_stated": 108e6, "albert_stated": 12e6},
    "large": {"n_layer": 24, "d_model": 1024, "n_head": 16, "bert_stated": 334e6, "albert_stated": 18e6},
    "xlarge": {"n_layer": 24, "d_model": 2048, "n_head": 16, "bert_stated": 1270e6, "albert_stated": 60e6},
}
VOCAB, MAX_LEN, E = 30000, 512, 128


@dataclass
class SharingConfig:
    seq_len: int = 128  # tokens of the sequence whose forward FLOPs are counted


@lab(
    "albert/param-sharing",
    card="albert",
    config=SharingConfig,
    scales={"quick": {"seq_len": 16}, "default": {}, "full": {"seq_len": 512}},
    goals=[Goal("large_formula_matches_model", "==", 1)],
    claims=[
        Check(
            "albert-parameter-sharing",
            lambda m: m["large_ratio"] <= 0.1,
            "at BERT-large's depth and width (24 layers, H=1024), ALBERT (E=128, one shared layer) has "
            "{large_albert:,.0f} parameters against BERT's {large_bert:,.0f}: {large_ratio:.1%} of them, under the "
            "tenth that 'far smaller' asks for here (the paper: 18M vs 334M); the factorised embedding alone "
            "leaves {large_factorised_only:,.0f}. Sharing saves "
            "parameters, not compute: ALBERT-large's encoder costs {large_flops_ratio:.3f}x BERT-large's FLOPs on a "
            "sequence of {seq_len} tokens",
        ),
    ],
    budget_s=30,
    threads=1,
)
def param_sharing(run, cfg: SharingConfig) -> dict:
    """Parameters of ALBERT against BERT at the same depth and width, and what sharing does to compute."""
    metrics: dict = {"seq_len": cfg.seq_len}
    for name, c in CONFIGS.items():
        L, H, heads = c["n_layer"], c["d_model"], c["n_head"]
        with torch.device("meta"):
            bert = BERT(VOCAB, MAX_LEN, L, heads, H)
            albert = ALBERT(VOCAB, MAX_LEN, L, heads, H, embedding_size=E)
        n_bert = bert_param_count(VOCAB, MAX_LEN, L, H)
        n_albert = albert_param_count(VOCAB, MAX_LEN, L, H, E)
        built = {id(p): p.numel() for p in albert.parameters()}
        head = {id(p) for n, p in albert.named_parameters() if n.startswith("mlm.")}
        metrics[f"{name}_formula_matches_model"] = int(sum(v for k, v in built.items() if k not in head) == n_albert)
        metrics[f"{name}_bert"], metrics[f"{name}_albert"] = n_bert, n_albert
        metrics[f"{name}_ratio"] = n_albert / n_bert
        metrics[f"{name}_factorised_only"] = albert_param_count(VOCAB, MAX_LEN, L, H, E, share=False)
        metrics[f"{name}_albert_vs_paper"] = n_albert / c["albert_stated"] - 1
        metrics[f"{name}_bert_vs_paper"] = n_bert / c["bert_stated"] - 1
        metrics[f"{name}_flops_ratio"] = encoder_flops(albert, cfg.seq_len) / encoder_flops(bert, cfg.seq_len)
    _plot_sharing(run, metrics)
    return metrics


def _plot_sharing(run, m: dict) -> None:
    names = list(CONFIGS)
    with run.figure("albert_param_sharing", ncols=2) as (fig, (ax, ax_flops)):
        xs = torch.arange(len(names)).float()
        for offset, key, label in [(-0.27, "bert", "BERT"), (0.0, "factorised_only", "factorised embedding only"),
                                   (0.27, "albert", "ALBERT (factorised + shared)")]:
            ax.bar(xs + offset, [m[f"{n}_{key}"] for n in names], width=0.27, label=label)
        ax.set(xticks=xs.tolist(), xticklabels=names, yscale="log", ylabel="parameters",
               title="same depth and width")
        ax.legend(fontsize=8)
        ax_flops.bar(names, [m[f"{n}_flops_ratio"] for n in names], color="#2ca02c")
        ax_flops.axhline(1.0, color="k", ls="--", lw=1)
        ax_flops.set(ylabel="ALBERT / BERT forward FLOPs", title="sharing does not save compute")
