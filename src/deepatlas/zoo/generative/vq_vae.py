"""VQ-VAE: an autoencoder whose code is a handful of symbols from a learned codebook of K vectors.

The encoder outputs M vectors z_e; each is replaced by its nearest codebook entry e_k, so the code of an
image is M integers (M log2 K bits at most). The argmin has no gradient: the straight-through estimator
copies the decoder's gradient at z_q onto z_e. The codebook loss pulls each used entry towards the
encoder outputs assigned to it; the commitment loss keeps the encoder near its entries. The paper's prior
over the codes is a separately trained PixelCNN; here the code only serves reconstruction.

    z_q = e_k,\\ k = \\arg\\min_j \\lVert z_e - e_j \\rVert_2;\\qquad
    \\mathcal{L} = -\\log p(x|z_q) + \\lVert \\mathrm{sg}[z_e] - e \\rVert_2^2
                  + \\beta \\lVert z_e - \\mathrm{sg}[e] \\rVert_2^2

van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.generative.vae import (
    batches, bernoulli_nll, fit_vae, gaussian_kl, mlp, reset_parameters_, strip,
)


class VectorQuantizer(nn.Module):
    """Snap each D-vector to its nearest of K codebook entries; gradients pass straight through."""

    def __init__(self, num_codes: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        if num_codes < 2 or dim < 1:
            raise ValueError(f"need at least 2 codes of dimension >= 1, got {num_codes} codes of dimension {dim}")
        self.codebook = nn.Parameter(torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes,
                                                                          generator=generator))  # (K, D)

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:  # (..., D) -> (...) code indices
        # k = \arg\min_j \lVert z_e - e_j \rVert_2^2 = \arg\min_j (\lVert e_j \rVert^2 - 2 z_e \cdot e_j)
        scores = self.codebook.square().sum(1) - 2 * z_e @ self.codebook.T  # (..., K)
        return scores.argmin(-1)

    def forward(self, z_e: torch.Tensor):
        """(z_q with straight-through gradients, indices, codebook loss, commitment loss) for z_e (..., D)."""
        k = self.nearest(z_e)
        z_q = self.codebook[k]  # (..., D)
        # \lVert \mathrm{sg}[z_e] - e \rVert_2^2: moves the codebook only
        codebook_loss = (z_e.detach() - z_q).square().sum(-1).mean()
        # \lVert z_e - \mathrm{sg}[e] \rVert_2^2: moves the encoder only
        commitment_loss = (z_e - z_q.detach()).square().sum(-1).mean()
        # straight through: the forward value is z_q, the gradient w.r.t. z_e is the gradient at z_q
        z_st = z_e + (z_q - z_e).detach()
        return z_st, k, codebook_loss, commitment_loss


class VQVAE(nn.Module):
    """(B, 1, 28, 28) -> M code vectors of dimension D -> M symbols out of K -> logits (B, 1, 28, 28).

    Fully connected, like the VAE it is compared with: the code is M slots rather than a spatial grid."""

    def __init__(self, num_slots: int = 8, num_codes: int = 32, code_dim: int = 8, hidden: tuple[int, ...] = (400,),
                 generator: torch.Generator | None = None):
        super().__init__()
        self.num_slots, self.num_codes, self.code_dim = num_slots, num_codes, code_dim
        self.encoder = mlp([784, *hidden, num_slots * code_dim])
        self.decoder = mlp([num_slots * code_dim, *reversed(hidden), 784])
        reset_parameters_(self, generator)
        self.quantizer = VectorQuantizer(num_codes, code_dim, generator)

    @property
    def code_bits(self) -> float:
        """The most information a code can carry: M log2 K bits."""
        return self.num_slots * math.log2(self.num_codes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) -> z_e (B, M, D)
        return self.encoder(x.flatten(1)).view(-1, self.num_slots, self.code_dim)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:  # (B, M, D) -> logits (B, 1, 28, 28)
        return self.decoder(z_q.flatten(1)).view(-1, 1, 28, 28)

    def forward(self, x: torch.Tensor):
        """Reconstruction logits, code indices (B, M), codebook loss and commitment loss."""
        z_q, k, codebook_loss, commitment_loss = self.quantizer(self.encode(x))
        return self.decode(z_q), k, codebook_loss, commitment_loss


@register_model("vq-vae", card="vq-vae", example=lambda: (torch.rand(3, 1, 28, 28),))
def vq_vae(**kw) -> VQVAE:
    return VQVAE(**kw)


def fit_vq_vae(run, model: VQVAE, x: torch.Tensor, *, steps: int, batch_size: int, lr: float, beta: float,
               generator: torch.Generator, name: str = "vqvae") -> VQVAE:
    """Adam (cosine-decayed lr) on reconstruction NLL + codebook loss + beta * commitment loss. The codebook
    starts at encoder outputs of the first batch, so that every entry begins where the data is."""
    opt = Adam(model.parameters(), lr=lr)
    for step, idx in enumerate(run.progress(batches(len(x), batch_size, steps, generator), total=steps, desc=name)):
        xb = x[idx.to(x.device)]
        if step == 0:
            with torch.no_grad():
                z_e = model.encode(xb).flatten(0, 1)  # (B M, D)
                pick = torch.randperm(len(z_e), generator=generator)[:model.num_codes].to(z_e.device)
                model.quantizer.codebook.copy_(z_e[pick])
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        logits, _, codebook_loss, commitment_loss = model(xb)
        rec = bernoulli_nll(logits, xb).mean()
        # \mathcal{L} = -\log p(x|z_q) + \lVert \mathrm{sg}[z_e] - e \rVert^2 + \beta\lVert z_e - \mathrm{sg}[e]\rVert^2
        loss = rec + codebook_loss + beta * commitment_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            run.log(step, **{f"{name}_loss": loss, f"{name}_rec": rec, f"{name}_commit": commitment_loss})
    return model.eval()


def gradient_energy(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels of images (B, 1, H, W): edges make it large,
    blur makes it small."""
    # \frac{1}{|\Omega|}\sum (x_{i+1,j} - x_{i,j})^2 + (x_{i,j+1} - x_{i,j})^2
    dy = (x[..., 1:, :] - x[..., :-1, :]).square().mean()
    dx = (x[..., :, 1:] - x[..., :, :-1]).square().mean()
    return dx + dy


def extreme_share(x: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Share of pixels within `margin` of 0 or 1: a crisp digit is mostly ink or paper, a blurry one grey."""
    return ((x <= margin) | (x >= 1 - margin)).float().mean()


# --- vq-vae/sharpness: discrete codes against a Gaussian code of about the same information -------------

@dataclass
class SharpnessConfig:
    latent_dim: int = 16  # the VAE's code
    num_slots: int = 8  # M symbols per image ...
    num_codes: int = 32  # ... out of K: M log2 K = 40 bits
    code_dim: int = 8
    hidden: int = 400
    steps: int = 2000  # each model
    batch_size: int = 128
    lr: float = 1e-3
    commitment: float = 0.25  # beta of the commitment loss


@lab(
    "vq-vae/sharpness",
    card="vq-vae",
    config=SharpnessConfig,
    scales={
        "quick": {"steps": 60, "hidden": 64},
        "default": {},
        "full": {"hidden": 1000, "steps": 20_000},
    },
    goals=[Goal("vq_budget_over_vae", "<=", 2.0), Goal("vq_budget_over_vae", ">=", 0.5)],
    claims=[
        Check(
            "vq-vae-discrete-sharper",
            lambda m: m["vq_grad_energy"] > m["vae_grad_energy"],
            "on held-out MNIST digits, VQ-VAE reconstructions ({num_slots} symbols of {num_codes}: "
            "{vq_bits:.0f} bits) have gradient energy {vq_grad_energy:.4f} against the VAE's {vae_grad_energy:.4f} "
            "(rate {vae_rate_bits:.0f} bits) and the real digits' {real_grad_energy:.4f}; pixels near 0 or 1: "
            "{vq_extreme:.3f} vs {vae_extreme:.3f} (real {real_extreme:.3f}); squared error {vq_mse:.4f} vs "
            "{vae_mse:.4f}",
        ),
    ],
    budget_s=90,
    threads=1,
)
def sharpness(run, cfg: SharpnessConfig) -> dict:
    """VQ-VAE against VAE reconstructions at a comparable code budget: which one is sharper?"""
    data = mnist_subset(flatten=False)
    x, x_test = data.x_train.to(run.device), data.x_test.to(run.device)  # grey levels in [0, 1]
    g = torch.Generator().manual_seed(run.seed)
    vae = fit_vae(run, x, steps=cfg.steps, batch_size=cfg.batch_size, generator=g, latent_dim=cfg.latent_dim,
                  lr=cfg.lr, hidden=(cfg.hidden,))
    vq = VQVAE(cfg.num_slots, cfg.num_codes, cfg.code_dim, hidden=(cfg.hidden,), generator=g).to(run.device)
    fit_vq_vae(run, vq, x, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, beta=cfg.commitment, generator=g)

    with torch.no_grad():
        mu, logvar = vae.encode(x_test)
        rate = gaussian_kl(mu, logvar).mean().item()  # nats
        recon = {"vae": torch.sigmoid(vae.decode(mu)), "real": x_test}
        logits, codes, _, _ = vq(x_test)
        recon["vq"] = torch.sigmoid(logits)
    usage = torch.bincount(codes.flatten().cpu(), minlength=cfg.num_codes).double() / codes.numel()
    metrics: dict = {
        "vq_bits": vq.code_bits, "vae_rate_bits": rate / math.log(2),
        "vq_budget_over_vae": vq.code_bits / (rate / math.log(2)),
        # perplexity e^{H(k)}: how many codebook entries are in effective use
        "vq_code_perplexity": math.exp(-(usage[usage > 0] * usage[usage > 0].log()).sum().item()),
        "num_slots": cfg.num_slots, "num_codes": cfg.num_codes, "latent_dim": cfg.latent_dim,
    }
    for name, r in recon.items():
        metrics[f"{name}_grad_energy"] = gradient_energy(r).item()
        metrics[f"{name}_extreme"] = extreme_share(r).item()
        metrics[f"{name}_mse"] = (r - x_test).square().mean().item()
    _plot_sharpness(run, recon, metrics)
    return metrics


def _plot_sharpness(run, recon: dict, m: dict) -> None:
    names = {"real": "test digits", "vae": f"VAE ({m['vae_rate_bits']:.0f} bits)",
             "vq": f"VQ-VAE ({m['vq_bits']:.0f} bits)"}
    with run.figure("sharpness", ncols=2, size=(12, 3.6)) as (fig, (ax_img, ax_hist)):
        rows = torch.cat([recon[k][:10] for k in names])
        ax_img.imshow(strip(rows, 10), cmap="gray_r")
        ax_img.set_yticks([14 + 28 * i for i in range(len(names))], list(names.values()))
        ax_img.set_xticks([])
        ax_img.set_title("reconstructions of held-out digits")
        for key, label in names.items():
            ax_hist.hist(recon[key].flatten().cpu().numpy(), bins=50, histtype="step", density=True, label=label)
        ax_hist.set(xlabel="pixel value", ylabel="density", yscale="log", title="crisp = mass near 0 and 1")
        ax_hist.legend(fontsize=8)
