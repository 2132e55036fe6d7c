"""A generated waveform family for autoregressive audio models (WaveNet's stand-in for speech).

Every sequence is one periodic wave of a random shape (sine, square, sawtooth or triangle), a
random period of 6 to 24 samples, a random phase and amplitude, plus AR(1) noise:

    x_t = A\\,s\\big((t + \\phi) / P\\big) + n_t,   n_t = \\rho\\, n_{t-1} + \\sigma \\varepsilon_t,
    clipped to [-1, 1]

A model that predicts x_t from x_{<t} must infer the shape and the period from the context it sees;
the jumps of square and sawtooth waves are what a linear autoregression cannot predict. Everything
is a pure function of a torch.Generator (or a seed); the global RNG is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SHAPES = ("sine", "square", "sawtooth", "triangle")
PERIOD = (6.0, 24.0)
AMPLITUDE = (0.3, 0.9)


@dataclass
class Waveforms:
    """n waves: x (n, length) in [-1, 1]; shape index into SHAPES, period, amplitude (n,)."""

    x: torch.Tensor
    shape: torch.Tensor
    period: torch.Tensor
    amplitude: torch.Tensor


def periodic_shape(u: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """One period of each shape on the phase u in [0, 1): u (n, T), shape (n,) -> (n, T) in [-1, 1]."""
    waves = torch.stack([
        torch.sin(2 * torch.pi * u),  # sine
        torch.where(u < 0.5, 1.0, -1.0),  # square
        2 * u - 1,  # sawtooth
        1 - 4 * (u - 0.5).abs(),  # triangle
    ])  # (4, n, T)
    return waves.gather(0, shape[None, :, None].expand(1, *u.shape))[0]


def sample_waveforms(n: int, length: int, generator: torch.Generator | int = 0, noise: float = 0.03,
                     rho: float = 0.8) -> Waveforms:
    """n waves of `length` samples; `noise` is the AR(1) innovation's std sigma, `rho` its coefficient."""
    if n < 1 or length < 2:
        raise ValueError(f"need n >= 1 and length >= 2, got {n} and {length}")
    if not 0 <= rho < 1 or noise < 0:
        raise ValueError(f"need 0 <= rho < 1 and noise >= 0, got rho={rho}, noise={noise}")
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(generator)
    shape = torch.randint(0, len(SHAPES), (n,), generator=g)
    period = PERIOD[0] + (PERIOD[1] - PERIOD[0]) * torch.rand(n, generator=g)
    amplitude = AMPLITUDE[0] + (AMPLITUDE[1] - AMPLITUDE[0]) * torch.rand(n, generator=g)
    phase = torch.rand(n, generator=g)
    t = torch.arange(length, dtype=torch.float32)
    u = torch.frac(t[None] / period[:, None] + phase[:, None])  # (n, T) phase within the period
    eps = torch.randn(n, length, generator=g)
    noise_t = torch.empty(n, length)
    # n_t = \rho n_{t-1} + \sigma \varepsilon_t, started from its stationary distribution
    prev = eps[:, 0] * noise / (1 - rho ** 2) ** 0.5
    for i in range(length):
        prev = prev if i == 0 else rho * prev + noise * eps[:, i]
        noise_t[:, i] = prev
    x = (amplitude[:, None] * periodic_shape(u, shape) + noise_t).clamp(-1.0, 1.0)
    return Waveforms(x, shape, period, amplitude)


def waveform_split(n_train: int = 512, n_test: int = 128, length: int = 256, seed: int = 0):
    """The data-catalogue loader: a Split of train and test waves (x only, the shape as label)."""
    from deepatlas.data import Split, split_seeds

    train_seed, test_seed = split_seeds(seed)
    train = sample_waveforms(n_train, length, train_seed)
    test = sample_waveforms(n_test, length, test_seed)
    meta = {"source": "waveforms", "length": length, "shapes": SHAPES, "period": PERIOD, "seed": seed}
    return Split(train.x, train.shape, test.x, test.shape, meta)
