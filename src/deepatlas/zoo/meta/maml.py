"""MAML: meta-learn an initialisation from which a few gradient steps on a few examples fit a new task.

For each task of a meta-batch, take gradient steps from the shared parameters theta on the task's
support set; score the adapted parameters on the task's query set; move theta down the gradient
of that score. The gradient flows back through the inner steps, so it holds second derivatives
(a Hessian-vector product per step); first-order MAML drops them and uses the query gradient at
the adapted parameters as if it were the gradient at theta. The learner is any network: the
inner loop runs it functionally (torch.func.functional_call) with one copy of the parameters per
task, all tasks at once under torch.func.vmap.

    \\theta_i' = \\theta - \\alpha \\nabla_\\theta \\mathcal{L}^{support}_{\\mathcal{T}_i}(\\theta),
    \\theta \\leftarrow \\theta - \\beta \\nabla_\\theta \\sum_i \\mathcal{L}^{query}_{\\mathcal{T}_i}(\\theta_i')

Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", ICML 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from deepatlas.data import split_seeds
from deepatlas.data.sinusoid import sample_tasks
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.fundamentals.mlp import MLP

Params = dict[str, torch.Tensor]


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of one task: pred, y (K, d) -> ()."""
    return (pred - y).square().mean()


# --- the algorithm: inner loop and meta-objective, for any learner --------------------------------

def task_losses(learner: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor,
                loss: Callable = mse) -> torch.Tensor:
    """The loss of every task under its own parameters: params {name: (B, *shape)}, x (B, K, ...), y (B, K, ...)
    -> (B,)."""
    def one(p, xi, yi):
        return loss(functional_call(learner, p, (xi,)), yi)

    return vmap(one)(params, x, y)


def per_task(params: Params, n_tasks: int) -> Params:
    """One copy of the shared parameters per task, (B, *shape); gradients flow back to the shared ones."""
    return {name: p.expand(n_tasks, *p.shape) for name, p in params.items()}


def inner_loop(learner: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor,
               alpha: float | Params, steps: int, create_graph: bool, loss: Callable = mse) -> Params:
    """`steps` gradient steps on each task's support set from per-task params (B, *shape).

    alpha is a scalar step size (MAML) or one per parameter entry (Meta-SGD). With create_graph the
    steps stay differentiable (second-order MAML); without, the gradient is a constant and the adapted
    parameters depend on the start only through the identity (first-order MAML, Reptile)."""
    for _ in range(steps):
        # summed over tasks: each task's params only see their own task's loss
        total = task_losses(learner, params, x, y, loss).sum()
        grads = torch.autograd.grad(total, list(params.values()), create_graph=create_graph)
        # \theta_i' = \theta_i - \alpha \circ \nabla_{\theta_i} \mathcal{L}^{support}_{\mathcal{T}_i}(\theta_i)
        params = {name: p - (alpha if isinstance(alpha, float) else alpha[name]) * g
                  for (name, p), g in zip(params.items(), grads)}
    return params


class MAML(nn.Module):
    """A learner and its inner loop. forward(x_s, y_s, x_q) adapts one copy of the learner per task to
    its support set (B, K, d_in), (B, K, d_out) and predicts that task's queries (B, Q, d_in) -> (B, Q, d_out).

    Backward from the query loss gives the meta-gradient: second-order unless first_order."""

    def __init__(self, learner: nn.Module, alpha: float = 0.01, steps: int = 1, first_order: bool = False,
                 loss: Callable = mse):
        super().__init__()
        if steps < 1 or alpha <= 0:
            raise ValueError(f"MAML needs steps >= 1 and alpha > 0, got steps={steps}, alpha={alpha}")
        self.learner, self.alpha, self.steps, self.first_order, self.loss = learner, float(alpha), steps, first_order, loss

    def rates(self) -> float | Params:
        """The inner step size: one scalar for MAML."""
        return self.alpha

    def adapt(self, x_s: torch.Tensor, y_s: torch.Tensor, steps: int | None = None,
              differentiable: bool | None = None) -> Params:
        """Per-task adapted parameters (B, *shape) after `steps` inner steps (default self.steps)."""
        differentiable = not self.first_order if differentiable is None else differentiable
        start = per_task(dict(self.learner.named_parameters()), len(x_s))
        with torch.enable_grad():  # the inner loop needs gradients even when evaluated under no_grad
            return inner_loop(self.learner, start, x_s, y_s, self.rates(), self.steps if steps is None else steps,
                              create_graph=differentiable and torch.is_grad_enabled(), loss=self.loss)

    def predict(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Each task's learner on its own inputs: params (B, *shape), x (B, Q, d_in) -> (B, Q, d_out)."""
        return vmap(lambda p, xi: functional_call(self.learner, p, (xi,)))(params, x)

    def forward(self, x_s: torch.Tensor, y_s: torch.Tensor, x_q: torch.Tensor) -> torch.Tensor:
        return self.predict(self.adapt(x_s, y_s), x_q)

    def meta_loss(self, x_s, y_s, x_q, y_q) -> torch.Tensor:
        """\\frac1B \\sum_i \\mathcal{L}^{query}_{\\mathcal{T}_i}(\\theta_i'): the quantity whose gradient is the meta-gradient."""
        return task_losses(self.learner, self.adapt(x_s, y_s), x_q, y_q, self.loss).mean()


def sinusoid_learner(hidden: int = 40, generator: torch.Generator | None = None) -> MLP:
    """The paper's regressor: 1 -> 40 -> 40 -> 1 with ReLU."""
    return MLP([1, hidden, hidden, 1], activation="relu", generator=generator)


def _example():
    return torch.randn(2, 5, 1), torch.randn(2, 5, 1), torch.randn(2, 7, 1)


@register_model("maml-sinusoid", card="maml", example=_example)
def maml_sinusoid(hidden: int = 40, alpha: float = 0.01, steps: int = 1) -> MAML:
    return MAML(sinusoid_learner(hidden), alpha, steps)


@register_model("fomaml-sinusoid", card="maml", example=_example)
def fomaml_sinusoid(hidden: int = 40, alpha: float = 0.01, steps: int = 1) -> MAML:
    return MAML(sinusoid_learner(hidden), alpha, steps, first_order=True)


# --- evaluation shared by the sinusoid labs -------------------------------------------------------

def adaptation_curve(model: MAML, x_s, y_s, x_q, y_q, max_steps: int, alpha: float | Params | None = None,
                     batch: int = 250) -> list[float]:
    """Query MSE after 0, 1, ..., max_steps plain gradient steps on each support set (mean over tasks),
    with the model's own step size unless `alpha` is given. Tasks run in chunks of `batch`."""
    alpha = model.rates() if alpha is None else alpha
    totals = torch.zeros(max_steps + 1)
    for i in range(0, len(x_s), batch):
        sl = slice(i, i + batch)
        params = per_task({n: p.detach().requires_grad_() for n, p in model.learner.named_parameters()},
                          len(x_s[sl]))
        detached = alpha if isinstance(alpha, float) else {n: a.detach() for n, a in alpha.items()}
        for step in range(max_steps + 1):
            if step:
                params = inner_loop(model.learner, params, x_s[sl], y_s[sl], detached, 1, create_graph=False)
                params = {n: p.detach().requires_grad_() for n, p in params.items()}
            with torch.no_grad():
                totals[step] += task_losses(model.learner, params, x_q[sl], y_q[sl]).sum()
    return (totals / len(x_s)).tolist()


# --- maml/sinusoid: MAML, first-order MAML, Reptile and pretraining on sine waves ------------------

@dataclass
class SinusoidConfig:
    k_train: int = 10  # support points per training task (one model per method, tested at K = 5 and 10)
    meta_steps: int = 1500
    meta_batch: int = 25  # tasks per meta-step
    n_query: int = 10  # query points per training task
    alpha: float = 0.01  # inner SGD step of MAML in training, and of every method at test
    meta_lr: float = 3e-3  # Adam on theta
    reptile_alpha: float = 0.02  # Reptile's inner SGD step in training
    reptile_steps: int = 5  # inner SGD steps per Reptile task (on all k_train + n_query points)
    reptile_epsilon: float = 1.0  # Reptile's outer step towards the mean adapted weights, annealed to 0
    hidden: int = 40
    n_test: int = 500  # held-out tasks
    test_points: int = 100  # query points per held-out task
    max_steps: int = 10  # adaptation steps on the curves


def pretrain(learner: nn.Module, cfg: SinusoidConfig, g: torch.Generator, run) -> None:
    """The baseline: one regressor fit to points of all tasks at once (it learns their mean, ~0)."""
    opt = Adam(learner.parameters(), lr=cfg.meta_lr)
    for step in range(cfg.meta_steps):
        tasks = sample_tasks(cfg.meta_batch, cfg.k_train + cfg.n_query, g)
        # \min_\theta \mathbb{E}_{\mathcal{T}} \mathcal{L}_{\mathcal{T}}(\theta)
        loss = mse(learner(tasks.x.to(run.device)), tasks.y.to(run.device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 250 == 0:
            run.log(step + 1, pretrained_loss=loss.detach())


def meta_train(model: MAML, cfg: SinusoidConfig, g: torch.Generator, run, name: str) -> None:
    """Adam on the (first- or second-order) MAML objective, meta_batch tasks of K support points a step."""
    opt = Adam(model.parameters(), lr=cfg.meta_lr)
    for step in range(cfg.meta_steps):
        tasks = sample_tasks(cfg.meta_batch, cfg.k_train + cfg.n_query, g)
        x_s, y_s, x_q, y_q = (t.to(run.device) for t in tasks.split(cfg.k_train))
        loss = model.meta_loss(x_s, y_s, x_q, y_q)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 250 == 0:
            run.log(step + 1, **{f"{name}_loss": loss.detach()})


SHOTS = (5, 10)


@lab(
    "maml/sinusoid",
    card="maml",
    config=SinusoidConfig,
    scales={
        "quick": {"meta_steps": 20, "n_test": 40, "test_points": 20},
        "default": {},
        "full": {"meta_steps": 70000, "meta_lr": 1e-3},
    },
    goals=[Goal("maml_k10_mse_1", "<=", 1.0), Goal("maml_k10_vs_pretrained_1", "<=", 0.5)],
    claims=[
        Check(
            "maml-fast-adaptation",
            lambda m: m["maml_k5_vs_pretrained_1"] <= 0.5 and m["maml_k10_vs_pretrained_1"] <= 0.5,
            "after one gradient step (alpha {alpha}) on K=5 / K=10 points of {n_test} held-out sine waves, MAML's "
            "query MSE is {maml_k5_mse_1:.3f} / {maml_k10_mse_1:.3f} against {pretrained_k5_mse_1:.3f} / "
            "{pretrained_k10_mse_1:.3f} for a regressor pretrained on all tasks (ratios {maml_k5_vs_pretrained_1:.2f} / "
            "{maml_k10_vs_pretrained_1:.2f}); after 10 steps {maml_k10_mse_10:.3f} against "
            "{pretrained_k10_mse_10:.3f} (K=10); first-order MAML {fomaml_k10_mse_1:.3f} after one step (K=10), "
            "{meta_steps} meta-steps. Rule: MAML's one-step MSE at most half the pretrained model's for both K",
        ),
        Check(
            "reptile-alternative-meta-optimiser",
            lambda m: m["reptile_k10_mse_10"] <= 0.5 * m["pretrained_k10_mse_10"]
            and m["reptile_k5_mse_10"] <= 0.5 * m["pretrained_k5_mse_10"],
            "Reptile ({reptile_steps} plain SGD steps per task, no second derivatives) reaches query MSE "
            "{reptile_k5_mse_10:.3f} / {reptile_k10_mse_10:.3f} after 10 steps on K=5 / K=10 points (one step: "
            "{reptile_k5_mse_1:.3f} / {reptile_k10_mse_1:.3f}), against {pretrained_k5_mse_10:.3f} / "
            "{pretrained_k10_mse_10:.3f} for the pretrained regressor and {maml_k5_mse_10:.3f} / "
            "{maml_k10_mse_10:.3f} for MAML. Rule: Reptile's 10-step MSE at most half the pretrained model's for "
            "both K",
        ),
    ],
    budget_s=90,
    threads=1,
)
def sinusoid(run, cfg: SinusoidConfig) -> dict:
    """MAML, first-order MAML, Reptile and a pretrained regressor adapting to new sine waves."""
    from deepatlas.zoo.meta.reptile import Reptile, reptile_train

    if cfg.max_steps < 10:
        raise ValueError("max_steps must be at least 10: the metrics report the MSE after 10 steps")
    train_seed, test_seed = split_seeds(run.seed)
    test = sample_tasks(cfg.n_test, max(SHOTS) + cfg.test_points, torch.Generator().manual_seed(test_seed))
    test = type(test)(*(t.to(run.device) for t in (test.x, test.y, test.amplitude, test.phase)))

    def init() -> nn.Module:  # every method starts from the same weights
        return sinusoid_learner(cfg.hidden, torch.Generator().manual_seed(train_seed)).to(run.device)

    methods = {"maml": MAML(init(), cfg.alpha), "fomaml": MAML(init(), cfg.alpha, first_order=True),
               "reptile": Reptile(init(), cfg.reptile_alpha, cfg.reptile_steps), "pretrained": MAML(init(), cfg.alpha)}
    metrics: dict = {"alpha": cfg.alpha, "n_test": cfg.n_test, "meta_steps": cfg.meta_steps,
                     "reptile_steps": cfg.reptile_steps}
    curves: dict = {}
    for name, model in run.progress(methods.items(), total=len(methods), desc="methods"):
        g = torch.Generator().manual_seed(train_seed)  # the same training tasks for every method
        if name == "pretrained":
            pretrain(model.learner, cfg, g, run)
        elif name == "reptile":
            reptile_train(model, cfg.k_train + cfg.n_query, cfg.meta_steps, cfg.meta_batch, cfg.reptile_epsilon, g,
                          run)
        else:
            meta_train(model, cfg, g, run, name)
        for k in SHOTS:
            x_q, y_q = test.x[:, max(SHOTS):], test.y[:, max(SHOTS):]
            curve = adaptation_curve(model, test.x[:, :k], test.y[:, :k], x_q, y_q, cfg.max_steps, alpha=cfg.alpha)
            curves[name, k] = curve
            for step in (0, 1, 10):
                metrics[f"{name}_k{k}_mse_{step}"] = curve[step]
    for name in ("maml", "fomaml", "reptile"):
        for k in SHOTS:
            metrics[f"{name}_k{k}_vs_pretrained_1"] = metrics[f"{name}_k{k}_mse_1"] / metrics[f"pretrained_k{k}_mse_1"]
    _plot_sinusoid(run, cfg, curves, methods, test)
    return metrics


def _plot_sinusoid(run, cfg: SinusoidConfig, curves: dict, methods: dict, test) -> None:
    styles = {"maml": "o-", "fomaml": "s--", "reptile": "^-", "pretrained": "x:"}
    with run.figure("sinusoid", ncols=len(SHOTS) + 1, size=(4.5 * (len(SHOTS) + 1), 3.6)) as (fig, axes):
        for ax, k in zip(axes, SHOTS):
            for name, style in styles.items():
                ax.plot(curves[name, k], style, label=name)
            ax.axhline(1.0, color="grey", lw=1, ls="--")
            ax.set(xlabel="gradient steps at test", ylabel="query MSE", yscale="log",
                   title=f"K = {k}, {cfg.n_test} held-out waves")
            ax.legend(fontsize=8)
        ax, k = axes[-1], SHOTS[0]
        grid = torch.linspace(-5, 5, 200, device=test.x.device)[None, :, None]  # (1, 200, 1)
        x_s, y_s = test.x[:1, :k], test.y[:1, :k]
        truth = test.amplitude[0] * torch.sin(grid[0, :, 0] - test.phase[0])
        ax.plot(grid[0, :, 0].cpu(), truth.cpu(), "k", lw=2, label="task")
        ax.plot(x_s[0, :, 0].cpu(), y_s[0, :, 0].cpu(), "k^", label=f"{k} support points")
        for name in ("maml", "pretrained"):
            model = methods[name]
            params = inner_loop(model.learner, per_task(dict(model.learner.named_parameters()), 1), x_s, y_s,
                                cfg.alpha, 1, create_graph=False)
            with torch.no_grad():
                ax.plot(grid[0, :, 0].cpu(), model.predict(params, grid)[0, :, 0].cpu(), styles[name][1:],
                        label=f"{name}, 1 step")
        ax.set(xlabel="x", ylabel="y", title="one held-out task")
        ax.legend(fontsize=8)
