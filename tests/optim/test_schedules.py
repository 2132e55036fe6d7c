"""The schedules against torch.optim.lr_scheduler: the same rates and the same trajectories in float64."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as ref

from deepatlas.optim import schedules
from deepatlas.optim.optimizers import SGD
from tests.optim.test_optimizers import batch, make_model

STEPS = 60


def warmup_cosine_ref(opt):
    """torch's warm-up + cosine: LinearLR for 10 steps, then cosine over the remaining 50."""
    return ref.SequentialLR(opt, [ref.LinearLR(opt, start_factor=0.01, total_iters=10),
                                  ref.CosineAnnealingLR(opt, T_max=50, eta_min=1e-4)], milestones=[10])


CASES = {  # name: (ours, torch's); 60 steps: past the end of the cosine and of the warm-up
    "step": (lambda o: schedules.StepLR(o, step_size=7, gamma=0.5), lambda o: ref.StepLR(o, step_size=7, gamma=0.5)),
    "exponential": (lambda o: schedules.ExponentialLR(o, gamma=0.95), lambda o: ref.ExponentialLR(o, gamma=0.95)),
    "cosine": (lambda o: schedules.CosineAnnealingLR(o, T_max=25, eta_min=1e-3),
               lambda o: ref.CosineAnnealingLR(o, T_max=25, eta_min=1e-3)),
    "warmup": (lambda o: schedules.LinearWarmup(o, warmup_steps=15, start_factor=0.1),
               lambda o: ref.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=15)),
    "warmup_cosine": (lambda o: schedules.WarmupCosine(o, warmup_steps=10, total_steps=60, start_factor=0.01,
                                                       eta_min=1e-4), warmup_cosine_ref),
}


def run(opt_cls, make_schedule):
    """SGD with momentum on two param groups (different base rates) under a schedule."""
    model = make_model()
    opt = opt_cls([{"params": model[0].parameters()},
                   {"params": list(model[2].parameters()) + list(model[4].parameters()), "lr": 0.02}],
                  lr=0.05, momentum=0.9)
    sched = make_schedule(opt)
    rates, path = [], []
    for step in range(STEPS):
        rates.append([g["lr"] for g in opt.param_groups])
        x, y = batch(step)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        sched.step()
        path.append(torch.cat([p.detach().ravel() for p in model.parameters()]).clone())
    return torch.tensor(rates, dtype=torch.float64), path


@pytest.mark.parametrize("name", CASES)
def test_rates_and_trajectory_match_torch(name):
    ours, theirs = CASES[name]
    rates_a, path_a = run(SGD, ours)
    rates_b, path_b = run(torch.optim.SGD, theirs)
    assert rates_a.std(0).min() > 0, "the rate must actually change"
    torch.testing.assert_close(rates_a, rates_b, rtol=1e-12, atol=1e-15)
    for step, (pa, pb) in enumerate(zip(path_a, path_b)):
        torch.testing.assert_close(pa, pb, rtol=1e-10, atol=1e-12, msg=lambda m: f"step {step}: {m}")


def test_warmup_cosine_shape():
    opt = SGD(make_model().parameters(), lr=1.0)
    sched = schedules.WarmupCosine(opt, warmup_steps=10, total_steps=110, start_factor=0.0)
    rates = [sched.get_last_lr()[0]] + [(sched.step(), sched.get_last_lr()[0])[1] for _ in range(120)]
    assert rates[0] == 0.0 and rates[5] == pytest.approx(0.5) and rates[10] == 1.0
    assert rates[60] == pytest.approx(0.5) and rates[110] == pytest.approx(0.0, abs=1e-15)
    assert all(a <= b for a, b in zip(rates[:10], rates[1:11]))  # rises during warm-up
    assert all(a >= b for a, b in zip(rates[10:110], rates[11:111]))  # then only falls
    assert rates[120] == rates[110]  # and stays at eta_min past the end


PLATEAU_SETTINGS = [
    {"mode": "min", "factor": 0.5, "patience": 2, "threshold": 1e-2},
    {"mode": "min", "factor": 0.3, "patience": 0, "threshold": 0.1, "threshold_mode": "abs", "min_lr": 1e-3},
    {"mode": "max", "factor": 0.5, "patience": 1, "threshold": 1e-3, "cooldown": 2},
    {"mode": "max", "factor": 0.1, "patience": 3, "threshold": 0.05, "threshold_mode": "abs", "cooldown": 1},
]


def plateau_rates(make_opt, make_sched, metrics):
    opt = make_opt([{"params": [torch.zeros(1)]}, {"params": [torch.zeros(1)], "lr": 0.3}], lr=1.0)
    sched = make_sched(opt)
    rates = []
    for m in metrics:
        sched.step(m)
        rates.append([g["lr"] for g in opt.param_groups])
    return rates


@settings(max_examples=40, deadline=None)
@given(metrics=st.lists(st.sampled_from([1.0, 0.99, 0.95, 0.9, 1.1, 0.5, 0.49, 2.0]), min_size=1, max_size=40),
       which=st.integers(0, len(PLATEAU_SETTINGS) - 1))
def test_reduce_on_plateau_matches_torch(metrics, which):
    kw = PLATEAU_SETTINGS[which]
    ours = plateau_rates(SGD, lambda o: schedules.ReduceLROnPlateau(o, **kw), metrics)
    theirs = plateau_rates(torch.optim.SGD, lambda o: ref.ReduceLROnPlateau(o, **kw), metrics)
    assert sum(ours, []) == pytest.approx(sum(theirs, []), rel=1e-12)


def test_reduce_on_plateau_cuts_after_patience():
    opt = SGD([torch.zeros(1)], lr=1.0)
    sched = schedules.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    for m in [3.0, 2.0, 2.0, 2.0]:  # two checks without improvement are tolerated
        sched.step(m)
    assert sched.get_last_lr() == [1.0]
    sched.step(2.0)  # the third is not
    assert sched.get_last_lr() == [0.5]


@pytest.mark.parametrize("make, message", [
    (lambda o: schedules.StepLR(o, step_size=0), "step_size"),
    (lambda o: schedules.ExponentialLR(o, gamma=0.0), "gamma"),
    (lambda o: schedules.CosineAnnealingLR(o, T_max=0), "T_max"),
    (lambda o: schedules.LinearWarmup(o, warmup_steps=10, start_factor=1.5), "start_factor"),
    (lambda o: schedules.WarmupCosine(o, warmup_steps=10, total_steps=10), "total_steps"),
    (lambda o: schedules.ReduceLROnPlateau(o, mode="lowest"), "mode"),
    (lambda o: schedules.ReduceLROnPlateau(o, factor=1.0), "factor"),
    (lambda o: schedules.ReduceLROnPlateau(o, threshold_mode="relative"), "threshold_mode"),
])
def test_bad_arguments_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make(SGD([torch.zeros(1)], lr=0.1))
