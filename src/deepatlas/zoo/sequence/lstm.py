"""Long short-term memory: a memory cell written and erased through gates, updated by addition.

The LSTM keeps a cell state c_t beside the hidden state. A forget gate f_t scales the old cell,
an input gate i_t admits a tanh candidate g_t, and an output gate o_t decides how much of the
cell the hidden state shows. Because c_t = f_t c_{t-1} + i_t g_t is a sum, not a squashed
product, the gradient along the cell is multiplied only by f_t per step: with forget gates near
one it crosses hundreds of steps, where a vanilla RNN's gradient fades (bptt/gradient-decay).

    i_t, f_t, o_t = \\sigma(W_{i\\cdot} x_t + W_{h\\cdot} h_{t-1} + b_\\cdot),   g_t = \\tanh(W_{ig} x_t + W_{hg} h_{t-1} + b_g)
    c_t = f_t \\odot c_{t-1} + i_t \\odot g_t,   h_t = o_t \\odot \\tanh(c_t)

Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 9(8), 1997; the forget
gate is from Gers, Schmidhuber & Cummins, "Learning to forget", Neural Computation 12(10), 2000.

The gates are written out in deepatlas.nn.recurrent.lstm_step (LSTMCell for one step, Recurrent
for a sequence); the model here is rnn.py's read-out with kind="lstm".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.sequences import adding_problem
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.recurrent import LSTMCell, lstm_step
from deepatlas.registry import register_model
from deepatlas.zoo.sequence.rnn import RecurrentRegressor


@register_model("lstm_regressor", card="lstm", example=lambda: (torch.rand(2, 7, 2),))
def lstm_regressor(input_size: int = 2, hidden_size: int = 32, output_size: int = 1,
                   num_layers: int = 1) -> RecurrentRegressor:
    return RecurrentRegressor("lstm", input_size, hidden_size, output_size, num_layers)


# --- lstm/adding-problem: RNN vs LSTM vs GRU on a dependency 100 and 200 steps long -----------------

BASELINE_MSE = 1 / 6  # always answering 1: Var(u_1 + u_2) for two uniform values
KINDS = ("rnn", "lstm", "gru")


@dataclass
class AddingConfig:
    short_length: int = 100
    long_length: int = 200
    hidden: int = 32
    batch_size: int = 64
    lr: float = 0.02  # Adam
    clip: float = 1.0  # gradient-norm clipping, for every net alike
    max_steps: int = 2000  # per gated net and length; each batch is fresh data. The vanilla RNN gets as
    # many steps as the slower of the LSTM and the GRU took at that length
    eval_every: int = 20
    n_val: int = 500  # decides when to stop and when the target was reached
    n_test: int = 1000  # reported, never used to decide anything
    target_mse: float = 0.01
    stop_mse: float = 0.005  # training stops once validation MSE is below this
    timing_steps: int = 3  # steps timed with the written-out cells, for the per-step cost


def _mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x)[:, 0] - y).square().mean().item()


def train_adding(run, kind: str, length: int, cfg: AddingConfig, max_steps: int) -> dict:
    """Adam on fresh adding-problem batches until validation MSE < stop_mse or max_steps.

    Runs on torch's fused kernel through Recurrent(fused=True): the same weights and numbers as
    the written-out cells (tests/nn/test_recurrent.py), about ten times faster at T = 200.
    """
    dev = run.device
    base = 1_000_000 * (run.seed + 1)
    val = adding_problem(cfg.n_val, length, seed=base - 1)
    test = adding_problem(cfg.n_test, length, seed=base - 2)
    x_val, y_val = val.x.to(dev), val.y.to(dev)
    torch.manual_seed(run.seed)
    model = RecurrentRegressor(kind, 2, cfg.hidden, fused=True).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    curve, steps_to_target, time_to_target, train_time = [], None, None, 0.0
    step = 0
    for step in run.progress(range(1, max_steps + 1), desc=f"{kind} T={length}"):
        batch = adding_problem(cfg.batch_size, length, seed=base + step)  # the same stream for every net
        start = time.perf_counter()
        # \mathcal{L} = \frac1B \sum_n (\hat y_n - (u_{n,a} + u_{n,b}))^2
        loss = (model(batch.x.to(dev))[:, 0] - batch.y.to(dev)).square().mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        train_time += time.perf_counter() - start
        if step % cfg.eval_every == 0:
            val_mse = _mse(model, x_val, y_val)
            run.log(step, **{f"{kind}_{length}_loss": loss, f"{kind}_{length}_val_mse": val_mse})
            curve.append((step, val_mse))
            if steps_to_target is None and val_mse <= cfg.target_mse:
                steps_to_target, time_to_target = step, train_time
            if val_mse <= cfg.stop_mse:
                break
    return {"curve": curve, "test_mse": _mse(model, test.x.to(dev), test.y.to(dev)), "steps": step,
            "steps_to_target": steps_to_target, "time_to_target": time_to_target,
            "ms_per_step": 1e3 * train_time / step}


def cell_ms_per_step(kind: str, length: int, cfg: AddingConfig, device) -> float:
    """Milliseconds per training step with the written-out cells: the per-step cost of the gate equations."""
    torch.manual_seed(0)
    model = RecurrentRegressor(kind, 2, cfg.hidden).to(device)
    batch = adding_problem(cfg.batch_size, length, seed=0)
    x, y = batch.x.to(device), batch.y.to(device)
    (model(x)[:, 0] - y).square().mean().backward()  # warm-up, not timed
    start = time.perf_counter()
    for _ in range(cfg.timing_steps):
        (model(x)[:, 0] - y).square().mean().backward()
    return 1e3 * (time.perf_counter() - start) / cfg.timing_steps


def _gru_faster(m: dict) -> bool:
    """Both reach the target at both lengths; the GRU in fewer steps and in less time at equal implementation."""
    return all(
        m[f"{k}_reached_{s}"] == 1 for k in ("lstm", "gru") for s in ("short", "long")
    ) and all(
        m[f"gru_steps_{s}"] < m[f"lstm_steps_{s}"] and m[f"gru_cell_time_{s}"] < m[f"lstm_cell_time_{s}"]
        for s in ("short", "long")
    )


@lab(
    "lstm/adding-problem",
    card="lstm",
    config=AddingConfig,
    scales={
        "quick": {"short_length": 10, "long_length": 20, "hidden": 8, "batch_size": 32, "max_steps": 20,
                  "eval_every": 10, "n_val": 64, "n_test": 128, "timing_steps": 1},
        "default": {},
        "full": {"short_length": 200, "long_length": 400, "hidden": 128, "lr": 3e-3, "max_steps": 20_000},
    },
    goals=[Goal("lstm_mse_short", "<=", 0.01), Goal("lstm_mse_long", "<=", 0.01),
           Goal("gru_mse_short", "<=", 0.01), Goal("gru_mse_long", "<=", 0.01)],
    claims=[
        Check(
            "lstm-long-range",
            lambda m: max(m["lstm_mse_short"], m["lstm_mse_long"]) <= m["target_mse"]
            and m["rnn_mse_long"] >= BASELINE_MSE / 2,
            "on the adding problem the LSTM reaches test MSE {lstm_mse_short:.4f} at T = {short_length} and "
            "{lstm_mse_long:.4f} at T = {long_length} (target {target_mse}), while a vanilla tanh RNN of the same "
            "width, trained on the same {batch_size}-sequence batches for as many steps as the slower gated net "
            "({rnn_trained_short} and {rnn_trained_long}), stays at "
            "{rnn_mse_short:.3f} and {rnn_mse_long:.3f} against the 0.167 of always answering 1",
        ),
        Check(
            "rnn-long-range-failure",
            lambda m: min(m["rnn_mse_short"], m["rnn_mse_long"]) >= BASELINE_MSE / 2
            and max(m["lstm_mse_long"], m["gru_mse_long"]) <= m["target_mse"],
            "a vanilla tanh RNN ({hidden} units) trained {rnn_trained_short} and {rnn_trained_long} steps on the "
            "adding problem ends at test MSE {rnn_mse_short:.3f} (T = {short_length}) and {rnn_mse_long:.3f} "
            "(T = {long_length}), no better than half the 0.167 baseline counts as failing; the LSTM and GRU, same "
            "width and data, reach {lstm_mse_long:.4f} and {gru_mse_long:.4f} at T = {long_length}",
        ),
        Check(
            "gru-matches-lstm",
            _gru_faster,
            "steps to validation MSE {target_mse}: GRU {gru_steps_short} vs LSTM {lstm_steps_short} at "
            "T = {short_length}, {gru_steps_long} vs {lstm_steps_long} at T = {long_length}; time to it with the "
            "written-out cells (steps x {gru_cell_ms_long:.0f} vs {lstm_cell_ms_long:.0f} ms a step at "
            "T = {long_length}): GRU "
            "{gru_cell_time_short:.1f} vs LSTM {lstm_cell_time_short:.1f} s and {gru_cell_time_long:.1f} vs "
            "{lstm_cell_time_long:.1f} s; with torch's fused CPU kernels (GRU {gru_kernel_ms:.1f} vs LSTM "
            "{lstm_kernel_ms:.1f} ms a step) measured {gru_time_short:.1f} vs {lstm_time_short:.1f} s and "
            "{gru_time_long:.1f} vs {lstm_time_long:.1f} s; final test MSE GRU {gru_mse_short:.4f}/{gru_mse_long:.4f}, "
            "LSTM {lstm_mse_short:.4f}/{lstm_mse_long:.4f}. Rule: fewer steps and less time at equal "
            "implementation at both lengths, both reaching the target",
        ),
    ],
    budget_s=150,  # the LSTM leaves the 0.167 plateau after 580-1580 steps at T=200, by seed
    threads=1,
)
def adding(run, cfg: AddingConfig) -> dict:
    """Vanilla RNN vs LSTM vs GRU on the adding problem at T = 100 and 200: only the gated nets learn it.

    The nets train on torch's fused RNN/LSTM/GRU kernels, run on this module's own parameters through
    Recurrent(fused=True); tests/nn/test_recurrent.py proves them equal to the written-out cells in
    values and gradients, and tests/zoo/sequence/test_lstm.py that a few Adam steps agree. The cells
    themselves are timed too, for the GRU-vs-LSTM time at equal implementation.
    """
    lengths = {"short": cfg.short_length, "long": cfg.long_length}
    results = {}
    for s, T in lengths.items():
        for kind in ("lstm", "gru"):
            results[kind, s] = train_adding(run, kind, T, cfg, cfg.max_steps)
        results["rnn", s] = train_adding(run, "rnn", T, cfg, max(results[k, s]["steps"] for k in ("lstm", "gru")))
    metrics: dict = {"short_length": cfg.short_length, "long_length": cfg.long_length, "hidden": cfg.hidden,
                     "batch_size": cfg.batch_size, "target_mse": cfg.target_mse, "baseline_mse": BASELINE_MSE}
    for kind in KINDS:
        metrics[f"{kind}_kernel_ms"] = results[kind, "long"]["ms_per_step"]
        for s, T in lengths.items():
            r = results[kind, s]
            reached = r["steps_to_target"] is not None
            steps = r["steps_to_target"] if reached else r["steps"]
            metrics[f"{kind}_mse_{s}"] = r["test_mse"]
            metrics[f"{kind}_reached_{s}"] = int(reached)
            metrics[f"{kind}_steps_{s}"] = steps
            metrics[f"{kind}_trained_{s}"] = r["steps"]
            metrics[f"{kind}_time_{s}"] = r["time_to_target"] if reached else r["ms_per_step"] * steps / 1e3
            if kind != "rnn":  # the per-step cost of the written-out gates, for the GRU-vs-LSTM rule
                cell_ms = cell_ms_per_step(kind, T, cfg, run.device)
                metrics[f"{kind}_cell_ms_{s}"] = cell_ms
                metrics[f"{kind}_cell_time_{s}"] = steps * cell_ms / 1e3

    with run.figure("adding_problem", ncols=2) as (fig, axes):
        for ax, (s, T) in zip(axes, lengths.items()):
            for kind in KINDS:
                steps, mse = zip(*results[kind, s]["curve"])
                ax.plot(steps, mse, label=kind.upper() if kind != "rnn" else "vanilla RNN")
            ax.axhline(BASELINE_MSE, color="grey", ls="--", lw=1, label="always 1 (0.167)")
            ax.axhline(cfg.target_mse, color="k", ls=":", lw=1, label=f"target {cfg.target_mse}")
            ax.set(xlabel="step", ylabel="validation MSE", yscale="log", title=f"adding problem, T = {T}")
            ax.legend(fontsize=8)
    return metrics


__all__ = ["LSTMCell", "lstm_step", "lstm_regressor", "train_adding", "AddingConfig"]
