"""Liquid time-constant network: neurons whose time constant is set, moment to moment, by their input.

Each neuron is a leaky integrator, but the leak and the drive are both gated by a network f of the
current state and input, so the effective time constant tau / (1 + tau f) varies ("liquid"). The ODE is
advanced by a fused semi-implicit Euler step, explicit in f and implicit in the linear decay, which keeps
the state bounded between its reversal potentials A for any step size.

    \\frac{dx}{dt} = -\\Big[\\frac{1}{\\tau} + f(x, I; \\theta)\\Big] \\odot x + f(x, I; \\theta) \\odot A
    x(t + \\Delta t) = \\frac{x(t) + \\Delta t\\, f(x(t), I(t); \\theta) \\odot A}{1 + \\Delta t\\,(1/\\tau + f(x(t), I(t); \\theta))}

Hasani, Lechner, Amini, Rus & Grosu, "Liquid Time-constant Networks", AAAI 2021 (arXiv:2006.04439).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.nn.linear import Linear
from deepatlas.registry import register_model


class LTCCell(nn.Module):
    """One LTC layer of `hidden` neurons; f = sigmoid(W_in I + W_rec x + b) >= 0, so the decay stays positive."""

    def __init__(self, input_size: int, hidden: int, unfolds: int = 6, generator: torch.Generator | None = None):
        super().__init__()
        self.w_in = Linear(input_size, hidden, generator=generator)
        self.w_rec = Linear(hidden, hidden, bias=False, generator=generator)
        self.log_tau = nn.Parameter(torch.zeros(hidden))  # tau = exp(log_tau) > 0
        self.A = nn.Parameter(torch.randn(hidden, generator=generator))  # reversal potentials
        self.unfolds = unfolds

    def forward(self, inp: torch.Tensor, x: torch.Tensor, dt: float | torch.Tensor = 1.0) -> torch.Tensor:
        """Advance x (B, H) over an interval dt with input inp (B, I), in `unfolds` fused steps."""
        h = dt / self.unfolds
        drive = self.w_in(inp)  # the input is held over the interval
        for _ in range(self.unfolds):
            f = torch.sigmoid(drive + self.w_rec(x))
            # x \leftarrow \frac{x + h f \odot A}{1 + h (1/\tau + f)}
            x = (x + h * f * self.A) / (1 + h * (torch.exp(-self.log_tau) + f))
        return x


class LTCNetwork(nn.Module):
    """forward(inputs (B, T, I), dt (T,) or None) -> outputs (B, T, O): an LTC layer and a linear readout.

    dt gives the time elapsed before each input, so irregular sampling is part of the model."""

    def __init__(self, input_size: int = 1, hidden: int = 16, output_size: int = 1, unfolds: int = 6,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cell = LTCCell(input_size, hidden, unfolds, generator)
        self.readout = Linear(hidden, output_size, generator=generator)

    def forward(self, inputs: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        x = inputs.new_zeros(inputs.shape[0], self.cell.log_tau.numel())
        outs = []
        for i in range(inputs.shape[1]):
            x = self.cell(inputs[:, i], x, 1.0 if dt is None else dt[i])
            outs.append(self.readout(x))
        return torch.stack(outs, 1)


@register_model("ltc", card="liquid-network", example=lambda: (torch.randn(3, 5, 2), torch.rand(5) + 0.1))
def ltc(input_size: int = 2, hidden: int = 8, output_size: int = 1) -> LTCNetwork:
    return LTCNetwork(input_size, hidden, output_size)
