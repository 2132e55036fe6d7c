"""The from-scratch optimisers against torch.optim: the same parameter trajectory, step by step, in float64."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepatlas.optim import optimizers as mine

STEPS = 60

# (our class, torch's class, shared kwargs, per-group overrides for the second and third groups)
CASES = {
    "sgd": (mine.SGD, torch.optim.SGD, {"lr": 0.05}, [{"lr": 0.02}, {"weight_decay": 0.1}]),
    "momentum": (mine.SGD, torch.optim.SGD, {"lr": 0.02, "momentum": 0.9}, [{"momentum": 0.5}, {"weight_decay": 0.1}]),
    "dampening": (mine.SGD, torch.optim.SGD, {"lr": 0.02, "momentum": 0.9, "dampening": 0.3},
                  [{"lr": 0.05}, {"weight_decay": 0.05}]),
    "nesterov": (mine.SGD, torch.optim.SGD, {"lr": 0.02, "momentum": 0.9, "nesterov": True},
                 [{"momentum": 0.7}, {"weight_decay": 0.1}]),
    "adagrad": (mine.AdaGrad, torch.optim.Adagrad, {"lr": 0.1}, [{"lr": 0.05}, {"weight_decay": 0.1}]),
    "adagrad_decay": (mine.AdaGrad, torch.optim.Adagrad,
                      {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}, [{"eps": 1e-3}, {}]),
    "rmsprop": (mine.RMSProp, torch.optim.RMSprop, {"lr": 0.01}, [{"alpha": 0.9}, {"weight_decay": 0.1}]),
    "rmsprop_centered_momentum": (mine.RMSProp, torch.optim.RMSprop,
                                  {"lr": 0.005, "centered": True, "momentum": 0.9}, [{"centered": False}, {}]),
    "adam": (mine.Adam, torch.optim.Adam, {"lr": 0.01}, [{"betas": (0.8, 0.99)}, {"weight_decay": 0.1}]),
    "amsgrad": (mine.Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True}, [{"eps": 1e-4}, {"weight_decay": 0.1}]),
    "adamw": (mine.AdamW, torch.optim.AdamW, {"lr": 0.01}, [{"weight_decay": 0.5}, {"weight_decay": 0.0}]),
}


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2)).double()


def groups(model: nn.Module, overrides: list[dict]) -> list[dict]:
    """Three param groups: the first layer with the shared settings, the others with overrides."""
    layers = [model[0], model[2], model[4]]
    return [{"params": list(layers[0].parameters())}] + [
        {"params": list(layer.parameters()), **o} for layer, o in zip(layers[1:], overrides)
    ]


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)  # a new mini-batch every step
    x = torch.randn(16, 5, generator=g, dtype=torch.float64)
    return x, torch.sin(x[:, :2]) + 0.1 * torch.randn(16, 2, generator=g, dtype=torch.float64)


def trajectory(opt_cls, kwargs, overrides, steps=STEPS, scale=1.0) -> list[torch.Tensor]:
    model = make_model()
    opt = opt_cls(groups(model, overrides), **kwargs)
    path = []
    for step in range(steps):
        x, y = batch(step)
        loss = scale * ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        path.append(torch.cat([p.detach().ravel() for p in model.parameters()]).clone())
    return path


@pytest.mark.parametrize("name", CASES)
def test_trajectory_matches_torch(name):
    ours, theirs, kwargs, overrides = CASES[name]
    a = trajectory(ours, kwargs, overrides)
    b = trajectory(theirs, kwargs, overrides)
    moved = (a[-1] - trajectory(ours, {**kwargs, "lr": 0.0}, [{**o, "lr": 0.0} for o in overrides])[-1]).abs().max()
    assert moved > 1e-2, "the parameters must actually move for the comparison to mean anything"
    for step, (pa, pb) in enumerate(zip(a, b)):
        torch.testing.assert_close(pa, pb, rtol=1e-10, atol=1e-12, msg=lambda m: f"step {step}: {m}")


def test_adamw_differs_from_adam_with_l2():
    """Decoupled decay is a different method, not a renaming: the trajectories part ways."""
    a = trajectory(mine.AdamW, {"lr": 0.01, "weight_decay": 0.5}, [{}, {}], steps=20)
    b = trajectory(mine.Adam, {"lr": 0.01, "weight_decay": 0.5}, [{}, {}], steps=20)
    assert (a[-1] - b[-1]).abs().max() > 1e-3


def test_closure_and_state_dict_resume():
    """step(closure) returns the loss; a run saved and reloaded mid-way continues identically."""
    model = make_model()
    opt = mine.Adam(model.parameters(), lr=0.01, amsgrad=True)

    def closure():
        opt.zero_grad()
        x, y = batch(0)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(5):
        loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    for _ in range(5):
        opt.step(closure)
    after = [p.detach().clone() for p in model.parameters()]

    model.load_state_dict(saved_model)
    opt = mine.Adam(model.parameters(), lr=0.01, amsgrad=True)
    opt.load_state_dict(saved_opt)
    for _ in range(5):
        opt.step(closure)
    for p, q in zip(model.parameters(), after):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=0)


def test_params_without_grad_are_left_alone():
    model = make_model()
    frozen = model[0].weight.detach().clone()
    model[0].weight.requires_grad_(False)
    opt = mine.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = batch(0)
    ((model(x) - y) ** 2).mean().backward()
    opt.step()
    assert torch.equal(model[0].weight, frozen)


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(1e-3, 1e3), which=st.sampled_from(["adam", "rmsprop", "adagrad"]))
def test_adaptive_methods_ignore_gradient_scale_when_eps_is_zero(scale, which):
    """With eps = 0 the update g / sqrt(E[g^2]) is the same for c * g, for any c > 0."""
    cls = {"adam": mine.Adam, "rmsprop": mine.RMSProp, "adagrad": mine.AdaGrad}[which]
    kwargs = {"lr": 0.01, "eps": 0.0}
    a = trajectory(cls, kwargs, [{}, {}], steps=10)
    b = trajectory(cls, kwargs, [{}, {}], steps=10, scale=scale)
    torch.testing.assert_close(a[-1], b[-1], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("make, message", [
    (lambda p: mine.SGD(p, lr=-1.0), "learning rate"),
    (lambda p: mine.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: mine.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda p: mine.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: mine.SGD(p, lr=0.1, weight_decay=-1.0), "weight_decay"),
    (lambda p: mine.AdaGrad(p, lr_decay=-1.0), "lr_decay"),
    (lambda p: mine.RMSProp(p, alpha=1.5), "alpha"),
    (lambda p: mine.Adam(p, betas=(0.9, 1.0)), "betas"),
    (lambda p: mine.AdamW(p, eps=-1e-8), "eps"),
])
def test_bad_arguments_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make(make_model().parameters())


@pytest.mark.parametrize("name", ["nesterov", "adagrad", "rmsprop_centered_momentum", "amsgrad", "adamw"])
def test_tensor_lr_runs_a_sweep_in_one_go(name):
    """A (G, 1) rate on a (G, d) parameter: row i follows the run at rate lr[i] exactly."""
    cls, _, kwargs, _ = CASES[name]
    rates = torch.tensor([[0.001], [0.01], [0.03]], dtype=torch.float64)
    a = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)  # an ill-conditioned quadratic

    def descend(x, lr):
        opt = cls([x], **{**kwargs, "lr": lr})
        for _ in range(30):
            opt.zero_grad()
            (0.5 * (a * x**2).sum()).backward()
            opt.step()
        return x.detach()

    start = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    swept = descend(start.repeat(3, 1).requires_grad_(), rates)
    for row, lr in zip(swept, rates):
        torch.testing.assert_close(row, descend(start.clone().requires_grad_(), lr.item()), rtol=1e-12, atol=1e-14)
    assert (swept[0] - swept[2]).abs().max() > 1e-2
