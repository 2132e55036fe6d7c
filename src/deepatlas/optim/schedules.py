"""Learning-rate schedules: step, exponential and cosine decay, linear warm-up, warm-up + cosine,
and reduce-on-plateau.

A schedule rewrites every param group's learning rate as training goes: large steps early for
fast progress, small steps late to settle near a minimum, and a short warm-up from a small rate
while the weights and an adaptive optimiser's statistics are still unsettled. The fixed
schedules are closed forms eta_t = f(eta_0, t); reduce-on-plateau instead watches a metric.

    \\eta_t = \\eta_{\\min} + \\tfrac12 (\\eta_0 - \\eta_{\\min}) (1 + \\cos(\\pi t / T))

Loshchilov & Hutter, "SGDR: Stochastic gradient descent with warm restarts", ICLR 2017
(arXiv 1608.03983); Goyal et al., "Accurate, large minibatch SGD", 2017 (arXiv 1706.02677),
for linear warm-up.

Use like torch.optim.lr_scheduler: build it on an optimiser (which sets the rate for step 0),
then call `step()` once after every `optimizer.step()` (`step(metric)` for ReduceLROnPlateau).
"""

from __future__ import annotations

import math


class Schedule:
    """A fixed schedule: group lr at step t is `lr_at(base_lr, t)`; subclasses give the formula."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.t = 0
        self._apply()

    def lr_at(self, base_lr: float, t: int) -> float:
        """The schedule's formula; every schedule below writes its own."""
        raise NotImplementedError

    def step(self) -> None:
        self.t += 1
        self._apply()

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.t)

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]


class StepLR(Schedule):
    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"step_size must be a positive number of steps, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr, t):
        # \eta_t = \eta_0 \gamma^{\lfloor t / s \rfloor}
        return base_lr * self.gamma ** (t // self.step_size)


class ExponentialLR(Schedule):
    def __init__(self, optimizer, gamma: float):
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.gamma = gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr, t):
        # \eta_t = \eta_0 \gamma^t
        return base_lr * self.gamma**t


def _cosine(base_lr: float, eta_min: float, t: int, period: int) -> float:
    # \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min}) (1 + \cos(\pi t / T))
    return eta_min + 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * t / period))


class CosineAnnealingLR(Schedule):
    """Cosine from the base rate at t = 0 to eta_min at t = T_max (and back up after, periodically)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        if T_max < 1:
            raise ValueError(f"T_max must be a positive number of steps, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr, t):
        return _cosine(base_lr, self.eta_min, t, self.T_max)


def _warmup(base_lr: float, start_factor: float, t: int, warmup_steps: int) -> float:
    # \eta_t = \eta_0 (s + (1 - s) \min(t, T_w) / T_w)
    return base_lr * (start_factor + (1 - start_factor) * min(t, warmup_steps) / warmup_steps)


def _check_warmup(warmup_steps: int, start_factor: float) -> None:
    if warmup_steps < 1:
        raise ValueError(f"warmup_steps must be a positive number of steps, got {warmup_steps}")
    if not 0 <= start_factor <= 1:
        raise ValueError(f"start_factor must be in [0, 1], got {start_factor}")


class LinearWarmup(Schedule):
    """Linear ramp from start_factor * base to the base rate over warmup_steps, then constant."""

    def __init__(self, optimizer, warmup_steps: int, start_factor: float = 1 / 3):
        _check_warmup(warmup_steps, start_factor)
        self.warmup_steps, self.start_factor = warmup_steps, start_factor
        super().__init__(optimizer)

    def lr_at(self, base_lr, t):
        return _warmup(base_lr, self.start_factor, t, self.warmup_steps)


class WarmupCosine(Schedule):
    """Linear warm-up to the base (peak) rate, then cosine decay to eta_min at total_steps."""

    def __init__(self, optimizer, warmup_steps: int, total_steps: int, start_factor: float = 0.01,
                 eta_min: float = 0.0):
        _check_warmup(warmup_steps, start_factor)
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.start_factor, self.eta_min = start_factor, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr, t):
        if t < self.warmup_steps:
            return _warmup(base_lr, self.start_factor, t, self.warmup_steps)
        t = min(t, self.total_steps)  # stays at eta_min past the end
        return _cosine(base_lr, self.eta_min, t - self.warmup_steps, self.total_steps - self.warmup_steps)


class ReduceLROnPlateau:
    """Multiply the rate by `factor` when a watched metric has not improved for `patience` checks.

    "Improved" in mode min with threshold_mode rel means a < best (1 - threshold); in abs mode
    a < best - threshold (signs flip for mode max). After a cut, `cooldown` checks pass before
    bad checks count again; the rate never goes below min_lr.
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if patience < 0 or cooldown < 0:
            raise ValueError(f"patience and cooldown must be >= 0, got {patience} and {cooldown}")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown = threshold, threshold_mode, cooldown
        self.min_lr, self.eps = min_lr, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_checks = 0
        self.cooldown_left = 0

    def is_better(self, a: float) -> bool:
        sign = 1 if self.mode == "min" else -1  # mode max: the same test on -a
        if self.threshold_mode == "rel":
            # min: a < best (1 - \theta);   max: a > best (1 + \theta)
            return sign * a < sign * self.best * (1 - sign * self.threshold)
        # min: a < best - \theta;   max: a > best + \theta
        return sign * a < sign * self.best - self.threshold

    def step(self, metric: float) -> None:
        metric = float(metric)
        if self.is_better(metric):
            self.best, self.bad_checks = metric, 0
        else:
            self.bad_checks += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_checks = 0
        if self.bad_checks > self.patience:
            for group in self.optimizer.param_groups:
                # \eta \leftarrow \max(\gamma \eta, \eta_{\min})
                new = max(group["lr"] * self.factor, self.min_lr)
                if group["lr"] - new > self.eps:  # changes smaller than eps are not worth making
                    group["lr"] = new
            self.cooldown_left, self.bad_checks = self.cooldown, 0

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]


__all__ = ["Schedule", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup", "WarmupCosine",
           "ReduceLROnPlateau"]
