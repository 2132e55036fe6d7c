"""Deep (stacked) RNN: recurrent layers on top of each other, each reading the state sequence below.

Layer 1 reads the inputs; layer l reads the hidden states of layer l-1 at every step, so the
network is deep along time and across layers. One recurrent layer computes its new state from
the old state and the input through a single layer of gates; stacking lets later layers run
their own recurrences over features the earlier ones computed, composing simple sequential
computations into harder ones. Graves, Mohamed and Hinton's deep bidirectional LSTMs set the
TIMIT phoneme record this way, and multi-layer LSTMs became standard in translation.

    h_t^{(l)} = f(W^{(l)} h_t^{(l-1)} + U^{(l)} h_{t-1}^{(l)} + b^{(l)}),  h_t^{(0)} = x_t,   y_t = W_y h_t^{(L)} + b_y

Graves, Mohamed & Hinton, "Speech recognition with deep recurrent neural networks", ICASSP 2013
(arXiv 1303.5778).

The stack is deepatlas.nn.recurrent.Recurrent(num_layers=L) (weight_ih_l{k} reads layer k-1);
the tagger is rnn.py's RecurrentTagger.

What stacking buys is measured on delayed recall, y_t = x_{t-d}: a state must hold the last d
tokens at once, and delays compose (a layer that delays by d_1 under one that delays by d_2
delays by d_1 + d_2), so L layers of width H bring L*H cells to a task one layer of width H
must do alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepatlas.data.tagging import IGNORE, delayed_tags
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.sequence.rnn import RecurrentTagger, count, matched_hidden, tag_accuracy


@register_model("stacked_lstm", card="deep-rnn", example=lambda: (torch.randint(0, 4, (2, 9)),))
def stacked_lstm(vocab_size: int = 4, n_tags: int = 4, embed_size: int = 8, hidden_size: int = 8,
                 num_layers: int = 3) -> RecurrentTagger:
    return RecurrentTagger(vocab_size, n_tags, embed_size, hidden_size, "lstm", num_layers=num_layers)


# --- deep-rnn/stacking: 1, 2 and 3 layers of equal width on delayed recall ------------------------------

@dataclass
class StackConfig:
    length: int = 32
    vocab: int = 4
    delay: int = 6  # y_t = x_{t-delay}
    hidden: int = 8  # width of every layer
    layers: str = "1,2,3"
    n_test: int = 1000
    steps: int = 800  # each batch is fresh data
    batch_size: int = 64
    lr: float = 0.01  # Adam


@lab(
    "deep-rnn/stacking",
    card="deep-rnn",
    config=StackConfig,
    scales={"quick": {"length": 12, "delay": 3, "n_test": 128, "steps": 20, "layers": "1,2"},
            "default": {}, "full": {"length": 64, "delay": 16, "hidden": 16, "layers": "1,2,3,4", "steps": 4000}},
    goals=[Goal("best_stacked_acc", ">=", 0.95)],
    claims=[
        Check(
            "deep-rnn-more-expressive",
            lambda m: m["best_stacked_acc"] >= 0.95 and m["acc_1"] < 0.9,
            "recalling the token {delay} steps back at every step ({vocab} symbols, length {length}): one LSTM "
            "layer of width {hidden} tags {acc_1:.3f} of held-out positions correctly after {steps} steps, the "
            "best stack of the same width ({best_layers} layers) {best_stacked_acc:.3f}. Rule: a stack learns it "
            "(>= 0.95) where the single layer of the same width does not (< 0.9). Width is not parameters: one "
            "layer of width {wide_hidden} with as many parameters as the deepest stack ({wide_params} vs "
            "{deepest_params}) reaches {wide_acc:.3f}",
        ),
    ],
    budget_s=60,
    threads=1,
)
def stacking(run, cfg: StackConfig) -> dict:
    """1 vs 2 vs 3 stacked LSTM layers of equal width on delayed recall, and one wide layer of equal parameters."""
    test = delayed_tags(cfg.n_test, cfg.length, cfg.vocab, cfg.delay, seed=2 * run.seed + 1)
    x_test, y_test = test.x.to(run.device), test.y.to(run.device)
    layers = [int(n) for n in cfg.layers.split(",")]

    def tagger(hidden: int, num_layers: int) -> RecurrentTagger:
        return RecurrentTagger(cfg.vocab, cfg.vocab, cfg.hidden, hidden, "lstm", num_layers=num_layers, fused=True)

    with torch.device("meta"):
        deepest_params = count(tagger(cfg.hidden, max(layers)))
    wide = matched_hidden(deepest_params, lambda h: tagger(h, 1))
    nets = {f"{n}": (cfg.hidden, n) for n in layers} | {"wide": (wide, 1)}
    metrics, curves = {}, {}
    for name, (hidden, n) in run.progress(list(nets.items()), desc="stacks"):
        torch.manual_seed(run.seed)
        net = tagger(hidden, n).to(run.device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        curves[name] = []
        for step in range(cfg.steps):
            # the same stream of fresh training batches for every net, never the test seed (odd)
            batch = delayed_tags(cfg.batch_size, cfg.length, cfg.vocab, cfg.delay,
                                 seed=2 * (run.seed * cfg.steps + step + 1_000))
            x, y = batch.x.to(run.device), batch.y.to(run.device)
            # \mathcal{L} = -\frac{1}{|\{t \ge d\}|} \sum_{t \ge d} \log p(y_t = x_{t-d} \mid x_{1..t})
            loss = F.cross_entropy(net(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 20 == 0 or step == cfg.steps - 1:
                run.log(step, **{f"loss_{name}": loss})
                curves[name].append((step, loss.item()))
        with torch.no_grad():
            metrics[f"acc_{name}"] = tag_accuracy(net(x_test), y_test)
        metrics[f"params_{name}"] = count(net)

    stacked = [n for n in layers if n > 1]
    best = max(stacked, key=lambda n: metrics[f"acc_{n}"]) if stacked else layers[0]
    with run.figure("stacking", ncols=2) as (fig, (ax_loss, ax_acc)):
        for name, curve in curves.items():
            label = f"1 layer, width {wide}" if name == "wide" else f"{name} layer(s), width {cfg.hidden}"
            ax_loss.plot(*zip(*curve), ls=":" if name == "wide" else "-", label=label)
        ax_loss.set(xlabel="step", ylabel="cross-entropy (train batch)", yscale="log",
                    title=f"recall the token {cfg.delay} steps back")
        ax_loss.legend(fontsize=8)
        ax_acc.bar([f"{n}x{cfg.hidden}" for n in layers] + [f"1x{wide}"],
                   [metrics[f"acc_{n}"] for n in layers] + [metrics["acc_wide"]],
                   color=["#1f77b4"] * len(layers) + ["#999999"])
        ax_acc.axhline(1 / cfg.vocab, color="grey", ls="--", lw=1, label="chance")
        ax_acc.set(xlabel="layers x width", ylabel="test accuracy", ylim=(0, 1.05), title="per-step tags")
        ax_acc.legend(fontsize=8)
    return {
        **metrics, "best_stacked_acc": metrics[f"acc_{best}"], "best_layers": best, "wide_hidden": wide,
        "wide_acc": metrics["acc_wide"], "wide_params": metrics["params_wide"], "deepest_params": deepest_params,
        "hidden": cfg.hidden, "delay": cfg.delay, "vocab": cfg.vocab, "length": cfg.length, "steps": cfg.steps,
    }


__all__ = ["stacked_lstm"]
