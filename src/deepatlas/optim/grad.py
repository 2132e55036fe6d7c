"""Gradient clipping (by global norm, by value) and gradient accumulation.

Clipping by norm rescales the whole gradient, every parameter together, so that its norm is at
most c: the direction is kept and one exploding step cannot throw the weights far (Pascanu et
al.). Accumulation adds the gradients of k micro-batches, each loss scaled by 1/k, and steps
once: with equal micro-batches and a mean loss that is exactly the step of one k-times larger
batch (Ott et al.).

    g \\leftarrow g \\cdot \\min(1, c / \\lVert g \\rVert)

Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013
(arXiv 1211.5063); Ott et al., "Scaling neural machine translation", WMT 2018 (arXiv 1806.00187).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def _grads(parameters) -> list[torch.Tensor]:
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def grad_norm(parameters: Iterable[torch.Tensor] | torch.Tensor, norm_type: float = 2.0) -> torch.Tensor:
    """The norm of all gradients taken as one vector: ||(||g_1||, ..., ||g_n||)||_p."""
    grads = _grads(parameters)
    if not grads:
        return torch.tensor(0.0)
    if norm_type == float("inf"):
        # \lVert g \rVert_\infty = \max_i |g_i|
        return torch.stack([g.abs().max() for g in grads]).max()
    if norm_type <= 0:
        raise ValueError(f"norm_type must be > 0 or inf, got {norm_type}")
    # \lVert g \rVert_p = (\sum_i |g_i|^p)^{1/p}, over every parameter at once
    per_tensor = torch.stack([g.abs().pow(norm_type).sum() for g in grads])
    return per_tensor.sum().pow(1 / norm_type)


def clip_grad_norm_(parameters: Iterable[torch.Tensor] | torch.Tensor, max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> torch.Tensor:
    """Scale all gradients in place so that their global norm is at most max_norm; return the
    norm before clipping. Like torch's, 1e-6 is added to the norm to avoid dividing by zero."""
    if max_norm < 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    parameters = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    total = grad_norm(parameters, norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError(f"the total gradient norm is {total.item()}; cannot clip a non-finite gradient")
    # g \leftarrow g \cdot \min(1, c / (\lVert g \rVert + 10^{-6}))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # no `if`: no host sync on a GPU
    for g in _grads(parameters):
        g.mul_(coef.to(g.device, g.dtype))
    return total


def clip_grad_value_(parameters: Iterable[torch.Tensor] | torch.Tensor, clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value] in place (the direction changes)."""
    if clip_value < 0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value}")
    for g in _grads(parameters):
        # g_i \leftarrow \min(\max(g_i, -c), c)
        g.clamp_(-clip_value, clip_value)


class GradAccumulator:
    """Step `optimizer` once every `k` micro-batches, on the mean of their gradients.

        acc = GradAccumulator(opt, k=4)
        for x, y in micro_batches:            # equal sizes, mean-reduced loss
            stepped = acc.backward(loss_fn(model(x), y))

    Clipping, if asked for, is applied to the accumulated gradient just before the step, where
    it sees the same gradient a big batch would.
    """

    def __init__(self, optimizer, k: int, max_norm: float | None = None):
        if k < 1:
            raise ValueError(f"k must be a positive number of micro-batches, got {k}")
        self.optimizer, self.k, self.max_norm = optimizer, k, max_norm
        self.count = 0

    def backward(self, loss: torch.Tensor) -> bool:
        """Add this micro-batch's gradient; step and zero the gradients on every k-th call.
        Returns whether the optimiser stepped."""
        # g = \frac{1}{k} \sum_{j=1}^{k} \nabla \mathcal{L}_{B_j}
        (loss / self.k).backward()
        self.count += 1
        if self.count < self.k:
            return False
        if self.max_norm is not None:
            clip_grad_norm_([p for group in self.optimizer.param_groups for p in group["params"]],
                            self.max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.count = 0
        return True


__all__ = ["grad_norm", "clip_grad_norm_", "clip_grad_value_", "GradAccumulator"]
