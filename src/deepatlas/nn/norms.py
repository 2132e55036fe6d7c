"""Normalisation layers: standardise activations over some axes, then rescale with a learned gain and bias.

All four share one step, x_hat = (x - mean) / sqrt(var + eps) with the biased variance; they
differ only in the axes the statistics pool over. BatchNorm pools over the batch (and the
positions) per channel, so it needs running averages for inference; LayerNorm pools over the
features of one example; InstanceNorm over the positions of one channel of one example;
GroupNorm over the positions of a group of channels of one example.

    \\hat x = (x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon},   y = \\gamma \\hat x + \\beta

Ioffe & Szegedy, "Batch normalization", ICML 2015 (arXiv 1502.03167); Ba, Kiros & Hinton,
"Layer normalization", arXiv 1607.06450; Ulyanov, Vedaldi & Lempitsky, "Instance normalization",
arXiv 1607.08022; Wu & He, "Group normalization", ECCV 2018 (arXiv 1803.08494).
"""

from __future__ import annotations

import torch
from torch import nn


def standardize(x: torch.Tensor, dims: tuple[int, ...], eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_hat, mean, biased var) with the statistics taken over `dims` (kept as size-1 axes)."""
    # \mu = \frac{1}{m} \sum_i x_i
    mean = x.mean(dim=dims, keepdim=True)
    # \sigma^2 = \frac{1}{m} \sum_i (x_i - \mu)^2   (biased: divides by m)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    # \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}
    return (x - mean) / torch.sqrt(var + eps), mean, var


def _channel_shape(x: torch.Tensor) -> tuple[int, ...]:
    """(1, C, 1, ...): a per-channel vector broadcast against x of shape (N, C, ...)."""
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


class BatchNorm(nn.Module):
    """Per-channel statistics over the batch and positions of x (N, C), (N, C, L) or (N, C, H, W).

    Training mode normalises with the batch statistics and updates running averages (the
    variance stored unbiased, as PyTorch does); evaluation mode normalises with the averages.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"BatchNorm needs num_features >= 1, got {num_features}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must lie in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None  # gamma (C,)
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None  # beta (C,)
        self.register_buffer("running_mean", torch.zeros(num_features))  # (C,)
        self.register_buffer("running_var", torch.ones(num_features))  # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 3, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) expects (N, {self.num_features}), (N, C, L) or "
                             f"(N, C, H, W) with C = {self.num_features}, got shape {tuple(x.shape)}")
        dims = (0,) + tuple(range(2, x.dim()))  # every axis but the channel
        shape = _channel_shape(x)
        if self.training:
            m = x.numel() // self.num_features  # values per channel
            if m < 2:
                raise ValueError(f"BatchNorm in training mode needs more than one value per channel, "
                                 f"got input of shape {tuple(x.shape)}")
            x_hat, mean, var = standardize(x, dims, self.eps)
            with torch.no_grad():
                # \hat\mu \leftarrow (1 - \alpha) \hat\mu + \alpha \mu_B
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.reshape(-1))
                # \hat\sigma^2 \leftarrow (1 - \alpha) \hat\sigma^2 + \alpha \frac{m}{m-1} \sigma_B^2  (unbiased)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.reshape(-1) * m / (m - 1))
        else:
            # \hat x = \frac{x - \hat\mu}{\sqrt{\hat\sigma^2 + \epsilon}}
            x_hat = (x - self.running_mean.reshape(shape)) / torch.sqrt(self.running_var.reshape(shape) + self.eps)
        if not self.affine:
            return x_hat
        # y = \gamma \hat x + \beta
        return self.weight.reshape(shape) * x_hat + self.bias.reshape(shape)


class LayerNorm(nn.Module):
    """Statistics over the trailing `normalized_shape` axes of each example; the same in train and eval."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape or min(shape) < 1:
            raise ValueError(f"LayerNorm needs a non-empty normalized_shape of positive sizes, got {normalized_shape}")
        self.normalized_shape, self.eps = shape, eps
        self.weight = nn.Parameter(torch.ones(shape)) if elementwise_affine else None  # gamma (*shape)
        self.bias = nn.Parameter(torch.zeros(shape)) if elementwise_affine else None  # beta (*shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.normalized_shape)
        if tuple(x.shape[x.dim() - k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm{self.normalized_shape} expects input ending in {self.normalized_shape}, "
                             f"got shape {tuple(x.shape)}")
        x_hat, _, _ = standardize(x, tuple(range(x.dim() - k, x.dim())), self.eps)
        if self.weight is None:
            return x_hat
        return self.weight * x_hat + self.bias  # y_j = \gamma_j \hat x_j + \beta_j


class GroupNorm(nn.Module):
    """Statistics over each group of C / G channels and all positions of one example of x (N, C, ...).

    G = 1 is LayerNorm over (C, ...); G = C is InstanceNorm.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"GroupNorm needs num_groups >= 1 dividing num_channels; "
                             f"got {num_groups} groups for {num_channels} channels")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = nn.Parameter(torch.ones(num_channels)) if affine else None  # gamma (C,)
        self.bias = nn.Parameter(torch.zeros(num_channels)) if affine else None  # beta (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm expects (N, {self.num_channels}, ...), got shape {tuple(x.shape)}")
        n = x.shape[0]
        groups = x.reshape(n, self.num_groups, -1)  # (N, G, C/G * positions)
        # \mu_{ng}, \sigma^2_{ng} over the channels of group g and all positions
        x_hat = standardize(groups, (2,), self.eps)[0].reshape(x.shape)
        if self.weight is None:
            return x_hat
        shape = _channel_shape(x)
        # y_{nc\cdot} = \gamma_c \hat x_{nc\cdot} + \beta_c
        return self.weight.reshape(shape) * x_hat + self.bias.reshape(shape)


class InstanceNorm(GroupNorm):
    """Statistics over the H x W positions of each channel of each image (N, C, H, W); no running stats.

    It is GroupNorm with one channel per group; the gain and bias are off by default, as in
    torch.nn.InstanceNorm2d.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = False):
        super().__init__(num_features, num_features, eps, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"InstanceNorm expects images (N, C, H, W), got shape {tuple(x.shape)}")
        return super().forward(x)
