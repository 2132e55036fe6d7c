"""Sinusoid regression tasks, the few-shot benchmark of MAML (Finn et al. 2017).

A task is one sine wave y = A sin(x - phi) with amplitude A ~ U[0.1, 5] and phase phi ~ U[0, pi];
its points have x ~ U[-5, 5]. A learner sees K points of a new task and must predict the whole
wave. Everything is a pure function of a torch.Generator (or a seed): the same seed gives the same
tasks, and the global RNG is never touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)


@dataclass
class SinusoidTasks:
    """n tasks of n_points each: x and y (n, n_points, 1); amplitude and phase (n,)."""

    x: torch.Tensor
    y: torch.Tensor
    amplitude: torch.Tensor
    phase: torch.Tensor

    def split(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first k points of every task as its support set, the rest as its query set."""
        if not 0 < k < self.x.shape[1]:
            raise ValueError(f"support size k must be in 1..{self.x.shape[1] - 1}, got {k}")
        return self.x[:, :k], self.y[:, :k], self.x[:, k:], self.y[:, k:]


def _uniform(n: int, bounds: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(n, generator=g)


def wave(x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """y = A sin(x - phi) for x (n, m, 1) and amplitude, phase (n,)."""
    return amplitude[:, None, None] * torch.sin(x - phase[:, None, None])


def sample_tasks(n_tasks: int, n_points: int, generator: torch.Generator | int = 0) -> SinusoidTasks:
    """n_tasks random sine waves with n_points random x each; `generator` is a Generator or a seed."""
    if n_tasks < 1 or n_points < 1:
        raise ValueError(f"need n_tasks >= 1 and n_points >= 1, got {n_tasks} and {n_points}")
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(generator)
    amplitude, phase = _uniform(n_tasks, AMPLITUDE, g), _uniform(n_tasks, PHASE, g)
    x = _uniform(n_tasks * n_points, X_RANGE, g).view(n_tasks, n_points, 1)
    return SinusoidTasks(x, wave(x, amplitude, phase), amplitude, phase)


def sinusoid_tasks(n_tasks: int = 100, n_points: int = 20, seed: int = 0) -> SinusoidTasks:
    """The data-catalogue loader: sample_tasks from a seed."""
    return sample_tasks(n_tasks, n_points, seed)
