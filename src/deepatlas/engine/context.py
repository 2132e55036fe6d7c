"""`Run`: what a lab function receives besides its config.

It never hides the training step; it only offers the plumbing a lab needs: a progress
bar, a metrics log that stops on a non-finite loss, figures saved as PNG, the device.
"""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path

import torch


class NonFiniteLoss(RuntimeError):
    def __init__(self, name: str, step: int, value: float):
        self.name, self.step, self.value = name, step, value
        super().__init__(f"{name} became {value} at step {step}; the run stopped there")


class Run:
    def __init__(self, run_dir: Path, device: torch.device, seed: int, scale: str, *,
                 quiet: bool = False, on_log=None):
        self.dir = run_dir
        self.device = device
        self.seed = seed
        self.scale = scale
        self.quiet = quiet
        self.figures: list[Path] = []
        self._on_log = on_log
        # line-buffered: each row reaches the file as it is logged, for readers of a live run and after a crash
        self._log = open(run_dir / "metrics.jsonl", "a", encoding="utf-8", buffering=1)

    def progress(self, iterable=None, *, total: int | None = None, desc: str = ""):
        """A progress bar on stderr (silent with --quiet or --format json)."""
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, disable=self.quiet,
                    file=sys.stderr, dynamic_ncols=True, mininterval=0.2)

    def log(self, step: int, **scalars) -> None:
        """Append one line to metrics.jsonl; a NaN or inf stops the run, naming the step."""
        row = {"step": step}
        for name, value in scalars.items():
            value = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            if not math.isfinite(value):
                self._log.write(json.dumps({**row, name: str(value)}) + "\n")
                raise NonFiniteLoss(name, step, value)
            row[name] = value
        self._log.write(json.dumps(row) + "\n")
        if self._on_log:
            self._on_log(row)

    @contextmanager
    def figure(self, name: str, *, ncols: int = 1, nrows: int = 1, size: tuple[float, float] | None = None):
        """Yield (fig, axes); the figure is saved as `<name>.png` in the run folder."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(nrows, ncols, figsize=size or (4.5 * ncols, 3.5 * nrows), squeeze=False)
        try:
            yield fig, axes.ravel() if axes.size > 1 else axes[0, 0]
            fig.tight_layout()
            path = self.dir / f"{name}.png"
            fig.savefig(path, dpi=110)
            self.figures.append(path)
        finally:
            plt.close(fig)

    def close(self) -> None:
        self._log.close()
