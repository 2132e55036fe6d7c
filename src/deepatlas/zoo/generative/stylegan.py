"""StyleGAN: a mapping network turns z into a style w that modulates every layer of the synthesis network.

The generator no longer takes z at its input. An MLP maps z to an intermediate latent w; each layer of
the synthesis network, which starts from a learned constant, receives w through a learned affine map A
as per-channel scales s. Here the modulation is StyleGAN2's form of AdaIN: the scales multiply the
convolution's input channels inside the weights, and demodulation divides each output channel by the
norm it would then have, which normalises the activations' scale as AdaIN did. Per-pixel noise, scaled
per layer, adds stochastic detail. Because every layer has its own copy of w, different layers can take
different styles ("style mixing"): the coarse, low-resolution layers set the global shape and the fine
ones the details.

    w = f(z),\\quad s = A(w),\\quad w'_{ijk} = s_i\\, w_{ijk},\\quad
    w''_{ijk} = w'_{ijk} \\Big/ \\sqrt{\\textstyle\\sum_{i,k} {w'_{ijk}}^2 + \\epsilon}

Karras, Laine & Aila, "A Style-Based Generator Architecture for Generative Adversarial Networks", CVPR 2019
(arXiv 1812.04948); Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, "Analyzing and Improving the Image
Quality of StyleGAN", CVPR 2020 (arXiv 1912.04958; modulation and demodulation).

Here sized for 14x14 digits: 4x4 constant -> 7x7 -> 14x14. As in ProGAN and StyleGAN every weight is
stored as N(0, 1) and scaled at run time by its He constant (equalised learning rate), and the mapping
network learns at 0.01x the rate of the rest. The lab trains it with the non-saturating GAN loss, a lazy
R1 penalty and the paper's mixing regularisation, then measures what the coarse and the fine styles decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.equalized import EqualizedConv2d, EqualizedLinear
from deepatlas.registry import register_model
from deepatlas.zoo.generative.dcgan import image_grid
from deepatlas.zoo.generative.gan import discriminator_loss, generator_loss_non_saturating
from deepatlas.zoo.generative.judge import digit_judge, independent_pixels, reference_numbers, to_judge

# --- the generator -----------------------------------------------------------------------------------


def pixel_norm(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    # z / \sqrt{\mathrm{mean}(z^2) + \epsilon}
    return z * torch.rsqrt(z.square().mean(1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """f: z (B, z_dim) -> w (B, w_dim), an MLP with leaky ReLUs on the normalised z (8 layers in the paper),
    learning at lr_mul times the rate of the synthesis network (0.01 in the paper)."""

    def __init__(self, z_dim: int = 32, w_dim: int = 32, depth: int = 4, lr_mul: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__()
        sizes = [z_dim, *[w_dim] * depth]
        self.layers = nn.ModuleList(EqualizedLinear(a, b, gain=1.0, lr_mul=lr_mul, generator=generator)
                                    for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, z_dim) -> (B, w_dim)
        h = pixel_norm(z)
        for layer in self.layers:
            # leaky ReLU times \sqrt 2 keeps the second moment through the layer
            h = F.leaky_relu(layer(h), 0.2) * math.sqrt(2)
        return h


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, demodulate: bool = True,
                     eps: float = 1e-8) -> torch.Tensor:
    """x (B, C_in, H, W), weight (C_out, C_in, k, k), styles s (B, C_in) -> (B, C_out, H, W), 'same' padding.

    Convolving x with the per-sample kernel w''_{ijk} = d_j s_i w_{ijk} equals scaling x's channels by s,
    convolving with the shared w, and scaling the output channels by d (StyleGAN2's unfused form): one
    ordinary convolution for the whole batch instead of one per sample."""
    k = weight.shape[-1]
    # \sum_{i,k} w'_{ijk} x_i = \sum_{i,k} w_{ijk} (s_i x_i)
    out = F.conv2d(x * s[:, :, None, None], weight, padding=k // 2)  # (B, C_out, H, W)
    if demodulate:
        # d_j = 1 / \sqrt{\sum_{i,k} (s_i w_{ijk})^2 + \epsilon}
        d = torch.rsqrt(s.square() @ weight.square().sum(dim=(2, 3)).T + eps)  # (B, C_out)
        out = out * d[:, :, None, None]
    return out


class StyleLayer(nn.Module):
    """Modulated 3x3 convolution, per-pixel noise scaled per channel, bias and leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, generator: torch.Generator | None = None):
        super().__init__()
        # A: w -> s, starting at 1
        self.affine = EqualizedLinear(w_dim, c_in, gain=1.0, bias_init=1.0, generator=generator)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3, generator=generator))
        self.noise_strength = nn.Parameter(torch.zeros(c_out))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        # demodulation divides out the weight's scale, so the He constant is not needed here
        x = modulated_conv2d(x, self.weight, self.affine(w))  # (B, C_out, H, W)
        # x + B \cdot \text{noise}, noise (B, 1, H, W) shared by the channels, each with its own scale
        x = x + self.noise_strength[:, None, None] * noise
        return F.leaky_relu(x + self.bias[:, None, None], 0.2) * math.sqrt(2)


class ToImage(nn.Module):
    """A modulated 1x1 convolution to one channel, without demodulation (the output keeps its scale)."""

    def __init__(self, c_in: int, w_dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, c_in, gain=1.0, bias_init=1.0, generator=generator)
        self.weight = nn.Parameter(torch.randn(1, c_in, 1, 1, generator=generator))
        self.bias = nn.Parameter(torch.zeros(1))
        self.scale = 1 / math.sqrt(c_in)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 1, H, W)
        return modulated_conv2d(x, self.weight * self.scale, self.affine(w), demodulate=False) + self.bias


class StyleGenerator(nn.Module):
    """z -> w -> image: a 4x4 constant, one style layer at 4x4, two at 7x7, two at 14x14, then ToImage.

    `synthesis(ws)` takes one w per layer, ws (B, num_ws, w_dim): layer i reads ws[:, i]. Images come out
    in the data's range [-1, 1] (no squashing at the output, as in the paper)."""

    resolutions = (4, 7, 7, 14, 14)  # of the style layers; ToImage reads the last w
    coarse = slice(0, 3)  # the styles of the 4x4 and 7x7 layers
    fine = slice(3, 6)  # the styles of the 14x14 layers and ToImage

    def __init__(self, z_dim: int = 32, w_dim: int = 32, channels: tuple[int, int, int] = (32, 32, 16),
                 mapping_depth: int = 4, mapping_lr_mul: float = 0.01, generator: torch.Generator | None = None):
        super().__init__()
        c4, c7, c14 = channels
        self.z_dim, self.w_dim = z_dim, w_dim
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_depth, mapping_lr_mul, generator)
        self.const = nn.Parameter(torch.randn(1, c4, 4, 4, generator=generator))
        ins, outs = (c4, c4, c7, c7, c14), (c4, c7, c7, c14, c14)
        self.layers = nn.ModuleList(StyleLayer(a, b, w_dim, generator) for a, b in zip(ins, outs))
        self.to_image = ToImage(c14, w_dim, generator)
        self.num_ws = len(self.layers) + 1

    def noise(self, batch: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """One noise map (B, 1, r, r) per style layer."""
        device = self.const.device
        return [torch.randn(batch, 1, r, r, generator=generator).to(device) for r in self.resolutions]

    def synthesis(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        B = len(ws)  # ws (B, num_ws, w_dim)
        if ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape (B, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        noise = self.noise(B) if noise is None else noise
        x = self.const.expand(B, -1, -1, -1)  # (B, c4, 4, 4)
        for i, (layer, r) in enumerate(zip(self.layers, self.resolutions)):
            if x.shape[-1] != r:
                x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
            x = layer(x, ws[:, i], noise[i])  # (B, C, r, r)
        return self.to_image(x, ws[:, -1])  # (B, 1, 14, 14)

    def forward(self, z: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        w = self.mapping(z)  # (B, z_dim) -> (B, w_dim)
        return self.synthesis(w[:, None].expand(-1, self.num_ws, -1), noise)  # (B, 1, 14, 14)


def mix_styles(w_a: torch.Tensor, w_b: torch.Tensor, layers: slice, num_ws: int) -> torch.Tensor:
    """ws (B, num_ws, w_dim) that read w_b at the chosen layers and w_a at the others."""
    ws = w_a[:, None].repeat(1, num_ws, 1)
    ws[:, layers] = w_b[:, None]
    return ws


class Discriminator(nn.Module):
    """14x14 -> 7x7 -> 4x4 strided convolutions (equalised learning rate) with leaky ReLUs, one logit (B,)."""

    def __init__(self, channels: int = 32, generator: torch.Generator | None = None):
        super().__init__()
        c = channels
        self.convs = nn.ModuleList([
            EqualizedConv2d(1, c, 3, gain=1.0, generator=generator),
            EqualizedConv2d(c, 2 * c, 3, stride=2, gain=1.0, generator=generator),  # (B, 2c, 7, 7)
            EqualizedConv2d(2 * c, 2 * c, 3, stride=2, gain=1.0, generator=generator),  # (B, 2c, 4, 4)
        ])
        self.out = EqualizedLinear(2 * c * 16, 1, gain=1.0, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 14, 14) -> (B,)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2) * math.sqrt(2)
        return self.out(x.flatten(1))[:, 0]


@register_model("stylegan-generator", card="stylegan", example=lambda: (torch.randn(3, 32),))
def stylegan_generator(**kw) -> StyleGenerator:
    return StyleGenerator(**kw)


@register_model("stylegan-discriminator", card="stylegan", example=lambda: (torch.randn(3, 1, 14, 14),))
def stylegan_discriminator(**kw) -> Discriminator:
    return Discriminator(**kw)


# --- the training rule, apart from the networks -----------------------------------------------------


def r1_penalty(D: nn.Module, x_real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 on real images: pushes D flat around the data (Mescheder et al., ICML 2018)."""
    x_real = x_real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_real).sum(), x_real, create_graph=True)  # (B, 1, H, W)
    # \mathbb{E}_x \lVert \nabla_x D(x) \rVert^2
    return grad.flatten(1).square().sum(1).mean()


def mixed_styles(G: StyleGenerator, batch: int, mixing_prob: float, generator: torch.Generator) -> torch.Tensor:
    """ws (B, num_ws, w_dim) for training: with probability mixing_prob an image switches from w_1 to w_2
    at a random layer (the paper's mixing regularisation, which keeps neighbouring layers' styles apart)."""
    device = G.const.device
    z = torch.randn(2, batch, G.z_dim, generator=generator).to(device)
    w1, w2 = G.mapping(z.flatten(0, 1)).unflatten(0, (2, batch))  # (B, w_dim) each
    cut = torch.randint(1, G.num_ws, (batch,), generator=generator)
    cut = torch.where(torch.rand(batch, generator=generator) < mixing_prob, cut, G.num_ws).to(device)
    use_w2 = torch.arange(G.num_ws, device=device)[None] >= cut[:, None]  # (B, num_ws)
    return torch.where(use_w2[..., None], w2[:, None], w1[:, None])


def train_stylegan(run, G: StyleGenerator, D: nn.Module, x: torch.Tensor, *, steps: int, batch_size: int,
                   generator: torch.Generator, lr: float, betas: tuple[float, float], r1_gamma: float,
                   r1_every: int, mixing_prob: float) -> dict:
    """The non-saturating GAN game on images x (N, 1, 14, 14) in [-1, 1], with an R1 penalty on D every
    `r1_every` steps (scaled by r1_every: StyleGAN2's lazy regularisation). Returns the loss curves."""
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    curves = {"d_loss": [], "g_loss": []}
    for step in run.progress(range(steps), desc="stylegan"):
        real = x[torch.randint(len(x), (batch_size,), generator=generator).to(x.device)]
        fake = G.synthesis(mixed_styles(G, batch_size, mixing_prob, generator), G.noise(batch_size, generator))

        # \mathcal{L}_D = -\log D(x) - \log(1 - D(G(z))) + \tfrac{\gamma}{2} \mathbb{E}\lVert\nabla_x D(x)\rVert^2
        d_loss = discriminator_loss(D(real), D(fake.detach()))
        penalty = r1_gamma / 2 * r1_every * r1_penalty(D, real) if step % r1_every == 0 else 0.0
        opt_d.zero_grad(set_to_none=True)
        (d_loss + penalty).backward()
        opt_d.step()

        # \mathcal{L}_G = -\log D(G(z))
        g_loss = generator_loss_non_saturating(D(fake))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

        curves["d_loss"].append(d_loss.item())
        curves["g_loss"].append(g_loss.item())
        if step % 50 == 0 or step == steps - 1:
            run.log(step, d_loss=d_loss, g_loss=g_loss)
    return curves


# --- stylegan/style-mixing: which layers' styles decide what, measured on digits -------------------


@dataclass
class MixingConfig:
    z_dim: int = 32
    w_dim: int = 32
    channels: tuple[int, int, int] = (32, 32, 16)  # at 4x4, 7x7 and 14x14
    d_channels: int = 32
    mapping_depth: int = 4
    steps: int = 1200
    batch_size: int = 32
    lr: float = 2e-3  # StyleGAN2's Adam: lr 0.002, betas (0, 0.99)
    beta1: float = 0.0
    beta2: float = 0.99
    r1_gamma: float = 1.0
    r1_every: int = 4
    mixing_prob: float = 0.9  # the paper's mixing regularisation
    n_samples: int = 1000  # judged samples
    n_pairs: int = 500  # style-mixing pairs (w_A, w_B); each gives two mixes
    judge_epochs: int = 8


def stroke_thickness(x: torch.Tensor) -> torch.Tensor:
    """Mean stroke width (N,) of images (N, 1, H, W) in [0, 1]: a stroke of length L and width t has ink
    mass L t and an outline 2 L long, measured as the image's total variation."""
    tv = (x[..., 1:, :] - x[..., :-1, :]).abs().sum(dim=(1, 2, 3)) + (x[..., 1:] - x[..., :-1]).abs().sum(dim=(1, 2, 3))
    # t = 2 \sum x / \mathrm{TV}(x)
    return 2 * x.sum(dim=(1, 2, 3)) / tv.clamp_min(1e-6)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


@torch.no_grad()
def style_mixing(G: StyleGenerator, judge, n_pairs: int, generator: torch.Generator) -> dict:
    """Mix pairs: coarse styles from one source, fine styles from the other, in both directions, with the same
    noise for the sources and their mixes. Which source does the judge's digit follow, and which source does
    the stroke thickness follow?"""
    device = G.const.device
    z = torch.randn(2, n_pairs, G.z_dim, generator=generator).to(device)
    w_a, w_b = G.mapping(z.flatten(0, 1)).unflatten(0, (2, n_pairs))  # (P, w_dim) each
    noise = G.noise(n_pairs, generator)
    image = {name: G.synthesis(ws, noise).cpu() for name, ws in (
        ("a", mix_styles(w_a, w_a, G.fine, G.num_ws)),
        ("b", mix_styles(w_b, w_b, G.fine, G.num_ws)),
        ("ab", mix_styles(w_a, w_b, G.fine, G.num_ws)),  # coarse from A, fine from B
        ("ba", mix_styles(w_b, w_a, G.fine, G.num_ws)))}  # coarse from B, fine from A
    mix = torch.cat([image["ab"], image["ba"]])  # (2P, 1, 14, 14)
    coarse_src, fine_src = torch.cat([image["a"], image["b"]]), torch.cat([image["b"], image["a"]])
    label = {name: judge.predict(to_judge((x + 1) / 2)) for name, x in (("mix", mix), ("coarse", coarse_src), ("fine", fine_src))}
    differ = label["coarse"] != label["fine"]  # only pairs whose sources are different digits can tell
    t = {name: stroke_thickness((x.clamp(-1, 1) + 1) / 2) for name, x in
         (("mix", mix), ("coarse", coarse_src), ("fine", fine_src))}
    return {"mix_pairs": 2 * n_pairs, "mix_differ": int(differ.sum()),
            "coarse_class_share": (label["mix"] == label["coarse"])[differ].float().mean().item(),
            "fine_class_share": (label["mix"] == label["fine"])[differ].float().mean().item(),
            "thickness_corr_fine": _pearson(t["mix"], t["fine"]),
            "thickness_corr_coarse": _pearson(t["mix"], t["coarse"])}


def _mixing_supported(m: dict) -> bool:
    # coarse styles set the digit: the mix's class follows the coarse source at least twice as often as the
    # fine one; fine styles set the details: the mix's stroke thickness correlates more with the fine source
    return (m["coarse_class_share"] >= 2 * m["fine_class_share"]
            and m["thickness_corr_fine"] > m["thickness_corr_coarse"])


def mixing_grid(ax, G: StyleGenerator, generator: torch.Generator, rows: int = 5, cols: int = 6) -> None:
    """The paper's figure 3: fine sources along the top, coarse sources down the left, their mixes inside."""
    with torch.no_grad():
        w_coarse = G.mapping(torch.randn(rows, G.z_dim, generator=generator).to(G.const.device))
        w_fine = G.mapping(torch.randn(cols, G.z_dim, generator=generator).to(G.const.device))
        noise = G.noise(1, generator)  # one noise for every image, so that only the styles differ

        def same_noise(n: int) -> list[torch.Tensor]:
            return [m.expand(n, -1, -1, -1) for m in noise]

        src_coarse = G.synthesis(w_coarse[:, None].expand(-1, G.num_ws, -1), same_noise(rows))
        src_fine = G.synthesis(w_fine[:, None].expand(-1, G.num_ws, -1), same_noise(cols))
        mixes = G.synthesis(mix_styles(w_coarse.repeat_interleave(cols, 0), w_fine.repeat(rows, 1), G.fine,
                                       G.num_ws), same_noise(rows * cols))  # row-major: (coarse i, fine j)
    tiles = torch.zeros(rows + 1, cols + 1, 28, 28)
    tiles[1:, 0] = to_judge((src_coarse + 1) / 2)[:, 0]
    tiles[0, 1:] = to_judge((src_fine + 1) / 2)[:, 0]
    tiles[1:, 1:] = to_judge((mixes + 1) / 2)[:, 0].reshape(rows, cols, 28, 28)
    ax.imshow(tiles.permute(0, 2, 1, 3).reshape((rows + 1) * 28, (cols + 1) * 28).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.axhline(27.5, color="tab:red", lw=1)
    ax.axvline(27.5, color="tab:red", lw=1)
    ax.set(title="coarse styles (4x4, 7x7) from the left column,\nfine styles (14x14, ToImage) from the top row",
           xticks=[], yticks=[])


@lab(
    "stylegan/style-mixing",
    card="stylegan",
    config=MixingConfig,
    scales={
        "quick": {"channels": (8, 8, 8), "d_channels": 8, "steps": 10, "n_samples": 100, "n_pairs": 50,
                  "judge_epochs": 1},
        "default": {},
        "full": {"channels": (128, 128, 64), "d_channels": 64, "mapping_depth": 8, "steps": 20_000},
    },
    goals=[Goal("fd_vs_baseline", "<=", 0.5)],
    claims=[
        Check(
            "stylegan-style-mixing",
            _mixing_supported,
            "A 14x14 StyleGAN generator ({steps} steps, Frechet distance {stylegan_fd:.1f} against {baseline_fd:.1f} "
            "for independent pixels, {real14_fd:.1f} for real digits at 14x14); {mix_pairs} mixes of coarse styles "
            "(4x4, 7x7) from one code and fine styles (14x14, ToImage) from another: of the {mix_differ} whose "
            "sources are different digits, LeNet-5 reads the coarse source's digit in {coarse_class_share:.0%} and "
            "the fine source's in {fine_class_share:.0%}; the stroke thickness of the mix correlates "
            "{thickness_corr_fine:.2f} with the fine source and {thickness_corr_coarse:.2f} with the coarse one "
            "(supported when the digit follows the coarse source at least twice as often and the thickness "
            "follows the fine source more closely)",
        ),
    ],
    budget_s=90,
    threads=1,  # small convolutions on 14x14 maps: a second thread mostly waits
)
def style_mixing_lab(run, cfg: MixingConfig) -> dict:
    """A small StyleGAN on 14x14 digits: how far from real digits, and what the coarse and fine styles decide."""
    data = mnist_subset(flatten=False)
    x = F.avg_pool2d(data.x_train, 2) * 2 - 1  # (4000, 1, 14, 14) in [-1, 1]
    judge = digit_judge(run, cfg.judge_epochs)
    metrics: dict = reference_numbers(run, judge)
    # the best a 14x14 model can reach: real test digits at 14x14, upsampled as G's samples are
    metrics["real14_fd"] = judge.fd(to_judge(F.avg_pool2d(data.x_test, 2)), data.x_train)
    g = torch.Generator().manual_seed(run.seed)

    G = StyleGenerator(cfg.z_dim, cfg.w_dim, tuple(cfg.channels), cfg.mapping_depth, generator=g).to(run.device)
    D = Discriminator(cfg.d_channels, generator=g).to(run.device)
    curves = train_stylegan(run, G, D, x.to(run.device), steps=cfg.steps, batch_size=cfg.batch_size, generator=g,
                            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), r1_gamma=cfg.r1_gamma, r1_every=cfg.r1_every,
                            mixing_prob=cfg.mixing_prob)
    with torch.no_grad():
        fake = G(torch.randn(cfg.n_samples, cfg.z_dim, generator=g).to(run.device), G.noise(cfg.n_samples, g))
        samples = to_judge((fake.cpu() + 1) / 2)  # [-1, 1] -> [0, 1], (n, 1, 28, 28)
    r = judge.evaluate(samples, data.x_train)
    metrics |= {"stylegan_fd": r["fd"], "stylegan_confident": r["confident_share"],
                "stylegan_classes": r["class_coverage"], "fd_vs_baseline": r["fd"] / metrics["baseline_fd"]}
    metrics |= style_mixing(G, judge, cfg.n_pairs, g)
    metrics |= {k: v for k, v in vars(cfg).items() if isinstance(v, (int, float))}

    with run.figure("style_mixing", ncols=2, size=(10, 5)) as (fig, (ax_grid, ax_loss)):
        mixing_grid(ax_grid, G, torch.Generator().manual_seed(run.seed))
        ax_loss.plot(curves["d_loss"], lw=0.6, label="D loss")
        ax_loss.plot(curves["g_loss"], lw=0.6, label="G loss")
        ax_loss.set(xlabel="step", ylabel="loss", title="the two players' losses")
        ax_loss.legend(fontsize=7)
    with run.figure("samples", ncols=3, size=(12, 4.4)) as (fig, axes):
        image_grid(axes[0], samples[:64], 8, f"StyleGAN samples, 14x14 (FD {metrics['stylegan_fd']:.1f})")
        image_grid(axes[1], data.x_test[:64], 8, f"real test digits (FD {metrics['real_fd']:.1f})")
        image_grid(axes[2], independent_pixels(data.x_train, 64, torch.Generator().manual_seed(0)), 8,
                   f"independent pixels (FD {metrics['baseline_fd']:.1f})")
    return metrics
