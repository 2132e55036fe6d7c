"""Gated recurrent unit: the LSTM's gating with one state and three weight blocks instead of four.

The GRU drops the LSTM's separate cell. An update gate z_t interpolates between keeping the old
state and taking a tanh candidate n_t, doing the work of the LSTM's input and forget gates at
once; a reset gate r_t decides how much of the old state enters the candidate. Where z_t stays
near one the state, and its gradient, pass through unchanged, as along the LSTM's cell.

    r_t = \\sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}),   z_t = \\sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})
    n_t = \\tanh(W_{in} x_t + b_{in} + r_t \\odot (W_{hn} h_{t-1} + b_{hn})),   h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}

Cho, van Merrienboer, Gulcehre, Bahdanau, Bougares, Schwenk & Bengio, "Learning phrase
representations using RNN encoder-decoder for statistical machine translation", EMNLP 2014
(arXiv 1406.1078). The form above is torch's and cuDNN's: r_t multiplies W_{hn} h_{t-1} + b_{hn}
after the product (Cho et al. apply it to h_{t-1} before); the parameter count is the same.

The gates are written out in deepatlas.nn.recurrent.gru_step (GRUCell, Recurrent); the model
here is rnn.py's read-out with kind="gru".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.recurrent import GATES, GRUCell, Recurrent, gru_step
from deepatlas.registry import register_model
from deepatlas.zoo.sequence.rnn import RecurrentRegressor, count


@register_model("gru_regressor", card="gru", example=lambda: (torch.rand(2, 7, 2),))
def gru_regressor(input_size: int = 2, hidden_size: int = 32, output_size: int = 1,
                  num_layers: int = 1) -> RecurrentRegressor:
    return RecurrentRegressor("gru", input_size, hidden_size, output_size, num_layers)


def gate_block_params(input_size: int, hidden_size: int, biases: int = 2) -> int:
    """Parameters of one gate block: W_i (H x I), W_h (H x H) and `biases` bias vectors of H
    (torch and cuDNN keep two, b_i and b_h; the papers write one)."""
    # H I + H^2 + b H
    return hidden_size * input_size + hidden_size**2 + biases * hidden_size


def recurrent_params(kind: str, input_size: int, hidden_size: int, biases: int = 2) -> int:
    """Closed form of one layer: G gate blocks, G = 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n)."""
    return GATES[kind] * gate_block_params(input_size, hidden_size, biases)


# --- gru/param-count: how many fewer parameters does a GRU have than an LSTM? ----------------------

@dataclass
class ParamConfig:
    sizes: str = "1x32,2x64,32x32,128x128,256x512,1024x1024"  # input x hidden pairs


def _sizes(spec: str) -> list[tuple[int, int]]:
    pairs = [tuple(int(v) for v in item.split("x")) for item in spec.split(",")]
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise ValueError(f"sizes must look like '1x32,128x256' (input x hidden), got {spec!r}")
    return pairs


@lab(
    "gru/param-count",
    card="gru",
    config=ParamConfig,
    scales={"quick": {"sizes": "1x8,16x32"}, "default": {}, "full": {"sizes": ParamConfig.sizes + ",4096x4096"}},
    goals=[Goal("formula_mismatches", "==", 0)],
    claims=[
        Check(
            "gru-fewer-parameters",
            lambda m: abs(m["gru_fewer_frac"] - 1 / 3) <= 0.03,
            "at each of {n_sizes} sizes (hidden {smallest_hidden} to {largest_hidden}) the GRU has "
            "{gru_over_lstm:.4f} of the LSTM's parameters: {gru_fewer_pct:.1f}% fewer, not 33% (3 gate blocks against 4, each "
            "H*I + H^2 + 2H, e.g. {block_example} for 128x128: GRU {gru_example} vs LSTM {lstm_example}). The 33% "
            "is the other direction: the LSTM has {lstm_more_pct:.1f}% more than the GRU",
        ),
    ],
    budget_s=10,
    threads=1,
)
def param_count(run, cfg: ParamConfig) -> dict:
    """GRU vs LSTM parameter counts at equal sizes: 3 gate blocks against 4, 25% fewer."""
    sizes = _sizes(cfg.sizes)
    rows, mismatches = [], 0
    for i, h in run.progress(sizes, desc="counting"):
        counted = {}
        for kind in ("rnn", "gru", "lstm"):
            with torch.device("meta"):  # shapes only: a 1024x1024 LSTM needs no memory to be counted
                mine = count(Recurrent(kind, i, h))
                ref = count({"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind](i, h))
            counted[kind] = mine
            mismatches += (mine != recurrent_params(kind, i, h)) + (mine != ref)
        rows.append((i, h, counted))
    ratios = [c["gru"] / c["lstm"] for _, _, c in rows]

    with run.figure("gru_vs_lstm_params") as (fig, ax):
        labels = [f"{i}x{h}" for i, h, _ in rows]
        xs = torch.arange(len(rows)).tolist()
        for k, (kind, colour) in enumerate([("rnn", "#999999"), ("gru", "#2ca02c"), ("lstm", "#1f77b4")]):
            ax.bar([x + (k - 1) * 0.27 for x in xs], [c[kind] for _, _, c in rows], width=0.27,
                   color=colour, label=f"{kind.upper()} ({GATES[kind]} gate block{'s' * (GATES[kind] > 1)})")
        ax.set_xticks(xs, labels)
        ax.set(xlabel="input x hidden", ylabel="parameters", yscale="log", title="one recurrent layer")
        ax.legend(fontsize=8)
    return {
        "gru_over_lstm": min(ratios), "gru_over_lstm_max": max(ratios),
        "gru_fewer_frac": 1 - max(ratios), "gru_fewer_pct": 100 * (1 - max(ratios)),
        "lstm_more_pct": 100 * (1 / min(ratios) - 1), "formula_mismatches": mismatches,
        "block_example": gate_block_params(128, 128), "gru_example": recurrent_params("gru", 128, 128),
        "lstm_example": recurrent_params("lstm", 128, 128),
        "smallest_hidden": min(h for _, h in sizes), "largest_hidden": max(h for _, h in sizes), "n_sizes": len(sizes),
    }


__all__ = ["GRUCell", "gru_step", "gru_regressor", "gate_block_params", "recurrent_params"]
