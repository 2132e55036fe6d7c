"""The digit judge: the fixed measuring instrument of every generative lab on digits.

A generated digit is judged by the classic MNIST classifier, LeNet-5, trained once on the training
half of the MNIST subset and then frozen. Three numbers come from it: the Frechet distance between
the F6 features (84 per image) of generated and real digits (the FID recipe, with LeNet-5 in place of
Inception), the share of samples it classifies with confidence, and how many of the ten digits appear
among those confident samples. The same numbers for real held-out digits (the best a model can do)
and for the independent-pixel baseline (the least a model should do) put a model's numbers on a scale.

    d^2 = \\lVert \\mu_g - \\mu_r \\rVert^2 + \\mathrm{tr}(\\Sigma_g + \\Sigma_r - 2 (\\Sigma_g \\Sigma_r)^{1/2})

Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium", NeurIPS 2017 (FID); LeCun, Bottou, Bengio & Haffner,
"Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 1998 (LeNet-5).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from deepatlas.data import Split
from deepatlas.data.real import mnist_subset
from deepatlas.nn.metrics import frechet_distance
from deepatlas.paths import cache_dir
from deepatlas.zoo.vision.cnn import train_classifier
from deepatlas.zoo.vision.lenet5 import LeNet5, distort

JUDGE_SEED = 0  # the judge is the same instrument whatever seed a lab runs with
CONFIDENT = 0.9  # a sample is classified with confidence when its top class probability reaches this
_loaded: dict[tuple[int, str], Judge] = {}


def binarize_some(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """LeNet-5's distortions, then half the images thresholded at 0.5, so the judge reads binary samples too."""
    x = distort(x, generator)
    binary = torch.rand(len(x), 1, 1, 1, generator=generator).to(x.device) < 0.5
    return torch.where(binary, (x > 0.5).to(x.dtype), x)


class Judge:
    """A frozen LeNet-5 with the measurements of sample quality. Inputs: (N, 1, 28, 28) in [0, 1]."""

    def __init__(self, net: LeNet5, test_acc: float):
        self.net = net.eval().requires_grad_(False)
        self.test_acc = test_acc

    @torch.no_grad()
    def _batched(self, fn, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"the judge reads (N, 1, 28, 28) images in [0, 1], got {tuple(x.shape)}")
        device = next(self.net.parameters()).device
        return torch.cat([fn(x[i:i + batch_size].float().to(device)).cpu() for i in range(0, len(x), batch_size)])

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 28, 28) -> (N, 84)
        return self._batched(self.net.features, x)

    def probs(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 28, 28) -> (N, 10)
        return self._batched(lambda b: self.net(b).softmax(-1), x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 28, 28) -> (N,)
        return self.probs(x).argmax(-1)

    def fd(self, samples: torch.Tensor, reference: torch.Tensor) -> float:
        """Frechet distance between the judge's features of samples and of reference images."""
        return frechet_distance(self.features(samples), self.features(reference)).item()

    def evaluate(self, samples: torch.Tensor, reference: torch.Tensor) -> dict:
        """fd to the reference; confident_share: share of samples with top probability >= 0.9; class_coverage:
        how many digits hold at least 1/40 of all samples among the confident ones (a stray sample is no digit)."""
        p = self.probs(samples)
        top, label = p.max(-1)
        confident = top >= CONFIDENT
        counts = torch.bincount(label[confident], minlength=10)
        return {"fd": self.fd(samples, reference), "confident_share": confident.float().mean().item(),
                "class_coverage": int((counts >= len(samples) / 40).sum())}


def digit_judge(run, epochs: int = 8) -> Judge:
    """The judge trained for `epochs` (SGD with Nesterov momentum, LeNet-5's distortions, half the images
    binarised), kept in memory and in the cache folder so a lab trains it at most once per machine."""
    if epochs < 1:
        raise ValueError(f"the judge needs at least 1 epoch of training, got {epochs}")
    key = (epochs, str(run.device))
    if key in _loaded:
        return _loaded[key]
    path = cache_dir() / f"digit-judge-lenet5-e{epochs}-s{JUDGE_SEED}.pt"
    data = mnist_subset(flatten=False)
    net = LeNet5()
    if path.exists():
        state = torch.load(path, map_location="cpu")
        net.load_state_dict(state["weights"])
        test_acc = state["test_acc"]
    else:
        g = torch.Generator().manual_seed(JUDGE_SEED)
        net.reset_parameters(g)
        net.to(run.device)
        curves = train_classifier(run, net, Split(data.x_train, data.y_train, data.x_test, data.y_test, data.meta),
                                  epochs=epochs, lr=0.05, batch_size=32, generator=g, name="judge",
                                  optimizer="sgd", warmup_epochs=1, augment=binarize_some)
        net.cpu()
        test_acc = curves["test_acc"][-1]
        partial = path.with_suffix(f".{os.getpid()}.partial")  # two labs may train the judge at once
        torch.save({"weights": net.state_dict(), "test_acc": test_acc}, partial)
        os.replace(partial, path)
    _loaded[key] = Judge(net.to(run.device), test_acc)
    return _loaded[key]


def to_judge(x: torch.Tensor) -> torch.Tensor:
    """Small images (N, 1, r, r) in [0, 1] -> the judge's (N, 1, 28, 28): clamped to [0, 1], then upsampled
    bilinearly (a blend of pixels in [0, 1] stays in [0, 1])."""
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"to_judge takes (N, 1, r, r) images, got {tuple(x.shape)}")
    return F.interpolate(x.clamp(0, 1), size=(28, 28), mode="bilinear", align_corners=False)


def independent_pixels(x_train: torch.Tensor, n: int, generator: torch.Generator, binary: bool = False) -> torch.Tensor:
    """The trivial baseline: n images whose pixels are drawn independently from their training marginals,
    Bernoulli(mean) when binary, else Gaussian(mean, std) clipped to [0, 1]. (n, 1, 28, 28)."""
    x = x_train.double()
    mean = x.mean(0)  # (1, 28, 28)
    if binary:
        return torch.bernoulli(mean.expand(n, *mean.shape), generator=generator).to(x_train.dtype)
    noise = torch.randn(n, *mean.shape, generator=generator, dtype=torch.float64)
    return (mean + x.std(0) * noise).clamp(0, 1).to(x_train.dtype)


def reference_numbers(run, judge: Judge, binary: bool = False, n: int = 1000, seed: int = 0) -> dict:
    """The judge's numbers for real held-out digits against the training digits, and for the independent-
    pixel baseline: `real_fd, real_confident, real_classes, baseline_fd, baseline_confident, baseline_classes`."""
    data = mnist_subset(flatten=False)
    train, test = data.x_train, data.x_test[:n]
    if binary:
        train, test = (train > 0.5).float(), (test > 0.5).float()
    baseline = independent_pixels(train, n, torch.Generator().manual_seed(seed), binary=binary)
    out = {}
    for name, x in (("real", test), ("baseline", baseline)):
        r = judge.evaluate(x, train)
        out |= {f"{name}_fd": r["fd"], f"{name}_confident": r["confident_share"], f"{name}_classes": r["class_coverage"]}
    return out
