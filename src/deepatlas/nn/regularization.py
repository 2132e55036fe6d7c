"""Regularisation: ways to make a network that fits its training set also fit data it has not seen.

Penalties add a price on the weights to the loss (L1 drives weights to exactly zero through its
proximal step, L2 shrinks them all, and for plain SGD is the same as weight decay); dropout
trains random sub-networks; early stopping keeps the weights from the epoch that validated
best; augmentation trains on label-preserving transformations of the inputs.

    \\mathcal{L}_{reg} = \\mathcal{L} + \\lambda_1 \\lVert w \\rVert_1 + \\lambda_2 \\lVert w \\rVert_2^2
    \\tilde h = m \\odot h / (1 - p),   m \\sim \\mathrm{Bernoulli}(1 - p)

Tibshirani, "Regression shrinkage and selection via the lasso", JRSS B 1996; Hoerl & Kennard,
"Ridge regression", Technometrics 1970; Hinton et al., "Improving neural networks by preventing
co-adaptation of feature detectors", arXiv 1207.0580 and Srivastava et al., JMLR 2014;
Prechelt, "Early stopping - but when?", 1998; LeCun et al., "Gradient-based learning applied
to document recognition", Proc. IEEE 1998 (distorted training digits).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn


def l1_penalty(params: Iterable[torch.Tensor]) -> torch.Tensor:
    # \lVert w \rVert_1 = \sum_i |w_i|
    return sum(p.abs().sum() for p in params)


def l2_penalty(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Sum of squared weights. For SGD, adding lam * l2_penalty to the loss is weight decay 2 * lam:
    w <- (1 - 2 eta lam) w - eta grad L. For Adam it is not (AdamW decouples the decay)."""
    # \lVert w \rVert_2^2 = \sum_i w_i^2
    return sum((p**2).sum() for p in params)


def soft_threshold(u: torch.Tensor, t: float) -> torch.Tensor:
    """The proximal step of t * |w|: after a gradient step u, weights within t of zero become exactly zero."""
    # \mathrm{prox}_{t|\cdot|}(u) = \mathrm{sign}(u) \max(|u| - t, 0)
    return torch.sign(u) * torch.clamp(u.abs() - t, min=0.0)


def _rand(shape, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device (CPU without one)."""
    return torch.rand(shape, generator=generator, device=generator.device if generator else None)


def dropout(x: torch.Tensor, p: float, training: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout: zero each entry with probability p and divide the survivors by 1 - p."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must lie in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    # m_i \sim \mathrm{Bernoulli}(1 - p)
    m = _rand(x.shape, generator).to(x.device) >= p
    # \tilde h_i = \frac{m_i h_i}{1 - p},  so  \mathbb{E}[\tilde h_i] = h_i
    return x * m / (1 - p)


class Dropout(nn.Module):
    """Inverted dropout in training mode, the identity in evaluation mode."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must lie in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.generator)


class EarlyStopping:
    """Watch a validation loss; stop after `patience` checks without an improvement of more than `min_delta`.

    `step(loss, model)` returns True when training should stop and keeps a copy of the model's
    state at the best loss; `restore(model)` loads it back.
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0):
        if patience < 1 or min_delta < 0:
            raise ValueError(f"EarlyStopping needs patience >= 1 and min_delta >= 0, got {patience}, {min_delta}")
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_step, self.steps, self.best_state = float("inf"), -1, 0, None

    def step(self, loss: float, model: nn.Module) -> bool:
        if loss < self.best - self.min_delta:
            self.best, self.best_step = float(loss), self.steps
            self.best_state = copy.deepcopy(model.state_dict())
        self.steps += 1
        # stop once t - t^{*} \ge P
        return self.steps - 1 - self.best_step >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is None:
            raise RuntimeError("EarlyStopping.restore: no loss has been recorded yet")
        model.load_state_dict(self.best_state)


def random_shift(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad images (N, C, H, W) with `padding` zeros and crop a random H x W window from each:
    every image moves by its own (dy, dx) in [-padding, padding]^2."""
    if x.dim() != 4 or padding < 0:
        raise ValueError(f"random_shift expects images (N, C, H, W) and padding >= 0, "
                         f"got shape {tuple(x.shape)} and padding {padding}")
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (padding,) * 4)  # (N, C, H + 2p, W + 2p)
    device = generator.device if generator else None
    dy, dx = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=device).to(x.device)  # corners
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]  # (N, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (N, C, H, W)


def random_flip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image (N, C, H, W) left-right with probability p (for photos, not for digits or text)."""
    if x.dim() != 4 or not 0.0 <= p <= 1.0:
        raise ValueError(f"random_flip expects images (N, C, H, W) and p in [0, 1], got {tuple(x.shape)}, {p}")
    flip = (_rand(x.shape[0], generator) < p).to(x.device)  # (N,)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    if std < 0:
        raise ValueError(f"gaussian_noise std must be >= 0, got {std}")
    # \tilde x = x + \epsilon,  \epsilon \sim \mathcal{N}(0, \sigma^2 I)
    device = generator.device if generator else None
    return x + std * torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def augment(x: torch.Tensor, generator: torch.Generator | None = None, *, shift: int = 0, flip: bool = False,
            noise_std: float = 0.0) -> torch.Tensor:
    """Shift, then (only if asked: flipping changes what a digit means) flip, then add noise."""
    if shift:
        x = random_shift(x, shift, generator)
    if flip:
        x = random_flip(x, 0.5, generator)
    if noise_std:
        x = gaussian_noise(x, noise_std, generator)
    return x
