"""Bidirectional RNN: one recurrent net reads left to right, another right to left, and every
position sees both.

A left-to-right RNN's state at t summarises x_1..x_t only, so a tag that depends on what comes
next is out of its reach however long it trains. Schuster and Paliwal run a second, independent
RNN over the reversed sequence and concatenate the two states at each position: the forward state
carries the past, the backward state the future. It needs the whole input in advance, so it suits
tagging, classification and encoders, not step-by-step generation.

    \\overrightarrow{h}_t = f(x_t, \\overrightarrow{h}_{t-1}),   \\overleftarrow{h}_t = f'(x_t, \\overleftarrow{h}_{t+1}),
    h_t = [\\overrightarrow{h}_t ; \\overleftarrow{h}_t]

Schuster & Paliwal, "Bidirectional recurrent neural networks", IEEE Trans. Signal Processing
45(11), 1997.

The two directions are deepatlas.nn.recurrent.Recurrent(bidirectional=True) (the reverse pass is
`_run_direction(..., reverse=True)`); the tagger is rnn.py's RecurrentTagger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.tagging import IGNORE, tagging_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.sequence.rnn import RecurrentTagger, count, matched_hidden, tag_accuracy


@register_model("birnn_tagger", card="birnn", example=lambda: (torch.randint(0, 4, (2, 9)),))
def birnn_tagger(vocab_size: int = 4, n_tags: int = 16, embed_size: int = 16, hidden_size: int = 32,
                 kind: str = "lstm", head_hidden: int = 0) -> RecurrentTagger:
    return RecurrentTagger(vocab_size, n_tags, embed_size, hidden_size, kind, bidirectional=True,
                           head_hidden=head_hidden)


class Reversed(nn.Module):
    """A tagger that reads the sequence right to left: tags of x reversed, reversed back."""

    def __init__(self, tagger: nn.Module):
        super().__init__()
        self.tagger = tagger

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, n_tags)
        return self.tagger(x.flip(1)).flip(1)


# --- birnn/future-context: a tag that needs the token before AND the token after ---------------------

@dataclass
class FutureConfig:
    length: int = 16
    vocab: int = 4
    past: int = 2  # y_t = vocab * x_{t-past} + x_{t+future}
    future: int = 2
    n_train: int = 4000
    n_test: int = 1000
    hidden: int = 32  # per direction of the BiRNN; the one-way nets get as many parameters
    embed: int = 16
    head_hidden: int = 0  # a linear read-out: the pair's logit is a sum of a past and a future part
    kind: str = "lstm"
    steps: int = 600
    batch_size: int = 64
    lr: float = 0.01  # Adam


@lab(
    "birnn/future-context",
    card="birnn",
    config=FutureConfig,
    scales={"quick": {"length": 10, "n_train": 256, "n_test": 128, "hidden": 8, "steps": 30},
            "default": {}, "full": {"length": 64, "past": 8, "future": 8, "hidden": 64, "steps": 3000}},
    goals=[Goal("bi_acc", ">=", 0.95)],
    claims=[
        Check(
            "birnn-future-context",
            lambda m: m["bi_acc"] >= max(m["fwd_acc"], m["bwd_acc"]) + 0.2,
            "tagging each position with the pair (x_(t-{past}), x_(t+{future})), {vocab}^2 tags: the "
            "bidirectional LSTM tagger "
            "({bi_params} parameters) tags {bi_acc:.3f} of held-out positions correctly; a left-to-right one of "
            "{fwd_params} parameters {fwd_acc:.3f} and a right-to-left one {bwd_acc:.3f}, where one "
            "direction alone can be right {ceiling:.3f} of the time at most (chance {chance:.4f}). Rule: both "
            "directions beat the better one-way net by 0.2 or more",
        ),
    ],
    budget_s=45,
    threads=1,
)
def future_context(run, cfg: FutureConfig) -> dict:
    """A BiRNN against one-way RNNs of equal size on tags that need the past and the future."""
    data = tagging_split("context_pair", cfg.n_train, cfg.n_test, seed=run.seed, length=cfg.length,
                         vocab=cfg.vocab, past=cfg.past, future=cfg.future).to(run.device)

    def tagger(hidden: int, bidirectional: bool) -> RecurrentTagger:
        return RecurrentTagger(cfg.vocab, cfg.vocab**2, cfg.embed, hidden, cfg.kind, bidirectional=bidirectional,
                               head_hidden=cfg.head_hidden, fused=True)

    with torch.device("meta"):
        bi_params = count(tagger(cfg.hidden, True))
    one_way = matched_hidden(bi_params, lambda h: tagger(h, False))
    g = torch.Generator().manual_seed(run.seed)
    models, curves, metrics = {}, {}, {}
    for name in run.progress(["bi", "fwd", "bwd"], desc="taggers"):
        torch.manual_seed(run.seed)
        net = tagger(cfg.hidden, True) if name == "bi" else tagger(one_way, False)
        models[name] = (Reversed(net) if name == "bwd" else net).to(run.device)
        opt = torch.optim.Adam(models[name].parameters(), lr=cfg.lr)
        curves[name] = []
        for step in range(cfg.steps):
            idx = torch.randint(0, cfg.n_train, (cfg.batch_size,), generator=g).to(run.device)
            logits = models[name](data.x_train[idx])  # (B, T, vocab^2)
            # \mathcal{L} = -\frac{1}{|\{t: y_t \ne \varnothing\}|} \sum_t \log p(y_t \mid x_{1..T})
            loss = F.cross_entropy(logits.flatten(0, 1), data.y_train[idx].flatten(), ignore_index=IGNORE)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 20 == 0 or step == cfg.steps - 1:
                run.log(step, **{f"{name}_loss": loss})
                curves[name].append((step, loss.item()))
        with torch.no_grad():
            metrics[f"{name}_acc"] = tag_accuracy(models[name](data.x_test), data.y_test)
        metrics[f"{name}_params"] = count(models[name])

    with run.figure("future_context", ncols=2) as (fig, (ax_loss, ax_pos)):
        labels = {"bi": "bidirectional", "fwd": "left to right", "bwd": "right to left"}
        for name, curve in curves.items():
            ax_loss.plot(*zip(*curve), label=f"{labels[name]} ({metrics[f'{name}_params']} params)")
        ax_loss.set(xlabel="step", ylabel="cross-entropy (train batch)", yscale="log", title="training")
        ax_loss.legend(fontsize=8)
        keep = data.y_test != IGNORE
        positions = torch.arange(cfg.length)[keep[0].cpu()]
        with torch.no_grad():
            for name, model in models.items():
                right = (model(data.x_test).argmax(-1) == data.y_test).float()  # (N, T)
                ax_pos.plot(positions, right[:, keep[0]].mean(0).cpu(), "o-", label=labels[name])
        ax_pos.axhline(1 / cfg.vocab, color="grey", ls="--", lw=1, label="one-way ceiling")
        ax_pos.set(xlabel="position t", ylabel="test accuracy", ylim=(0, 1.05),
                   title=f"tag = (x_(t-{cfg.past}), x_(t+{cfg.future}))")
        ax_pos.legend(fontsize=8)
    return {**metrics, "chance": 1 / cfg.vocab**2, "ceiling": 1 / cfg.vocab, "one_way_hidden": one_way,
            "hidden": cfg.hidden,
            "past": cfg.past, "future": cfg.future, "vocab": cfg.vocab, "steps": cfg.steps}


__all__ = ["birnn_tagger", "Reversed"]
