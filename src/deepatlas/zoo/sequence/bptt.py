"""Backpropagation through time: the unrolled recurrent net is a deep net whose layers share weights.

Unrolled over T steps, a recurrent network is a T-layer feed-forward network with the same
weights in every layer; backpropagation through it sums each step's contribution to the shared
gradient. The gradient that reaches h_t from a loss at step T passes through one Jacobian per
step in between, so its size behaves like a product of T - t factors: it fades exponentially
when the factors are contractions (spectral radius of W_hh below one, or saturated tanh units)
and can grow exponentially when they expand. For a tanh RNN the factor is diag(1 - h_j^2) W_hh.

    \\frac{\\partial L}{\\partial h_t} = \\Big(\\prod_{j=t+1}^{T} \\frac{\\partial h_j}{\\partial h_{j-1}}\\Big)^{\\!\\top} \\frac{\\partial L}{\\partial h_T},
    \\qquad \\frac{\\partial h_j}{\\partial h_{j-1}} = \\operatorname{diag}(1 - h_j^2)\\, W_{hh}

Werbos, "Backpropagation through time: what it does and how to do it", Proc. IEEE 78(10), 1990;
Bengio, Simard & Frasconi, "Learning long-term dependencies with gradient descent is difficult",
IEEE TNN 1994; Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural
networks", ICML 2013 (arXiv 1211.5063): a radius above one is necessary for explosion, not sufficient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.recurrent import LSTMCell, RNNCell


def orthogonal_rnn(input_size: int, hidden_size: int, radius: float, generator: torch.Generator) -> RNNCell:
    """A tanh cell with W_hh = radius * Q (Q orthogonal: every singular value, and |eigenvalue|, is `radius`),
    W_ih ~ N(0, 1/I), zero biases; float64."""
    cell = RNNCell(input_size, hidden_size).double()
    q, _ = torch.linalg.qr(torch.randn(hidden_size, hidden_size, generator=generator, dtype=torch.float64))
    with torch.no_grad():
        cell.weight_hh.copy_(radius * q)
        cell.weight_ih.copy_(torch.randn(hidden_size, input_size, generator=generator, dtype=torch.float64)
                             / math.sqrt(input_size))
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    return cell


def state_gradients(cell, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unroll `cell` over x (B, T, I) from a zero state; L = sum_b u . h_T.

    Returns dL/d(state_t) for every t (T, B, S) by autograd, S = H for an RNN and 2H for an LSTM
    ([dL/dh_t, dL/dc_t]), and the hidden states h_t (T, B, H)."""
    B, T, _ = x.shape
    zeros = x.new_zeros(B, cell.hidden_size)
    lstm = isinstance(cell, LSTMCell)
    h, c = zeros, zeros
    states = []
    for t in range(T):
        if lstm:
            h, c = cell(x[:, t], (h, c))
            c.retain_grad()
        else:
            h = cell(x[:, t], h)
        h.retain_grad()  # keep dL/dh_t: the total derivative through every later step
        states.append((h, c))
    # L = \sum_b u^\top h_T
    (states[-1][0] @ u).sum().backward()
    grads = [torch.cat([h.grad, c.grad], 1) if lstm else h.grad for h, c in states]
    return torch.stack(grads), torch.stack([h.detach() for h, _ in states])


def jacobian_product(cell: RNNCell, hs: torch.Tensor, g_T: torch.Tensor) -> torch.Tensor:
    """dL/dh_t for every t by the explicit BPTT recursion of a tanh cell, no autograd: (T, B, H)."""
    grads = [g_T]
    for j in range(hs.shape[0] - 1, 0, -1):
        # \partial L / \partial h_{j-1} = W_{hh}^\top \operatorname{diag}(1 - h_j^2)\, \partial L / \partial h_j
        grads.append(((1 - hs[j] ** 2) * grads[-1]) @ cell.weight_hh.detach())
    return torch.stack(grads[::-1])


def fit_rate(grads: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """Mean log-norm of the gradient by lag k = T - t, and the least-squares line through it:
    (log norms (T,), rate per step, R^2). A straight line in log space is exponential decay or growth."""
    log_norm = grads.norm(dim=2).log().mean(1).flip(0)  # (T,), lag 0 first
    k = torch.arange(len(log_norm), dtype=log_norm.dtype)
    A = torch.stack([k, torch.ones_like(k)], 1)  # (T, 2)
    # \min_{a, b} \sum_k (\log\|g_k\| - a k - b)^2
    a, b = torch.linalg.lstsq(A, log_norm[:, None]).solution[:, 0]
    resid = log_norm - (a * k + b)
    r2 = 1 - resid.square().sum() / (log_norm - log_norm.mean()).square().sum()
    return log_norm, a.item(), r2.item()


# --- bptt/gradient-decay: how ||dL/dh_t|| depends on the distance to the loss ------------------------

@dataclass
class DecayConfig:
    hidden: int = 64
    inputs: int = 8
    length: int = 60
    batch: int = 32
    input_scale: float = 1.0  # x_t ~ N(0, input_scale^2)
    radii: str = "0.5,0.9,1.0,1.5,3.0"  # spectral radii of W_hh for the tanh RNN
    forget_bias: float = 3.0  # added to the LSTM's forget-gate bias for its "open gate" run


@lab(
    "bptt/gradient-decay",
    card="bptt",
    config=DecayConfig,
    scales={"quick": {"hidden": 16, "length": 20, "batch": 8}, "default": {},
            "full": {"hidden": 256, "length": 200, "batch": 64}},
    goals=[Goal("product_err", "<=", 1e-9), Goal("rnn_min_r2", ">=", 0.95)],
    claims=[
        Check(
            "bptt-gradient-product",
            lambda m: m["product_err"] <= 1e-9 and m["rnn_min_r2"] >= 0.95
            and m["rnn_min_rate"] < 0 < m["rnn_max_rate"],
            "autograd's dL/dh_t in a tanh RNN equals the hand-written product of Jacobians diag(1 - h^2) W_hh to "
            "relative error {product_err:.1e}; over {length} steps log ||dL/dh_t|| is a straight line in the lag "
            "(R^2 >= {rnn_min_r2:.4f} for every radius): rate {rnn_min_rate:.3f} per step at spectral radius "
            "{rnn_min_rate_radius} (vanishing: {rnn_min_rate_decades:.1f} decades lost over the sequence) up to "
            "{rnn_max_rate:+.3f} at radius {rnn_max_rate_radius} (exploding); the rate never exceeds the bound "
            "log(radius) ({bound_violations} violations), and tanh saturation keeps it far below that bound above "
            "radius 1: {vanishing_above_one} of the radii above 1 still vanish. "
            "An LSTM at torch's initialisation fades too ({lstm_rate:.3f} per step, mean forget gate "
            "{lstm_forget:.2f}); with forget bias +{forget_bias} (gate {lstm_open_forget:.2f}) its rate is "
            "{lstm_open_rate:+.3f}",
        ),
    ],
    budget_s=20,
    threads=1,
)
def gradient_decay(run, cfg: DecayConfig) -> dict:
    """||dL/dh_t|| against the distance to the loss: exponential in the lag, rate set by the Jacobians."""
    g = torch.Generator().manual_seed(run.seed)
    radii = [float(r) for r in cfg.radii.split(",")]
    x = cfg.input_scale * torch.randn(cfg.batch, cfg.length, cfg.inputs, generator=g, dtype=torch.float64)
    u = torch.randn(cfg.hidden, generator=g, dtype=torch.float64)  # the read-out the loss uses
    curves, rates, r2s, product_err = {}, {}, {}, 0.0
    for r in run.progress(radii, desc="tanh RNN radii"):
        cell = orthogonal_rnn(cfg.inputs, cfg.hidden, r, g)
        grads, hs = state_gradients(cell, x, u)  # (T, B, H) each
        by_hand = jacobian_product(cell, hs, grads[-1])
        product_err = max(product_err, ((by_hand - grads).norm() / grads.norm()).item())
        curves[f"tanh RNN, radius {r:g}"], rates[r], r2s[r] = fit_rate(grads)

    lstm = {}
    for name, extra in (("lstm", 0.0), ("lstm_open", cfg.forget_bias)):
        torch.manual_seed(run.seed)
        cell = LSTMCell(cfg.inputs, cfg.hidden).double()
        H = cfg.hidden
        with torch.no_grad():
            cell.bias_hh[H:2 * H] += extra  # gate order i, f, g, o: rows H..2H are the forget gate
            # f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}), averaged over the sequence
            forget = torch.sigmoid(cell.bias_ih[H:2 * H] + cell.bias_hh[H:2 * H]).mean().item()
        grads, _ = state_gradients(cell, x, u)
        log_norm, rate, r2 = fit_rate(grads)
        label = "LSTM, torch init" if extra == 0 else f"LSTM, forget bias +{extra:g}"
        curves[label] = log_norm
        lstm.update({f"{name}_rate": rate, f"{name}_r2": r2, f"{name}_forget": forget})
    run.log(0, product_err=product_err)

    lo, hi = min(radii, key=rates.get), max(radii, key=rates.get)
    with run.figure("gradient_decay", ncols=2) as (fig, (ax, ax_rate)):
        for label, log_norm in curves.items():
            ax.plot(log_norm / math.log(10), ls="--" if "LSTM" in label else "-", label=label)
        ax.set(xlabel="distance to the loss T - t (steps)", ylabel="log10 ||dL/dh_t|| (LSTM: of [h_t, c_t])",
               title=f"BPTT over {cfg.length} steps")
        ax.legend(fontsize=7)
        ax_rate.plot([math.log(r) for r in radii], [rates[r] for r in radii], "o-", label="measured rate")
        ax_rate.plot([math.log(r) for r in radii], [math.log(r) for r in radii], "k:", label="bound log(radius)")
        ax_rate.axhline(0, color="grey", lw=0.8)
        ax_rate.set(xlabel="log spectral radius of W_hh", ylabel="fitted rate per step", title="tanh RNN")
        ax_rate.legend(fontsize=8)
    return {
        "product_err": product_err, "rnn_min_r2": min(r2s.values()),
        "rnn_min_rate": rates[lo], "rnn_min_rate_radius": lo,
        "rnn_min_rate_decades": -rates[lo] * (cfg.length - 1) / math.log(10),
        "rnn_max_rate": rates[hi], "rnn_max_rate_radius": hi,
        "bound_violations": sum(rates[r] > math.log(r) + 1e-9 for r in radii),
        "vanishing_above_one": sum(rates[r] < 0 for r in radii if r > 1),
        **{f"rnn_rate_{i}": rates[r] for i, r in enumerate(radii)},
        **lstm, "forget_bias": cfg.forget_bias, "length": cfg.length,
    }


__all__ = ["orthogonal_rnn", "state_gradients", "jacobian_product", "fit_rate"]
