"""Meta-SGD: MAML with a learned step size for every parameter, meta-learned with the initialisation.

The inner update multiplies the gradient elementwise by a vector alpha of the parameters' shape;
each entry may be large, small or negative, so alpha sets the direction of the update as well as
its size, and a single step is meant to suffice. alpha is trained by the same meta-gradient as
theta, through the one inner step.

    \\theta_i' = \\theta - \\boldsymbol\\alpha \\circ \\nabla_\\theta \\mathcal{L}^{support}_{\\mathcal{T}_i}(\\theta),
    \\min_{\\theta, \\boldsymbol\\alpha} \\mathbb{E}_{\\mathcal{T}_i} \\mathcal{L}^{query}_{\\mathcal{T}_i}(\\theta_i')

Li, Zhou, Chen & Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning", arXiv 1707.09835, 2017.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.data import split_seeds
from deepatlas.data.sinusoid import sample_tasks
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.meta.maml import MAML, Params, SinusoidConfig, adaptation_curve, meta_train, mse, sinusoid_learner


class MetaSGD(MAML):
    """MAML whose inner step size is a learned tensor per parameter, initialised to alpha everywhere
    (the paper draws it from U[0.005, 0.1]). Second-order, one inner step by default."""

    def __init__(self, learner: nn.Module, alpha: float = 0.01, steps: int = 1, loss=mse):
        super().__init__(learner, alpha, steps, first_order=False, loss=loss)
        self.names = [name for name, _ in learner.named_parameters()]
        self.alphas = nn.ParameterList(  # may turn negative: learned as is
            nn.Parameter(torch.full_like(p, alpha)) for p in learner.parameters())

    def rates(self) -> Params:
        return dict(zip(self.names, self.alphas))


@register_model("meta-sgd-sinusoid", card="meta-sgd",
                example=lambda: (torch.randn(2, 5, 1), torch.randn(2, 5, 1), torch.randn(2, 7, 1)))
def meta_sgd_sinusoid(hidden: int = 40, alpha: float = 0.01) -> MetaSGD:
    return MetaSGD(sinusoid_learner(hidden), alpha)


# --- meta-sgd/sinusoid: one learned step against MAML's one step ----------------------------------

SHOTS = (5, 10)


@lab(
    "meta-sgd/sinusoid",
    card="meta-sgd",
    config=SinusoidConfig,
    scales={
        "quick": {"meta_steps": 20, "n_test": 40, "test_points": 20},
        "default": {},
        "full": {"meta_steps": 70000, "meta_lr": 1e-3},
    },
    goals=[Goal("metasgd_k10_mse_1", "<=", 1.0)],
    claims=[
        Check(
            "meta-sgd-fast-adaptation",
            lambda m: m["metasgd_k5_mse_1"] <= m["maml_k5_mse_1"] and m["metasgd_k10_mse_1"] <= m["maml_k10_mse_1"],
            "after a single update on K=5 / K=10 points of {n_test} held-out sine waves, Meta-SGD (learned "
            "per-parameter steps, mean |alpha| {mean_abs_alpha:.4f}, {negative_alpha:.1%} of them negative) reaches "
            "query MSE {metasgd_k5_mse_1:.3f} / {metasgd_k10_mse_1:.3f}; MAML with the fixed step {alpha} reaches "
            "{maml_k5_mse_1:.3f} / {maml_k10_mse_1:.3f} after one step and {maml_k10_mse_10:.3f} after 10 (K=10), "
            "both after {meta_steps} meta-steps. Rule: Meta-SGD's one-step MSE no higher than MAML's for both K",
        ),
    ],
    budget_s=60,
    threads=1,
)
def sinusoid(run, cfg: SinusoidConfig) -> dict:
    """Meta-SGD against MAML on sine waves: how far one update goes."""
    train_seed, test_seed = split_seeds(run.seed)
    test = sample_tasks(cfg.n_test, max(SHOTS) + cfg.test_points, torch.Generator().manual_seed(test_seed))
    x_q, y_q = test.x[:, max(SHOTS):].to(run.device), test.y[:, max(SHOTS):].to(run.device)
    metrics: dict = {"alpha": cfg.alpha, "n_test": cfg.n_test, "meta_steps": cfg.meta_steps}
    models = {}
    for name, cls in run.progress([("maml", MAML), ("metasgd", MetaSGD)], desc="methods"):
        learner = sinusoid_learner(cfg.hidden, torch.Generator().manual_seed(train_seed))
        model = models[name] = cls(learner, cfg.alpha).to(run.device)
        meta_train(model, cfg, torch.Generator().manual_seed(train_seed), run, name)
        for k in SHOTS:
            # Meta-SGD's steps are learned for one update (repeating them diverges); MAML's curve goes to 10
            steps = 1 if name == "metasgd" else 10
            curve = adaptation_curve(model, test.x[:, :k].to(run.device), test.y[:, :k].to(run.device), x_q, y_q,
                                     steps)
            metrics[f"{name}_k{k}_mse_1"], metrics[f"{name}_k{k}_mse_{steps}"] = curve[1], curve[steps]
    alphas = torch.cat([a.detach().flatten() for a in models["metasgd"].alphas]).cpu()
    metrics["mean_abs_alpha"] = alphas.abs().mean().item()
    metrics["negative_alpha"] = (alphas < 0).double().mean().item()
    with run.figure("meta_sgd", ncols=2, size=(9, 3.6)) as (fig, (ax_a, ax_bar)):
        ax_a.hist(alphas.numpy(), bins=60)
        ax_a.axvline(cfg.alpha, color="k", ls="--", lw=1, label=f"initial alpha {cfg.alpha}")
        ax_a.set(xlabel="learned per-parameter step alpha", ylabel="parameters", title="Meta-SGD's step sizes")
        ax_a.legend(fontsize=8)
        width = 0.35
        for i, name in enumerate(("maml", "metasgd")):
            ax_bar.bar([j + i * width for j in range(len(SHOTS))], [metrics[f"{name}_k{k}_mse_1"] for k in SHOTS],
                       width, label=name)
        ax_bar.set(xticks=[j + width / 2 for j in range(len(SHOTS))], xticklabels=[f"K={k}" for k in SHOTS],
                   ylabel="query MSE after one step", title="one update on a new wave")
        ax_bar.legend(fontsize=8)
    return metrics
