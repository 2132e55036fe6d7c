"""Autoencoder: an encoder squeezes the input into a short code, a decoder rebuilds the input from it.

Trained only to reconstruct, the network must keep in its k-number bottleneck whatever explains most of
the data. With linear layers and squared error the best it can do is PCA: the optimal decoder spans the
top-k principal subspace (Baldi & Hornik, 1989), though its weights need not be the principal axes
themselves. Nonlinear layers let the code follow a curved manifold, which is what made deep
autoencoders beat PCA at the same code size.

    z = f_\\phi(x),\\quad \\hat x = g_\\theta(z),\\qquad
    \\mathcal{L} = \\frac1N \\sum_n \\lVert x_n - g_\\theta(f_\\phi(x_n)) \\rVert_2^2

Hinton & Salakhutdinov, "Reducing the Dimensionality of Data with Neural Networks", Science 313, 2006.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.losses import mse_loss
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.generative.vae import batches, reset_parameters_

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}


def stack(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers of the given sizes with `activation` between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers[:-1])


class Autoencoder(nn.Module):
    """sizes [n_in, h_1, ..., k]: an MLP encoder down to a k-number code and its mirror image back up.

    activation="identity" gives the linear autoencoder; `sigmoid_output` squashes the reconstruction into
    (0, 1) for pixel data."""

    def __init__(self, sizes: list[int], activation: str = "relu", sigmoid_output: bool = False,
                 generator: torch.Generator | None = None):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("an autoencoder needs at least the input and code sizes, e.g. [784, 8]")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        self.code_size = sizes[-1]
        self.encoder = stack(sizes, activation)
        self.decoder = stack(sizes[::-1], activation)
        self.sigmoid_output = sigmoid_output
        reset_parameters_(self, generator)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_in) -> (B, k)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, k) -> (B, n_in)
        x_hat = self.decoder(z)
        return torch.sigmoid(x_hat) if self.sigmoid_output else x_hat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # \hat x = g_\theta(f_\phi(x))
        return self.decode(self.encode(x))


@register_model("autoencoder", card="autoencoder", example=lambda: (torch.rand(4, 784),))
def autoencoder(sizes: list[int] | None = None, **kw) -> Autoencoder:
    return Autoencoder(sizes or [784, 256, 8], sigmoid_output=True, **kw)


@register_model("linear-autoencoder", card="autoencoder", example=lambda: (torch.randn(4, 784),))
def linear_autoencoder(sizes: list[int] | None = None, **kw) -> Autoencoder:
    return Autoencoder(sizes or [784, 8], activation="identity", **kw)


# --- PCA, and how far apart two subspaces are ------------------------------------------------------

def pca(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (D,) and the top-k principal axes (D, k) of x (N, D), from the SVD of the centred data."""
    if not 1 <= k <= min(x.shape):
        raise ValueError(f"k must be between 1 and min(N, D) = {min(x.shape)}, got {k}")
    mean = x.mean(0)
    # X - \bar x = U S V^\top: the principal axes are the first k right singular vectors
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    return mean, vh[:k].T


def pca_reconstruct(x: torch.Tensor, mean: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    # \hat x = \bar x + V_k V_k^\top (x - \bar x)
    return mean + (x - mean) @ axes @ axes.T


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the column spaces of a (D, k) and b (D, m)."""
    qa, qb = torch.linalg.qr(a).Q, torch.linalg.qr(b).Q
    # \cos\theta_i = \sigma_i(Q_a^\top Q_b)
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1)
    return torch.arccos(cos).flip(0)


def fit_autoencoder(run, name: str, model: Autoencoder, x: torch.Tensor, *, steps: int, batch_size: int, lr: float,
                    generator: torch.Generator) -> list[float]:
    """Adam on the mean squared reconstruction error, lr decayed on a cosine; returns the logged losses."""
    opt = Adam(model.parameters(), lr=lr)
    losses = []
    for step, idx in enumerate(run.progress(batches(len(x), batch_size, steps, generator), total=steps, desc=name)):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        xb = x[idx.to(x.device)]
        # \mathcal{L} = \frac{1}{B D} \sum_n \lVert x_n - \hat x_n \rVert^2
        loss = mse_loss(model(xb), xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            losses.append(loss.item())
            run.log(step, **{f"{name}_loss": loss})
    return losses


# --- autoencoder/pca-compare: the linear AE finds PCA's subspace; a nonlinear one beats PCA ---------------

@dataclass
class PcaCompareConfig:
    code_size: int = 8  # k: numbers in the bottleneck, and PCA components
    hidden: int = 256  # width of the nonlinear autoencoder's hidden layers (784-h-k-h-784)
    linear_steps: int = 1000
    linear_lr: float = 1e-2
    steps: int = 1200  # nonlinear autoencoder
    lr: float = 2e-3
    batch_size: int = 128
    n_train: int = 4000


@lab(
    "autoencoder/pca-compare",
    card="autoencoder",
    config=PcaCompareConfig,
    scales={
        "quick": {"linear_steps": 150, "steps": 150, "n_train": 1000, "hidden": 64},
        "default": {},
        "full": {"code_size": 30, "hidden": 1000, "linear_steps": 10_000, "steps": 20_000},
    },
    goals=[Goal("linear_train_over_pca", "<=", 1.02), Goal("nonlinear_over_pca", "<", 1.0)],
    claims=[
        Check(
            "autoencoder-compression",
            lambda m: m["nonlinear_over_pca"] < 1.0,
            "with a {code_size}-number code, a 784-{hidden}-{code_size} ReLU autoencoder rebuilds held-out MNIST "
            "digits with mean squared error {nonlinear_test_mse:.4f} against PCA's {pca_test_mse:.4f} "
            "(ratio {nonlinear_over_pca:.3f}); the linear autoencoder ends within {linear_train_over_pca:.3f}x of "
            "PCA's training error, its subspace at principal angles of {linear_mean_angle_deg:.1f} degrees on average "
            "(largest {linear_max_angle_deg:.1f}, on the axis whose variance is within {eigengap:.2f}x of the next)",
        ),
    ],
    budget_s=60,
    threads=1,
)
def pca_compare(run, cfg: PcaCompareConfig) -> dict:
    """A linear autoencoder recovers PCA's subspace; a nonlinear one reconstructs better at the same code size."""
    data = mnist_subset()
    x, x_test = data.x_train[:cfg.n_train].to(run.device), data.x_test.to(run.device)  # (N, 784) in [0, 1]
    g = torch.Generator().manual_seed(run.seed)
    mean, axes = pca(x, cfg.code_size)  # (784,), (784, k)

    # the linear autoencoder sees centred data, the setting of the PCA equivalence
    linear = Autoencoder([784, cfg.code_size], activation="identity", generator=g).to(run.device)
    linear_losses = fit_autoencoder(run, "linear", linear, x - mean, steps=cfg.linear_steps,
                                    batch_size=cfg.batch_size, lr=cfg.linear_lr, generator=g)
    nonlinear = Autoencoder([784, cfg.hidden, cfg.code_size], sigmoid_output=True, generator=g).to(run.device)
    nonlinear_losses = fit_autoencoder(run, "nonlinear", nonlinear, x, steps=cfg.steps, batch_size=cfg.batch_size,
                                       lr=cfg.lr, generator=g)

    with torch.no_grad():
        # the decoder's columns W_dec (784, k) span the linear autoencoder's subspace
        angles = principal_angles(linear.decoder[0].weight.double(), axes.double())
        recon = {"pca": pca_reconstruct(x_test, mean, axes), "linear": linear(x_test - mean) + mean,
                 "nonlinear": nonlinear(x_test)}
        mse = {name: mse_loss(r, x_test).item() for name, r in recon.items()}
        train_mse = {"pca": mse_loss(pca_reconstruct(x, mean, axes), x).item(),
                     "linear": mse_loss(linear(x - mean) + mean, x).item(),
                     "nonlinear": mse_loss(nonlinear(x), x).item()}
        variances = torch.linalg.svdvals(x - mean)[:cfg.code_size + 1].square()  # lambda_1 .. lambda_{k+1}
    _plot_pca_compare(run, x_test[:8], recon, mse, linear_losses, nonlinear_losses, cfg)
    return {
        "linear_max_angle_deg": math.degrees(angles.max().item()),
        "linear_mean_angle_deg": math.degrees(angles.mean().item()),
        "pca_test_mse": mse["pca"], "linear_test_mse": mse["linear"], "nonlinear_test_mse": mse["nonlinear"],
        "linear_over_pca": mse["linear"] / mse["pca"], "nonlinear_over_pca": mse["nonlinear"] / mse["pca"],
        "linear_train_over_pca": train_mse["linear"] / train_mse["pca"],
        "pca_train_mse": train_mse["pca"], "nonlinear_train_mse": train_mse["nonlinear"],
        "eigengap": (variances[-2] / variances[-1]).item(),  # lambda_k / lambda_{k+1}: how slowly the angle closes
        "code_size": cfg.code_size, "hidden": cfg.hidden, "n_train": len(x),
    }


def _plot_pca_compare(run, x: torch.Tensor, recon: dict, mse: dict, linear_losses: list[float],
                      nonlinear_losses: list[float], cfg: PcaCompareConfig) -> None:
    rows = {"test digit": x, **{f"{name} ({mse[name]:.4f})": r[:len(x)] for name, r in recon.items()}}
    with run.figure("reconstructions", ncols=2, size=(11, 4)) as (fig, (ax_img, ax_loss)):
        strip = torch.cat([torch.cat(list(r.clamp(0, 1).view(-1, 28, 28).cpu()), 1) for r in rows.values()], 0)
        ax_img.imshow(strip, cmap="gray_r")
        ax_img.set_yticks([14 + 28 * i for i in range(len(rows))], list(rows))
        ax_img.set_xticks([])
        ax_img.set_title(f"k = {cfg.code_size} numbers per image (test MSE)")
        ax_loss.plot([50 * i for i in range(len(linear_losses))], linear_losses, label="linear AE")
        ax_loss.plot([50 * i for i in range(len(nonlinear_losses))], nonlinear_losses, label="nonlinear AE")
        ax_loss.axhline(mse["pca"], color="k", ls="--", lw=1, label="PCA (test)")
        ax_loss.set(xlabel="step", ylabel="MSE (train batch)", yscale="log", title="training")
        ax_loss.legend()
