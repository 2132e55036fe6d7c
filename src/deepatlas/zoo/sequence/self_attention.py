"""Scaled dot-product self-attention: every position of a sequence reads every position of the same
sequence, weighted by how well its query matches their keys.

Three linear maps turn each input vector into a query, a key and a value; the softmax of a query's
dot products with all keys gives the weights of a weighted sum of the values. Dividing by sqrt(d_k)
keeps the dot products of unit-variance vectors at unit variance, whatever d_k is; without it the
softmax saturates as d_k grows and its gradient vanishes. Any two positions are one step apart.

    Q = X W^Q,\\ K = X W^K,\\ V = X W^V
    \\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}(Q K^\\top / \\sqrt{d_k})\\, V

Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (arXiv 1706.03762), section 3.2.1.
The multi-head form the Transformer uses is deepatlas.nn.attention.MultiHeadAttention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.labs import Check, lab
from deepatlas.nn.recurrent import Recurrent
from deepatlas.registry import register_model


class SelfAttention(nn.Module):
    """One head of self-attention, written out: x (B, T, d_model) -> (out (B, T, d_v), weights (B, T, T)).

    mask (T, T) or (B, T, T) bool, True = may attend. scaled=False drops the 1/sqrt(d_k), for the ablation."""

    def __init__(self, d_model: int, d_k: int | None = None, d_v: int | None = None, scaled: bool = True):
        super().__init__()
        d_k, d_v = d_k or d_model, d_v or d_model
        if min(d_model, d_k, d_v) < 1:
            raise ValueError(f"d_model, d_k and d_v must be >= 1, got {d_model}, {d_k}, {d_v}")
        self.W_q = nn.Linear(d_model, d_k, bias=False)
        self.W_k = nn.Linear(d_model, d_k, bias=False)
        self.W_v = nn.Linear(d_model, d_v, bias=False)
        self.d_k, self.scaled = d_k, scaled

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # Q = X W^Q,  K = X W^K,  V = X W^V
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)  # (B, T, d_k), (B, T, d_k), (B, T, d_v)
        # s_{ij} = q_i \cdot k_j / \sqrt{d_k}
        scores = q @ k.transpose(-2, -1)  # (B, T, T)
        if self.scaled:
            scores = scores / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        # \alpha_{ij} = \exp s_{ij} / \sum_{j'} \exp s_{ij'}
        weights = torch.softmax(scores, dim=-1)  # (B, T, T)
        # o_i = \sum_j \alpha_{ij} v_j
        return weights @ v, weights

    def extra_repr(self) -> str:
        return f"d_k={self.d_k}, scaled={self.scaled}"


@register_model("self_attention", card="self-attention", example=lambda: (torch.randn(2, 5, 16),))
def self_attention(d_model: int = 16, **kw) -> SelfAttention:
    return SelfAttention(d_model, **kw)


def sequential_depth(output: torch.Tensor, source: torch.Tensor) -> int:
    """The longest chain of autograd operations from the leaf `source` to `output`: how many operations
    must run one after another to compute `output` from `source`. 0 if output does not depend on it."""
    root = output.grad_fn
    if root is None:
        return 0
    depth: dict = {}  # node -> longest chain down to the source's AccumulateGrad, None if it never gets there
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if node in depth:
            continue
        if getattr(node, "variable", None) is source:
            depth[node] = 0
            continue
        children = [child for child, _ in node.next_functions if child is not None]
        if not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in children if child not in depth)
        else:
            below = [depth[child] for child in children if depth[child] is not None]
            depth[node] = 1 + max(below) if below else None
    return depth[root] or 0


# --- self-attention/scaling: why divide by sqrt(d_k) --------------------------------------------------------

@dataclass
class ScalingConfig:
    n_queries: int = 2000
    n_keys: int = 32
    d_min: int = 4  # d_k from d_min to d_max, doubling
    d_max: int = 1024


def softmax_statistics(scores: torch.Tensor, g: torch.Generator) -> dict:
    """Entropy (in units of log T), largest weight, and the gradient that reaches the scores.

    The gradient is the softmax's vector-Jacobian product with a random unit-variance upstream
    gradient u: \\partial L / \\partial s = \\alpha \\odot (u - \\alpha^\\top u); it vanishes as alpha
    becomes one-hot."""
    scores = scores.clone().requires_grad_(True)
    weights = torch.softmax(scores, dim=-1)  # (N, T)
    u = torch.randn(weights.shape, generator=g, dtype=weights.dtype)
    (grad,) = torch.autograd.grad(weights, scores, u)
    w, grad_norm = weights.detach(), grad.norm(dim=-1)  # (N, T), (N,)
    entropy = -(w * w.clamp_min(1e-300).log()).sum(-1) / math.log(w.shape[-1])
    return {"entropy": entropy.mean().item(), "max_weight": w.max(-1).values.mean().item(),
            "grad": grad_norm.mean().item(), "vanished": (grad_norm < 0.01).double().mean().item(),
            "score_std": scores.detach().std().item()}


@lab(
    "self-attention/scaling",
    card="self-attention",
    config=ScalingConfig,
    scales={"quick": {"n_queries": 200, "d_max": 256}, "default": {}, "full": {"n_queries": 20_000, "d_max": 4096}},
    claims=[
        Check(
            "self-attention-sqrt-dk-scaling",
            lambda m: (m["unscaled_max_weight_dmax"] >= 0.9 and m["unscaled_grad_ratio"] <= 0.5
                       and 0.5 <= m["scaled_grad_ratio"] <= 2.0 and abs(m["scaled_entropy_change"]) <= 0.1),
            "with unit-variance q and k over {n_keys} keys, going from d_k = {d_min} to {d_max}: unscaled "
            "scores (std {unscaled_score_std_dmax:.1f} at d_k = {d_max}) saturate the softmax (mean largest "
            "weight {unscaled_max_weight_dmin:.2f} -> {unscaled_max_weight_dmax:.2f}, entropy "
            "{unscaled_entropy_dmin:.2f} -> {unscaled_entropy_dmax:.2f} of log T) and the mean gradient reaching "
            "the scores falls to {unscaled_grad_ratio:.3f} of its value, with {unscaled_vanished_dmax:.0%} of the "
            "queries left with |dL/ds| < 0.01 (vs {scaled_vanished_dmax:.0%} scaled); scaled by 1/sqrt(d_k) the "
            "largest weight stays at {scaled_max_weight_dmax:.2f}, the entropy changes by {scaled_entropy_change:+.3f} "
            "and the gradient keeps {scaled_grad_ratio:.2f} of its value (rule: supported if unscaled reaches "
            "max weight >= 0.9 and its gradient at least halves while scaled keeps a ratio in [0.5, 2] and its "
            "entropy within 0.1)",
        ),
    ],
    budget_s=20,
    threads=1,
)
def scaling(run, cfg: ScalingConfig) -> dict:
    """Softmax saturation and gradient of unscaled vs sqrt(d_k)-scaled dot products as d_k grows."""
    g = torch.Generator().manual_seed(run.seed)
    dims = [cfg.d_min * 2**i for i in range(int(math.log2(cfg.d_max // cfg.d_min)) + 1)]
    rows: dict[str, list[dict]] = {"unscaled": [], "scaled": []}
    for d_k in run.progress(dims, desc="d_k"):
        q = torch.randn(cfg.n_queries, 1, d_k, generator=g, dtype=torch.float64)  # q_i ~ N(0, I)
        k = torch.randn(cfg.n_queries, cfg.n_keys, d_k, generator=g, dtype=torch.float64)  # k_j ~ N(0, I)
        # q \cdot k has variance d_k;  q \cdot k / \sqrt{d_k} has variance 1
        dots = (q @ k.transpose(-2, -1))[:, 0]  # (N, n_keys)
        rows["unscaled"].append(softmax_statistics(dots, g))
        rows["scaled"].append(softmax_statistics(dots / math.sqrt(d_k), g))
        run.log(d_k, **{f"{kind}_grad": r[-1]["grad"] for kind, r in rows.items()})

    metrics: dict = {"n_keys": cfg.n_keys, "d_min": dims[0], "d_max": dims[-1]}
    for kind, r in rows.items():
        for stat in ("entropy", "max_weight", "grad", "vanished", "score_std"):
            metrics[f"{kind}_{stat}_dmin"], metrics[f"{kind}_{stat}_dmax"] = r[0][stat], r[-1][stat]
        metrics[f"{kind}_grad_ratio"] = r[-1]["grad"] / r[0]["grad"]
        metrics[f"{kind}_entropy_change"] = r[-1]["entropy"] - r[0]["entropy"]

    with run.figure("scaling", ncols=3, size=(13, 3.8)) as (fig, axes):
        for kind, style in (("unscaled", "o-"), ("scaled", "s-")):
            for ax, stat in zip(axes, ("max_weight", "entropy", "grad")):
                ax.plot(dims, [r[stat] for r in rows[kind]], style, label=kind)
        for ax, label in zip(axes, ("mean largest weight", "entropy / log T", "|dL/ds| per query")):
            ax.set(xlabel="d_k", ylabel=label)
            ax.set_xscale("log", base=2)
            ax.set_xticks(dims, [str(d) for d in dims])
            ax.minorticks_off()
            ax.legend()
        axes[2].set_yscale("log")
        fig.suptitle(f"softmax over {cfg.n_keys} keys of q.k with unit-variance q, k")
    return metrics


# --- self-attention/path-length: one step between any two positions -------------------------------------------

@dataclass
class PathConfig:
    d_model: int = 32
    batch_size: int = 4
    t_min: int = 8  # lengths from t_min to t_max, doubling
    t_max: int = 512


def jacobian_norm(out_last: torch.Tensor, x0: torch.Tensor) -> float:
    """|| d out_{T-1} / d x_0 ||_F, averaged over the batch: out_last (B, d_out), x0 (B, 1, d_in)."""
    rows = [torch.autograd.grad(out_last[:, i].sum(), x0, retain_graph=True)[0][:, 0] for i in range(out_last.shape[1])]
    return torch.stack(rows, 1).norm(dim=(1, 2)).mean().item()  # (B, d_out, d_in) -> mean Frobenius norm


@lab(
    "self-attention/path-length",
    card="self-attention",
    config=PathConfig,
    scales={"quick": {"t_max": 64}, "default": {}, "full": {"t_max": 2048}},
    claims=[
        Check(
            "self-attention-constant-path",
            lambda m: (m["attn_depth_tmax"] == m["attn_depth_tmin"]
                       and m["rnn_depth_tmax"] / m["rnn_depth_tmin"] >= 0.5 * m["t_max"] / m["t_min"]
                       and m["attn_jacobian_tmax"] > 0),
            "from x_0 to the output at position T-1: one self-attention layer takes {attn_depth_tmin} "
            "sequential operations at T = {t_min} and {attn_depth_tmax} at T = {t_max} (|d out/d x_0| = "
            "{attn_jacobian_tmin:.2e} -> {attn_jacobian_tmax:.2e}); an Elman RNN of the same width takes "
            "{rnn_depth_tmin} -> {rnn_depth_tmax} (|d out/d x_0| = {rnn_jacobian_tmin:.2e} -> "
            "{rnn_jacobian_tmax:.2e}); rule: supported if attention's chain does not grow with T and the "
            "RNN's grows at least half as fast as T",
        ),
    ],
    budget_s=30,
    threads=1,
)
def path_length(run, cfg: PathConfig) -> dict:
    """Sequential operations and gradient between position 0 and position T-1: attention vs an RNN."""
    torch.manual_seed(run.seed)
    attn = SelfAttention(cfg.d_model).double()
    rnn = Recurrent("rnn", cfg.d_model, cfg.d_model).double()
    g = torch.Generator().manual_seed(run.seed)
    lengths = [cfg.t_min * 2**i for i in range(int(math.log2(cfg.t_max // cfg.t_min)) + 1)]
    rows = {"attn": [], "rnn": []}
    for T in run.progress(lengths, desc="length"):
        x0 = torch.randn(cfg.batch_size, 1, cfg.d_model, generator=g, dtype=torch.float64, requires_grad=True)
        rest = torch.randn(cfg.batch_size, T - 1, cfg.d_model, generator=g, dtype=torch.float64)
        x = torch.cat([x0, rest], dim=1)  # (B, T, d): x_0 is its own leaf so that paths from it can be traced
        for name, out in (("attn", attn(x)[0]), ("rnn", rnn(x)[0])):
            last = out[:, -1]  # (B, d): the output at position T-1
            rows[name].append({"T": T, "depth": sequential_depth(last, x0), "jacobian": jacobian_norm(last, x0)})
        run.log(T, attn_depth=rows["attn"][-1]["depth"], rnn_depth=rows["rnn"][-1]["depth"])

    metrics: dict = {"t_min": lengths[0], "t_max": lengths[-1]}
    for name, r in rows.items():
        for stat in ("depth", "jacobian"):
            metrics[f"{name}_{stat}_tmin"], metrics[f"{name}_{stat}_tmax"] = r[0][stat], r[-1][stat]
    labels = {"attn": "self-attention (one layer)", "rnn": "Elman RNN"}
    with run.figure("path_length", ncols=2, size=(10, 3.8)) as (fig, (ax_depth, ax_jac)):
        for name, r in rows.items():
            ax_depth.plot(lengths, [row["depth"] for row in r], "o-", label=labels[name])
            ax_jac.plot(lengths, [row["jacobian"] for row in r], "o-", label=labels[name])
        ax_depth.set(yscale="log", xlabel="T", ylabel="sequential operations x_0 -> out_{T-1}")
        ax_jac.set(yscale="log", xlabel="T", ylabel="|d out_{T-1} / d x_0|")
        for ax in (ax_depth, ax_jac):
            ax.set_xscale("log", base=2)
            ax.set_xticks(lengths, [str(T) for T in lengths])
            ax.minorticks_off()
        ax_depth.legend()
    return metrics
