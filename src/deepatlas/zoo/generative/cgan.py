"""Conditional GAN: give the label y to both players, and the generator learns p(x | y).

The generator reads the noise z together with a one-hot code of y; the discriminator reads the image
together with y, so it judges whether the pair (x, y) is real. A generator that ignores y then produces
pairs the discriminator can reject, which is what makes the label control the sample. The networks are
the DCGAN ones of dcgan.py with y appended to every layer's input (as K constant maps on images: the
DCGAN authors' conditional MNIST model); the training loop is dcgan.py's `train_gan` with labels.

    \\min_G \\max_D\\; \\mathbb{E}_{(x, y)}[\\log D(x \\mid y)] + \\mathbb{E}_{z, y}[\\log(1 - D(G(z \\mid y) \\mid y))]

Mirza & Osindero, "Conditional Generative Adversarial Nets", arXiv 1411.1784, 2014.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.registry import register_model
from deepatlas.zoo.generative.dcgan import dcgan_init_


def label_planes(y: torch.Tensor, n_classes: int, like: torch.Tensor) -> torch.Tensor:
    """onehot(y) as K constant maps the size of `like` (B, C, H, W): plane y is all ones. (B, K, H, W)"""
    planes = F.one_hot(y, n_classes).to(like.dtype)[:, :, None, None]  # (B, K, 1, 1)
    return planes.expand(-1, -1, *like.shape[2:])


class ConditionalGenerator(nn.Module):
    """(z (B, nz), y (B,)) -> image (B, 1, 28, 28) in [-1, 1]: DCGAN's generator with onehot(y) appended
    to its input and to every hidden layer's maps (as the DCGAN authors' conditional MNIST model does)."""

    def __init__(self, nz: int = 32, width: int = 32, n_classes: int = 10):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a condition needs at least 2 classes, got {n_classes}")
        self.nz, self.n_classes = nz, n_classes
        k, w = n_classes, width
        self.project = nn.ConvTranspose2d(nz + k, 2 * w, 7, 1, 0, bias=False)  # (B, 2w, 7, 7)
        self.bn1 = nn.BatchNorm2d(2 * w)
        self.up1 = nn.ConvTranspose2d(2 * w + k, w, 4, 2, 1, bias=False)  # (B, w, 14, 14)
        self.bn2 = nn.BatchNorm2d(w)
        self.up2 = nn.ConvTranspose2d(w + k, 1, 4, 2, 1)  # (B, 1, 28, 28)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, F.one_hot(y, self.n_classes).to(z.dtype)], dim=1)[:, :, None, None]  # (B, nz + K, 1, 1)
        h = F.relu(self.bn1(self.project(h)))  # (B, 2w, 7, 7)
        h = F.relu(self.bn2(self.up1(torch.cat([h, label_planes(y, self.n_classes, h)], 1))))  # (B, w, 14, 14)
        return torch.tanh(self.up2(torch.cat([h, label_planes(y, self.n_classes, h)], 1)))  # (B, 1, 28, 28)

    @torch.no_grad()
    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """One image per label in y (n,): (n, 1, 28, 28) in [0, 1], BN in evaluation mode. A temperature
        below 1 draws z from N(0, t^2 I), trading variety for typical, well-formed samples."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        # z \sim \mathcal{N}(0, t^2 I)
        z = temperature * torch.randn(len(y), self.nz, generator=generator).to(device)
        x = (self(z, y.to(device)) + 1) / 2
        self.train(was_training)
        return x


class ConditionalDiscriminator(nn.Module):
    """(image (B, 1, 28, 28), y (B,)) -> logit (B,): DCGAN's discriminator with onehot(y) appended as K
    constant maps to its input and to every hidden layer, so each layer can relate features to the label."""

    def __init__(self, width: int = 32, n_classes: int = 10):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a condition needs at least 2 classes, got {n_classes}")
        self.n_classes = n_classes
        k, w = n_classes, width
        self.conv1 = nn.Conv2d(1 + k, w, 4, 2, 1)  # (B, w, 14, 14); no BN at the input
        self.conv2 = nn.Conv2d(w + k, 2 * w, 4, 2, 1, bias=False)  # (B, 2w, 7, 7)
        self.bn2 = nn.BatchNorm2d(2 * w)
        self.out = nn.Conv2d(2 * w + k, 1, 7, 1, 0)  # (B, 1, 1, 1)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(torch.cat([x, label_planes(y, self.n_classes, x)], 1)), 0.2)
        h = F.leaky_relu(self.bn2(self.conv2(torch.cat([h, label_planes(y, self.n_classes, h)], 1))), 0.2)
        return self.out(torch.cat([h, label_planes(y, self.n_classes, h)], 1)).flatten()  # (B,)


def _labels() -> torch.Tensor:
    return torch.tensor([0, 3, 7, 9])


@register_model("cgan-generator", card="cgan", example=lambda: (torch.randn(4, 32), _labels()))
def cgan_generator(**kw) -> ConditionalGenerator:
    return ConditionalGenerator(**kw)


@register_model("cgan-discriminator", card="cgan",
                example=lambda: (torch.rand(4, 1, 28, 28) * 2 - 1, _labels()))
def cgan_discriminator(**kw) -> ConditionalDiscriminator:
    return ConditionalDiscriminator(**kw)
