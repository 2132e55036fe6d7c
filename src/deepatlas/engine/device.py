"""Devices, threads and seeds: what makes a run fast on a small CPU and repeatable."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device on this machine")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; use cpu or cuda")
    return torch.device(name)


def choose_threads(lab_threads: int | None) -> int:
    """One thread for tiny models, every core for heavy ones; DEEPATLAS_THREADS overrides.

    On a shared 2-core machine a tiny net runs far slower on two threads than on one
    (synchronisation dominates), so labs declare what suits them.
    """
    if env := os.environ.get("DEEPATLAS_THREADS"):
        return max(1, int(env))
    return lab_threads or os.cpu_count() or 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
