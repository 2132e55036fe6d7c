"""The Elman recurrent network: one set of weights applied at every step, a hidden state carried along.

At step t the network mixes the new input x_t with its previous hidden state h_{t-1} through
one affine map and a tanh, so h_t is a learned, fixed-size summary of x_1..x_t; a read-out
layer turns the last state into the prediction. Because the same weights act at every step,
one network handles sequences of any length; trained by backpropagation through time, its
gradient is a product of one Jacobian per step (see bptt.py), which is why long-range
dependencies are hard for it (lstm/adding-problem measures how hard).

    h_t = \\tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),   \\hat y = W_y h_T + b_y

Elman, "Finding structure in time", Cognitive Science 14(2), 1990.

The cell is deepatlas.nn.recurrent.RNNCell (its step is `rnn_step`); `Recurrent` runs it over a
sequence, stacked and in both directions. The two read-outs here serve the whole recurrent family:
RecurrentRegressor (one answer per sequence: lstm.py, gru.py) and RecurrentTagger (one tag per
step: birnn.py, deep_rnn.py); only `kind`, `num_layers` and `bidirectional` change.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.data.tagging import IGNORE
from deepatlas.nn.recurrent import Recurrent, RNNCell, rnn_step
from deepatlas.registry import register_model


class RecurrentRegressor(nn.Module):
    """A recurrent encoder and a linear read-out of its last top-layer state.

    x (B, T, I) -> (B, output_size): a regression value or class logits for the whole sequence.
    kind is "rnn" (Elman), "lstm" or "gru"; fused=True runs torch's kernel on the same weights.
    """

    def __init__(self, kind: str = "rnn", input_size: int = 2, hidden_size: int = 32, output_size: int = 1,
                 num_layers: int = 1, nonlinearity: str = "tanh", fused: bool = False):
        super().__init__()
        self.rnn = Recurrent(kind, input_size, hidden_size, num_layers=num_layers, nonlinearity=nonlinearity,
                             fused=fused)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)  # (B, T, H): the top layer's state at every step
        # \hat y = W_y h_T + b_y
        return self.head(h[:, -1])  # (B, output_size)


class RecurrentTagger(nn.Module):
    """Token embeddings, a recurrent encoder and a per-step read-out: x (B, T) tokens -> (B, T, n_tags) logits.

    head_hidden > 0 puts one tanh layer in the read-out, so that a tag may depend nonlinearly on
    what the two directions of a bidirectional encoder found (birnn.py needs that).
    """

    def __init__(self, vocab_size: int, n_tags: int, embed_size: int = 16, hidden_size: int = 32, kind: str = "lstm",
                 num_layers: int = 1, bidirectional: bool = False, head_hidden: int = 0, fused: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = Recurrent(kind, embed_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                             fused=fused)
        width = hidden_size * (2 if bidirectional else 1)
        self.head = (nn.Sequential(nn.Linear(width, head_hidden), nn.Tanh(), nn.Linear(head_hidden, n_tags))
                     if head_hidden else nn.Linear(width, n_tags))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embed(x))  # (B, T, D*H)
        return self.head(h)  # (B, T, n_tags)


@register_model("rnn_regressor", card="rnn", example=lambda: (torch.rand(2, 7, 2),))
def rnn_regressor(input_size: int = 2, hidden_size: int = 32, output_size: int = 1, num_layers: int = 1,
                  nonlinearity: str = "tanh") -> RecurrentRegressor:
    return RecurrentRegressor("rnn", input_size, hidden_size, output_size, num_layers, nonlinearity)


# --- helpers the family's labs share ------------------------------------------------------------------

def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def matched_hidden(target: int, make) -> int:
    """The hidden size h whose model make(h) has the parameter count closest to `target` (the count grows with h)."""
    with torch.device("meta"):
        lo, hi = 1, 1
        while count(make(hi)) < target:
            lo, hi = hi, 2 * hi
        while lo < hi:  # the smallest h with count(make(h)) >= target
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if count(make(mid)) < target else (lo, mid)
        return min((h for h in (lo - 1, lo) if h >= 1), key=lambda h: abs(count(make(h)) - target))


def tag_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy over the positions that carry a tag (y != IGNORE)."""
    keep = y != IGNORE
    return (logits.argmax(-1)[keep] == y[keep]).float().mean().item()


__all__ = ["RecurrentRegressor", "RecurrentTagger", "RNNCell", "rnn_step", "rnn_regressor", "count", "matched_hidden",
           "tag_accuracy"]
