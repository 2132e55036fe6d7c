"""Recurrent cells and layers: the Elman RNN, the LSTM and the GRU, with their gates written out.

A recurrent network reads a sequence one step at a time and carries a hidden state h_t that
summarises the past. The Elman cell squashes one affine map of (x_t, h_{t-1}); the LSTM adds a
memory cell c_t updated additively through input, forget and output gates, so gradients can
flow across many steps; the GRU merges the cell into h_t with an update and a reset gate.

    RNN:  h_t = \\tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})
    LSTM: c_t = f_t \\odot c_{t-1} + i_t \\odot g_t,   h_t = o_t \\odot \\tanh(c_t)
    GRU:  h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}

Elman, "Finding structure in time", Cognitive Science 1990; Hochreiter & Schmidhuber, "Long
short-term memory", Neural Computation 1997 (forget gate: Gers, Schmidhuber & Cummins, 2000);
Cho et al., "Learning phrase representations using RNN encoder-decoder for statistical machine
translation", EMNLP 2014 (arXiv 1406.1078).

Parameter names, shapes and gate order are torch's (weight_ih (G*H, I), weight_hh (G*H, H),
bias_ih, bias_hh; LSTM gates i, f, g, o; GRU gates r, z, n), so weights copy across to
nn.RNN / nn.LSTM / nn.GRU and their *Cell twins. The tests check equality in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # G: weight blocks stacked in weight_ih / weight_hh
NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


# The step functions take the input projection gi = W_ih x_t + b_ih already computed, so that a
# layer can project the whole sequence in one matmul and loop only over the recurrent part.

def rnn_step(gi: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor,
             nonlinearity: str = "tanh") -> torch.Tensor:
    """Elman step: gi (B, H), h (B, H) -> h_t (B, H)."""
    # h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})
    return NONLINEARITIES[nonlinearity](gi + F.linear(h, w_hh, b_hh))


def lstm_step(gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh: torch.Tensor,
              b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LSTM step: gi (B, 4H), h and c (B, H) -> (h_t, c_t)."""
    gates = gi + F.linear(h, w_hh, b_hh)  # (B, 4H)
    a_i, a_f, a_g, a_o = gates.chunk(4, dim=1)  # each (B, H)
    # i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi})   input gate
    i = torch.sigmoid(a_i)
    # f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf})   forget gate
    f = torch.sigmoid(a_f)
    # g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg})    candidate cell
    g = torch.tanh(a_g)
    # o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho})   output gate
    o = torch.sigmoid(a_o)
    # c_t = f_t \odot c_{t-1} + i_t \odot g_t   (the additive path that carries gradients far)
    c = f * c + i * g
    # h_t = o_t \odot \tanh(c_t)
    h = o * torch.tanh(c)
    return h, c


def gru_step(gi: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """GRU step: gi (B, 3H), h (B, H) -> h_t (B, H)."""
    gh = F.linear(h, w_hh, b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    # r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})   reset gate
    r = torch.sigmoid(i_r + h_r)
    # z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})   update gate
    z = torch.sigmoid(i_z + h_z)
    # n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))   candidate
    n = torch.tanh(i_n + r * h_n)
    # h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}
    return (1 - z) * n + z * h


def _init_uniform(params, hidden_size: int) -> None:
    """torch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in params:
            p.uniform_(-bound, bound)


class _Cell(nn.Module):
    kind = ""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"{type(self).__name__} needs input_size >= 1 and hidden_size >= 1, "
                             f"got {input_size} and {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        G = GATES[self.kind]
        self.weight_ih = nn.Parameter(torch.empty(G * hidden_size, input_size))  # (G*H, I)
        self.weight_hh = nn.Parameter(torch.empty(G * hidden_size, hidden_size))  # (G*H, H)
        self.bias_ih = nn.Parameter(torch.empty(G * hidden_size))  # (G*H,)
        self.bias_hh = nn.Parameter(torch.empty(G * hidden_size))  # (G*H,)
        _init_uniform(self.parameters(), hidden_size)

    def _check(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        name = type(self).__name__
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{name} expects x of shape (B, {self.input_size}), got {tuple(x.shape)}")
        if h is None:
            return x.new_zeros(x.shape[0], self.hidden_size)
        if tuple(h.shape) != (x.shape[0], self.hidden_size):
            raise ValueError(f"{name} expects a state of shape ({x.shape[0]}, {self.hidden_size}), "
                             f"got {tuple(h.shape)}")
        return h

    def _input_projection(self, x: torch.Tensor) -> torch.Tensor:
        # W_{ih} x_t + b_{ih}   (B, G*H)
        return F.linear(x, self.weight_ih, self.bias_ih)


class RNNCell(_Cell):
    """Elman cell: h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) with phi = tanh or relu."""

    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNNCell nonlinearity must be one of {', '.join(NONLINEARITIES)}, got {nonlinearity!r}")
        super().__init__(input_size, hidden_size)
        self.nonlinearity = nonlinearity

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        h = self._check(x, h)
        return rnn_step(self._input_projection(x), h, self.weight_hh, self.bias_hh, self.nonlinearity)


class LSTMCell(_Cell):
    """LSTM cell with a forget gate: (x_t, (h_{t-1}, c_{t-1})) -> (h_t, c_t)."""

    kind = "lstm"

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            h = c = self._check(x, None)
        else:
            h, c = self._check(x, state[0]), self._check(x, state[1])
        return lstm_step(self._input_projection(x), h, c, self.weight_hh, self.bias_hh)


class GRUCell(_Cell):
    """GRU cell: (x_t, h_{t-1}) -> h_t through a reset and an update gate."""

    kind = "gru"

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        h = self._check(x, h)
        return gru_step(self._input_projection(x), h, self.weight_hh, self.bias_hh)


_TORCH_TWIN = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class Recurrent(nn.Module):
    """A stack of recurrent layers over a batch-first sequence, optionally bidirectional.

    forward(x (B, T, I), state=None) -> (out (B, T, D*H), state), D = 2 if bidirectional else 1.
    state is torch's: h_n (L*D, B, H), and (h_n, c_n) for the LSTM; rows ordered layer by layer,
    forward direction before reverse. Dropout (training only) acts on the output of every layer
    but the last. `fused=True` runs the same parameters through torch's fused kernel (nn.RNN,
    nn.LSTM or nn.GRU via torch.func.functional_call): same numbers, many times faster at long T.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, nonlinearity: str = "tanh",
                 fused: bool = False):
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"Recurrent kind must be one of {', '.join(GATES)}, got {kind!r}")
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(f"Recurrent needs input_size, hidden_size and num_layers >= 1, "
                             f"got {input_size}, {hidden_size}, {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Recurrent dropout must lie in [0, 1), got {dropout}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"Recurrent nonlinearity must be one of {', '.join(NONLINEARITIES)}, got {nonlinearity!r}")
        if nonlinearity != "tanh" and kind != "rnn":
            raise ValueError(f"nonlinearity applies to kind='rnn' only, not {kind!r}")
        self.kind, self.input_size, self.hidden_size = kind, input_size, hidden_size
        self.num_layers, self.bidirectional, self.dropout = num_layers, bidirectional, dropout
        self.nonlinearity, self.fused = nonlinearity, fused
        self.num_directions = 2 if bidirectional else 1
        G, H = GATES[kind], hidden_size
        for k in range(num_layers):
            layer_in = input_size if k == 0 else H * self.num_directions
            for suffix in self._suffixes(k):
                setattr(self, f"weight_ih{suffix}", nn.Parameter(torch.empty(G * H, layer_in)))  # (G*H, I_k)
                setattr(self, f"weight_hh{suffix}", nn.Parameter(torch.empty(G * H, H)))  # (G*H, H)
                setattr(self, f"bias_ih{suffix}", nn.Parameter(torch.empty(G * H)))
                setattr(self, f"bias_hh{suffix}", nn.Parameter(torch.empty(G * H)))
        _init_uniform(self.parameters(), hidden_size)

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def _check_state(self, x: torch.Tensor, state):
        B, rows = x.shape[0], self.num_layers * self.num_directions
        want = (rows, B, self.hidden_size)
        if self.kind == "lstm":
            if state is None:
                zeros = x.new_zeros(want)
                return zeros, zeros
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError("Recurrent('lstm') expects state = (h_0, c_0)")
            parts = tuple(state)
        else:
            if state is None:
                return x.new_zeros(want)
            parts = (state,)
        for s in parts:
            if tuple(s.shape) != want:
                raise ValueError(f"Recurrent expects a state of shape {want} (layers*directions, B, H), "
                                 f"got {tuple(s.shape)}")
        return parts if self.kind == "lstm" else parts[0]

    def forward(self, x: torch.Tensor, state=None):
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"Recurrent expects x of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        state = self._check_state(x, state)
        if self.fused:
            return self._fused(x, state)
        h0, c0 = state if self.kind == "lstm" else (state, None)
        h_n, c_n = [], []
        for k in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes(k)):
                row = k * self.num_directions + d
                out, h, c = self._run_direction(x, suffix, reverse=d == 1,
                                                h=h0[row], c=None if c0 is None else c0[row])
                outs.append(out)  # (B, T, H)
                h_n.append(h)
                c_n.append(c)
            x = torch.cat(outs, dim=2)  # (B, T, D*H)
            if k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, self.training)
        h_n = torch.stack(h_n)  # (L*D, B, H)
        return x, ((h_n, torch.stack(c_n)) if self.kind == "lstm" else h_n)

    def _run_direction(self, x: torch.Tensor, suffix: str, reverse: bool, h: torch.Tensor, c: torch.Tensor | None):
        """One layer, one direction: x (B, T, I_k) -> (out (B, T, H), h_T, c_T)."""
        w_hh, b_hh = getattr(self, f"weight_hh{suffix}"), getattr(self, f"bias_hh{suffix}")
        # W_{ih} x_t + b_{ih} for every t at once   (B, T, G*H)
        gi = F.linear(x, getattr(self, f"weight_ih{suffix}"), getattr(self, f"bias_ih{suffix}"))
        steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
        out = [None] * x.shape[1]
        for t in steps:
            if self.kind == "lstm":
                h, c = lstm_step(gi[:, t], h, c, w_hh, b_hh)
            elif self.kind == "gru":
                h = gru_step(gi[:, t], h, w_hh, b_hh)
            else:
                h = rnn_step(gi[:, t], h, w_hh, b_hh, self.nonlinearity)
            out[t] = h
        return torch.stack(out, dim=1), h, c

    def _fused(self, x: torch.Tensor, state):
        twin = self.__dict__.get("_twin")
        if twin is None:
            extra = {"nonlinearity": self.nonlinearity} if self.kind == "rnn" else {}
            twin = _TORCH_TWIN[self.kind](self.input_size, self.hidden_size, self.num_layers, batch_first=True,
                                          dropout=self.dropout, bidirectional=self.bidirectional,
                                          device="meta", **extra)
            self.__dict__["_twin"] = twin  # kept out of the module tree: it owns no parameters
        twin.train(self.training)
        return functional_call(twin, dict(self.named_parameters()), (x, state), strict=True)


__all__ = ["RNNCell", "LSTMCell", "GRUCell", "Recurrent", "rnn_step", "lstm_step", "gru_step", "GATES"]
