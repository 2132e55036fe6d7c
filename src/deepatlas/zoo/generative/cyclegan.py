"""CycleGAN: translate between two image domains from unpaired examples, held together by cycle consistency.

Two generators, G: A -> B and F: B -> A, each face a discriminator (D_B judges G's outputs, D_A F's).
Adversarial losses alone only ask that G(a) look like *some* image of B; the cycle loss asks that
F(G(a)) return a and G(F(b)) return b, so the translation must keep what the input is about and
change only its style. The paper uses least-squares adversarial losses (LSGAN), lambda = 10, and an
optional identity loss (G(b) should leave b alone) weighted lambda / 2.

    \\mathcal{L} = \\mathcal{L}_{GAN}(G, D_B) + \\mathcal{L}_{GAN}(F, D_A)
                 + \\lambda (\\lVert F(G(a)) - a \\rVert_1 + \\lVert G(F(b)) - b \\rVert_1)

Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks", ICCV 2017 (arXiv 1703.10593).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.digit_styles import digit_styles
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.generative.dcgan import dcgan_init_, image_grid
from deepatlas.zoo.generative.judge import digit_judge

# --- the objective, apart from the networks ---------------------------------------------------------


def lsgan_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN's discriminator loss: real images scored 1, translated ones 0 (Mao et al., 2017)."""
    # \mathcal{L}_D = \tfrac12 \mathbb{E}[(D(b) - 1)^2] + \tfrac12 \mathbb{E}[D(G(a))^2]
    return 0.5 * ((real_scores - 1).square().mean() + fake_scores.square().mean())


def lsgan_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN's generator loss: translated images should be scored 1."""
    # \mathcal{L}_G = \mathbb{E}[(D(G(a)) - 1)^2]
    return (fake_scores - 1).square().mean()


def cycle_loss(x: torch.Tensor, x_cycled: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of a round trip: x against F(G(x)) (or G(F(x)))."""
    # \mathcal{L}_{cyc} = \mathbb{E}\lVert F(G(a)) - a \rVert_1
    return (x_cycled - x).abs().mean()


# --- the networks -----------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norm, added back to the input (the paper's generator blocks)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"), nn.InstanceNorm2d(channels),
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return x + self.body(x)


class CycleGenerator(nn.Module):
    """image (B, 1, 28, 28) in [-1, 1] -> image of the other domain, same shape: the paper's ResNet generator
    scaled down (c5s1-w, d2w, d2w, n residual blocks, u2w, uw, c5s1-1, tanh), instance norm throughout."""

    def __init__(self, width: int = 16, n_blocks: int = 2):
        super().__init__()
        if width < 1 or n_blocks < 0:
            raise ValueError(f"width must be positive and n_blocks non-negative, got {width}, {n_blocks}")
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 5, padding=2, padding_mode="reflect"), nn.InstanceNorm2d(w), nn.ReLU(),  # (B, w, 28, 28)
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.InstanceNorm2d(2 * w), nn.ReLU(),  # (B, 2w, 14, 14)
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.InstanceNorm2d(2 * w), nn.ReLU(),  # (B, 2w, 7, 7)
            *[ResidualBlock(2 * w) for _ in range(n_blocks)],  # (B, 2w, 7, 7)
            nn.ConvTranspose2d(2 * w, 2 * w, 4, 2, 1), nn.InstanceNorm2d(2 * w), nn.ReLU(),  # (B, 2w, 14, 14)
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.InstanceNorm2d(w), nn.ReLU(),  # (B, w, 28, 28)
            nn.Conv2d(w, 1, 5, padding=2, padding_mode="reflect"), nn.Tanh(),  # (B, 1, 28, 28)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """image (B, 1, 28, 28) -> (B, 7, 7) scores, one per overlapping patch (a PatchGAN, as in pix2pix):
    it judges local style and leaves global content to the cycle loss."""

    def __init__(self, width: int = 16):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, w, 14, 14)
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.InstanceNorm2d(2 * width), nn.LeakyReLU(0.2),  # (B, 2w, 7, 7)
            nn.Conv2d(2 * width, 1, 3, 1, 1),  # (B, 1, 7, 7): each score sees an 18x18 patch
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


class CycleGAN(nn.Module):
    """The four networks: G (A -> B), F (B -> A), D_A and D_B. forward(a, b) makes one round of translations."""

    def __init__(self, width: int = 16, n_blocks: int = 2, d_width: int = 16):
        super().__init__()
        self.G, self.F = CycleGenerator(width, n_blocks), CycleGenerator(width, n_blocks)
        self.D_A, self.D_B = PatchDiscriminator(d_width), PatchDiscriminator(d_width)
        dcgan_init_(self)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict:
        fake_b, fake_a = self.G(a), self.F(b)  # (B, 1, 28, 28) each
        return {"fake_b": fake_b, "fake_a": fake_a, "cycled_a": self.F(fake_b), "cycled_b": self.G(fake_a),
                "score_fake_b": self.D_B(fake_b), "score_fake_a": self.D_A(fake_a)}


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 1, 28, 28, generator=g) * 2 - 1, torch.rand(2, 1, 28, 28, generator=g) * 2 - 1


@register_model("cyclegan", card="cyclegan", example=_pair)
def cyclegan(**kw) -> CycleGAN:
    return CycleGAN(**kw)


@register_model("cyclegan-generator", card="cyclegan", example=lambda: (_pair()[0],))
def cyclegan_generator(**kw) -> CycleGenerator:
    return CycleGenerator(**kw)


@register_model("cyclegan-discriminator", card="cyclegan", example=lambda: (_pair()[0],))
def cyclegan_discriminator(**kw) -> PatchDiscriminator:
    return PatchDiscriminator(**kw)


# --- training ---------------------------------------------------------------------------------------


def train_step(model: CycleGAN, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, a: torch.Tensor,
               b: torch.Tensor, *, lambda_cyc: float = 10.0, lambda_id: float = 0.0) -> dict:
    """One step of both generators (adversarial + cycle + identity losses), then one of both discriminators."""
    G, F_, D_A, D_B = model.G, model.F, model.D_A, model.D_B
    fake_b, fake_a = G(a), F_(b)  # (B, 1, 28, 28)
    adv = lsgan_g_loss(D_B(fake_b)) + lsgan_g_loss(D_A(fake_a))
    # \lambda (\lVert F(G(a)) - a \rVert_1 + \lVert G(F(b)) - b \rVert_1)
    cyc = cycle_loss(a, F_(fake_b)) + cycle_loss(b, G(fake_a))
    g_total = adv + lambda_cyc * cyc
    if lambda_id > 0:
        # identity: G should leave an image that is already in B unchanged, F one in A
        g_total = g_total + lambda_id * (cycle_loss(b, G(b)) + cycle_loss(a, F_(a)))
    opt_g.zero_grad(set_to_none=True)
    g_total.backward()
    opt_g.step()

    d_loss = lsgan_d_loss(D_B(b), D_B(fake_b.detach())) + lsgan_d_loss(D_A(a), D_A(fake_a.detach()))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return {"g_adv": adv.detach(), "cycle": cyc.detach(), "d_loss": d_loss.detach()}


def fit_cyclegan(run, a: torch.Tensor, b: torch.Tensor, *, steps: int, batch_size: int, generator: torch.Generator,
                 width: int = 8, n_blocks: int = 2, lr: float = 2e-4, lambda_cyc: float = 10.0,
                 lambda_id: float = 0.0) -> tuple[CycleGAN, dict]:
    """Train on unpaired images a (N_a, 1, 28, 28) and b (N_b, 1, 28, 28) in [0, 1]: independent batches of each."""
    model = dcgan_init_(CycleGAN(width, n_blocks, width), generator).to(run.device)
    opt_g = torch.optim.Adam([*model.G.parameters(), *model.F.parameters()], lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*model.D_A.parameters(), *model.D_B.parameters()], lr=lr, betas=(0.5, 0.999))
    a, b = a.to(run.device) * 2 - 1, b.to(run.device) * 2 - 1  # tanh range
    curves = {"cycle": [], "g_adv": [], "d_loss": []}
    for step in run.progress(range(steps), desc="cyclegan"):
        ia = torch.randint(len(a), (batch_size,), generator=generator).to(run.device)
        ib = torch.randint(len(b), (batch_size,), generator=generator).to(run.device)  # unrelated to ia
        losses = train_step(model, opt_g, opt_d, a[ia], b[ib], lambda_cyc=lambda_cyc, lambda_id=lambda_id)
        for k, v in losses.items():
            curves[k].append(v.item())
        if step % 50 == 0 or step == steps - 1:
            run.log(step, **losses)
    return model, curves


@torch.no_grad()
def translate(net: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """A generator applied to images x (N, 1, 28, 28) in [0, 1]; the result is in [0, 1] too."""
    net.eval()
    device = next(net.parameters()).device
    out = torch.cat([(net(x[i:i + batch_size].to(device) * 2 - 1) + 1) / 2 for i in range(0, len(x), batch_size)])
    net.train()
    return out.cpu()


# --- cyclegan/digit-styles: unpaired translation between two renderings of the same digits -------


def style_classifier(run, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator, epochs: int = 2) -> nn.Module:
    """A small CNN that tells style A (0) from style B (1): the instrument that says whether a translation
    changed the style. Trained on the unpaired training images."""
    net = nn.Sequential(
        nn.Conv2d(1, 8, 5, 2, 2), nn.ReLU(),  # (B, 8, 14, 14)
        nn.Conv2d(8, 16, 5, 2, 2), nn.ReLU(),  # (B, 16, 7, 7)
        nn.Flatten(), nn.Linear(16 * 49, 1),
    ).to(run.device)
    x = torch.cat([a, b]).to(run.device)
    t = torch.cat([torch.zeros(len(a)), torch.ones(len(b))]).to(run.device)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(run.device)
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[idx])[:, 0], t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@dataclass
class StylesConfig:
    # style B: "stroke" (thicker strokes) or "slant" (sheared); style A is MNIST as written. The slant, a
    # global warp, needs more steps than the budget holds: in 400 steps G(a) is still nearly upright
    pair: str = "stroke"
    amount: float = 0.4  # the shear of the slanted style
    width: int = 8
    n_blocks: int = 2
    steps: int = 400
    batch_size: int = 16
    lr: float = 5e-4
    lambda_cyc: float = 10.0  # the paper's
    lambda_id: float = 0.0  # the paper's photo->painting runs use lambda / 2; digits need none
    n_test: int = 500
    judge_epochs: int = 8


def _unpaired_translation(m: dict) -> bool:
    # both directions change the style, keep the digit, and return to the input
    return (min(m["style_ab"], m["style_ba"]) >= 0.8 and m["kept_ratio"] >= 0.9
            and m["cycle_l1"] <= 0.5 * m["style_gap_l1"])


@lab(
    "cyclegan/digit-styles",
    card="cyclegan",
    config=StylesConfig,
    scales={
        "quick": {"width": 4, "n_blocks": 1, "steps": 5, "batch_size": 8, "n_test": 100, "judge_epochs": 1},
        "default": {},
        "full": {"width": 32, "n_blocks": 6, "steps": 5000, "lr": 2e-4, "batch_size": 1},
    },
    goals=[Goal("cycle_l1_ratio", "<=", 0.5), Goal("kept_ratio", ">=", 0.9)],
    claims=[
        Check(
            "cyclegan-unpaired",
            _unpaired_translation,
            "style B thicker strokes (shear {shear}; a shear > 0 means the slanted pair instead), trained on "
            "disjoint halves (no pairs), {steps} steps: the style classifier (real test "
            "images {style_acc_real:.1%} right) calls {style_ab:.0%} of G(a) style B and {style_ba:.0%} of F(b) "
            "style A; LeNet-5 reads the true digit in {kept_ab:.1%} of G(a) and {kept_ba:.1%} of F(b) against "
            "{judge_acc_b:.1%} and {judge_acc_a:.1%} on real images of those styles (ratio {kept_ratio:.2f}); "
            "round-trip L1 {cycle_l1:.3f} against {style_gap_l1:.3f} between the two styles of a digit; L1 to the "
            "true translation {translation_l1:.3f}; supported when both directions reach style B/A >= 80%, the "
            "digit ratio >= 0.9 and the round trip error <= half the style gap",
        ),
    ],
    budget_s=90,
    threads=1,  # small convolutions (4-64 channels on 28x28 maps): a second thread mostly waits
)
def digit_styles_lab(run, cfg: StylesConfig) -> dict:
    """CycleGAN between MNIST digits as written and with thicker strokes: style changed, digit kept."""
    data = digit_styles(cfg.pair, cfg.amount)
    judge = digit_judge(run, cfg.judge_epochs)
    g = torch.Generator().manual_seed(run.seed)
    model, curves = fit_cyclegan(run, data.a_train, data.b_train, steps=cfg.steps, batch_size=cfg.batch_size,
                                 generator=g, width=cfg.width, n_blocks=cfg.n_blocks, lr=cfg.lr,
                                 lambda_cyc=cfg.lambda_cyc, lambda_id=cfg.lambda_id)
    a, b, y = data.a_test[:cfg.n_test], data.b_test[:cfg.n_test], data.y_test[:cfg.n_test]  # paired test digits
    fake_b, fake_a = translate(model.G, a), translate(model.F, b)  # (n, 1, 28, 28)
    cycled_a, cycled_b = translate(model.F, fake_b), translate(model.G, fake_a)

    styles = style_classifier(run, data.a_train, data.b_train, g)
    with torch.no_grad():
        def is_b(x):
            return (styles(x.to(run.device))[:, 0] > 0).float().mean().item()

        style_acc_real = (1 - is_b(a) + is_b(b)) / 2

    def read(x):
        return (judge.predict(x) == y).float().mean().item()

    m = {"judge_acc_a": read(a), "judge_acc_b": read(b), "kept_ab": read(fake_b), "kept_ba": read(fake_a),
         "style_acc_real": style_acc_real, "style_ab": is_b(fake_b), "style_ba": 1 - is_b(fake_a),
         "cycle_l1_a": (cycled_a - a).abs().mean().item(), "cycle_l1_b": (cycled_b - b).abs().mean().item(),
         "style_gap_l1": (a - b).abs().mean().item(),
         "translation_l1": ((fake_b - b).abs().mean().item() + (fake_a - a).abs().mean().item()) / 2}
    m["cycle_l1"] = (m["cycle_l1_a"] + m["cycle_l1_b"]) / 2
    m["cycle_l1_ratio"] = m["cycle_l1"] / m["style_gap_l1"]
    # the digit kept, relative to how well the judge reads real images of the target style
    m["kept_ratio"] = min(m["kept_ab"] / m["judge_acc_b"], m["kept_ba"] / m["judge_acc_a"])
    m |= {k: v for k, v in vars(cfg).items() if isinstance(v, (int, float))}
    m["shear"] = cfg.amount if cfg.pair == "slant" else 0.0

    rows = torch.cat([a[:10], fake_b[:10], cycled_a[:10], b[:10], b[10:20], fake_a[10:20], cycled_b[10:20],
                      a[10:20]])
    with run.figure("translations", ncols=2, size=(11, 5)) as (fig, (ax_grid, ax_loss)):
        image_grid(ax_grid, rows, 8, "rows: a, G(a), F(G(a)), true b | b, F(b), G(F(b)), true a")
        ax_loss.plot(curves["cycle"], lw=0.6, label="cycle L1 (both directions)")
        ax_loss.plot(curves["g_adv"], lw=0.6, label="generators' LSGAN loss")
        ax_loss.plot(curves["d_loss"], lw=0.6, label="discriminators' LSGAN loss")
        ax_loss.set(xlabel="step", ylabel="loss", title=f"CycleGAN, lambda = {cfg.lambda_cyc:g}")
        ax_loss.legend(fontsize=7)
    return m
