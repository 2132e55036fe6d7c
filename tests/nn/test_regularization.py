"""Penalties, weight decay, dropout, early stopping and augmentation against torch, scikit-learn and statistics."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepatlas.nn.regularization import (
    Dropout, EarlyStopping, augment, dropout, gaussian_noise, l1_penalty, l2_penalty, random_flip, random_shift,
    soft_threshold,
)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def params(seed=0):
    return [randn(4, 3, seed=seed).requires_grad_(True), randn(3, seed=seed + 1).requires_grad_(True)]


def test_penalties_and_gradients_match_torch_norms():
    ps = params()
    (g1,) = torch.autograd.grad(l1_penalty(ps), ps[:1], retain_graph=True)
    ref = sum(torch.linalg.vector_norm(p, 1) for p in ps)
    torch.testing.assert_close(l1_penalty(ps), ref)
    torch.testing.assert_close(g1, torch.sign(ps[0].detach()))
    ref2 = sum(torch.linalg.vector_norm(p, 2) ** 2 for p in ps)
    torch.testing.assert_close(l2_penalty(ps), ref2, rtol=1e-13, atol=0)
    (g2,) = torch.autograd.grad(l2_penalty(ps), ps[:1])
    torch.testing.assert_close(g2, 2 * ps[0].detach())


def regression(seed=0):
    x, w_true = randn(64, 5, seed=seed), randn(5, 1, seed=seed + 1)
    return x, x @ w_true + 0.1 * randn(64, 1, seed=seed + 2)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_l2_penalty_under_sgd_is_weight_decay(momentum):
    """SGD on L + lam ||w||^2 gives the same trajectory as torch.optim.SGD(weight_decay=2 lam) on L."""
    x, y = regression()
    lam, lr = 0.05, 0.05
    ours, ref = nn.Linear(5, 1).double(), nn.Linear(5, 1).double()
    ref.load_state_dict(ours.state_dict())
    opt_ours = torch.optim.SGD(ours.parameters(), lr=lr, momentum=momentum)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=lr, momentum=momentum, weight_decay=2 * lam)
    for _ in range(60):
        opt_ours.zero_grad(), opt_ref.zero_grad()
        (F.mse_loss(ours(x), y) + lam * l2_penalty(ours.parameters())).backward()
        F.mse_loss(ref(x), y).backward()
        opt_ours.step(), opt_ref.step()
        for a, b in zip(ours.parameters(), ref.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_l2_penalty_under_adam_is_coupled_decay_not_adamw():
    """With Adam the penalty equals Adam's own (coupled) weight_decay, and AdamW's decoupled decay differs."""
    x, y = regression(3)
    lam = 0.05
    nets = [nn.Linear(5, 1).double() for _ in range(3)]
    for net in nets[1:]:
        net.load_state_dict(nets[0].state_dict())
    opts = [torch.optim.Adam(nets[0].parameters(), lr=0.01),
            torch.optim.Adam(nets[1].parameters(), lr=0.01, weight_decay=2 * lam),
            torch.optim.AdamW(nets[2].parameters(), lr=0.01, weight_decay=2 * lam)]
    for _ in range(100):
        for opt in opts:
            opt.zero_grad()
        (F.mse_loss(nets[0](x), y) + lam * l2_penalty(nets[0].parameters())).backward()
        F.mse_loss(nets[1](x), y).backward()
        F.mse_loss(nets[2](x), y).backward()
        for opt in opts:
            opt.step()
    torch.testing.assert_close(nets[0].weight, nets[1].weight, rtol=1e-10, atol=1e-12)
    assert (nets[0].weight - nets[2].weight).abs().max() > 1e-3


def test_soft_threshold_is_softshrink():
    u = torch.cat([randn(200), torch.tensor([0.0, 0.3, -0.3, 0.3000001], dtype=torch.float64)])
    torch.testing.assert_close(soft_threshold(u, 0.3), F.softshrink(u, 0.3), rtol=0, atol=0)


def test_proximal_gradient_finds_the_lasso_solution_with_exact_zeros():
    from sklearn.linear_model import Lasso

    x = randn(80, 20, seed=4)
    w_true = torch.zeros(20, dtype=torch.float64)
    w_true[:3] = torch.tensor([2.0, -3.0, 1.5])
    y = x @ w_true + 0.5 * randn(80, seed=5)
    alpha = 0.2  # sklearn's objective: 1/(2n) ||y - Xw||^2 + alpha ||w||_1
    lr = 1 / torch.linalg.matrix_norm(x.T @ x / 80, 2).item()  # 1 / Lipschitz constant of the smooth part
    w = torch.zeros(20, dtype=torch.float64)
    for _ in range(300):  # ISTA converges linearly here: 1e-13 after 100 steps
        w = soft_threshold(w - lr * x.T @ (x @ w - y) / 80, lr * alpha)
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(x.numpy(), y.numpy()).coef_
    torch.testing.assert_close(w, torch.from_numpy(ref), rtol=0, atol=1e-8)
    assert (w == 0).sum() >= 10 and (w[:3] != 0).all()


def test_dropout_is_identity_in_eval_and_at_p0_and_zero_at_p1():
    x = randn(5, 7)
    layer = Dropout(0.5).eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    assert torch.equal(F.dropout(x, 1.0), torch.zeros_like(x))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_survivors_are_scaled_like_torch_and_the_drop_rate_is_p(p):
    x = randn(200, 100).abs() + 0.1  # no zeros, so a zero in the output means a dropped unit
    y = dropout(x, p, generator=torch.Generator().manual_seed(1))
    y_ref = F.dropout(x, p, training=True)
    for out in (y, y_ref):
        kept = out != 0
        torch.testing.assert_close(out[kept], x[kept] / (1 - p), rtol=1e-15, atol=0)
    n = x.numel()  # the dropped fraction is Binomial(n, p) / n: within 5 standard errors
    assert abs((y == 0).double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_inverted_dropout_preserves_the_expectation(p):
    x = randn(50)
    draws = 20_000
    y = dropout(x.expand(draws, 50), p, generator=torch.Generator().manual_seed(2))  # (draws, 50)
    se = x.abs() * math.sqrt(p / (1 - p)) / math.sqrt(draws)  # std of one draw is |x| sqrt(p / (1 - p))
    z = (y.mean(0) - x) / se
    assert z.abs().max() < 5
    assert (z**2).mean() < 2  # about 1 for a correct mean; a biased mean would blow this up


def test_dropout_mask_applies_to_gradients():
    x = (randn(30, 20).abs() + 0.1).requires_grad_(True)
    upstream = randn(30, 20, seed=3)
    y = Dropout(0.3, generator=torch.Generator().manual_seed(4))(x)
    (grad,) = torch.autograd.grad(y, x, upstream)
    mask = (y != 0).double()
    torch.testing.assert_close(grad, upstream * mask / 0.7, rtol=1e-15, atol=0)
    torch.testing.assert_close(y, x.detach() * mask / 0.7, rtol=1e-15, atol=0)


def test_dropout_is_deterministic_given_a_generator():
    x = randn(10, 10)
    a = dropout(x, 0.5, generator=torch.Generator().manual_seed(9))
    b = dropout(x, 0.5, generator=torch.Generator().manual_seed(9))
    c = dropout(x, 0.5, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_bad_probabilities(p):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Dropout(p)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dropout(randn(3), p)


def test_early_stopping_stops_after_patience_and_restores_the_best_state():
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(patience=3)
    losses = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0]  # the best is at index 2; index 5 is the third without improvement
    stopped_at = None
    for t, loss in enumerate(losses):
        with torch.no_grad():
            model.weight.fill_(t)
        if stopper.step(loss, model):
            stopped_at = t
            break
    assert stopped_at == 5 and stopper.best == 3.0 and stopper.best_step == 2
    stopper.restore(model)
    assert (model.weight == 2).all()


def test_early_stopping_min_delta_ignores_tiny_improvements():
    model = nn.Linear(1, 1)
    stopper = EarlyStopping(patience=2, min_delta=0.1)
    assert [stopper.step(v, model) for v in (1.0, 0.95, 0.92)] == [False, False, True]
    assert stopper.best == 1.0


def test_early_stopping_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    with pytest.raises(RuntimeError, match="no loss"):
        EarlyStopping().restore(nn.Linear(1, 1))


def shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img (C, H, W) moved down by dy and right by dx, zeros coming in: the reference for random_shift."""
    out = torch.zeros_like(img)
    h, w = img.shape[1:]
    rows_out, cols_out = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    rows_in, cols_in = slice(max(-dy, 0), h - max(dy, 0)), slice(max(-dx, 0), w - max(dx, 0))
    out[:, rows_out, cols_out] = img[:, rows_in, cols_in]
    return out


@settings(max_examples=20, deadline=None)
@given(padding=st.integers(0, 3), seed=st.integers(0, 1000))
def test_random_shift_moves_each_image_within_the_padding(padding, seed):
    x = randn(12, 2, 6, 5, seed=seed) + 3  # no zeros inside, so the shift is identifiable
    y = random_shift(x, padding, torch.Generator().manual_seed(seed))
    for img, out in zip(x, y):
        matches = [(dy, dx) for dy in range(-padding, padding + 1) for dx in range(-padding, padding + 1)
                   if torch.equal(out, shifted(img, dy, dx))]
        assert len(matches) == 1


def test_random_shift_uses_every_offset_and_is_deterministic():
    x = torch.zeros(400, 1, 5, 5)
    x[:, :, 2, 2] = 1.0  # a single lit pixel shows the offset
    y = random_shift(x, 1, torch.Generator().manual_seed(0))
    assert len({tuple(torch.nonzero(img[0])[0].tolist()) for img in y}) == 9
    assert torch.equal(y, random_shift(x, 1, torch.Generator().manual_seed(0)))
    assert torch.equal(random_shift(x, 0), x)


def test_random_flip_mirrors_about_half_and_p_extremes():
    x = randn(400, 1, 3, 4)
    y = random_flip(x, 0.5, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(a, b.flip(-1)) for a, b in zip(y, x)])
    same = torch.tensor([torch.equal(a, b) for a, b in zip(y, x)])
    assert (flipped ^ same).all() and 150 < flipped.sum() < 250
    assert torch.equal(random_flip(x, 0.0), x) and torch.equal(random_flip(x, 1.0), x.flip(-1))


def test_gaussian_noise_statistics():
    x = torch.full((100_000,), 2.0, dtype=torch.float64)
    y = gaussian_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert abs(y.mean().item() - 2.0) < 5 * 0.5 / math.sqrt(x.numel())
    assert abs(y.std().item() - 0.5) < 0.01


def test_augment_flips_only_when_asked():
    x = torch.zeros(50, 1, 4, 4)
    x[..., 0] = 1.0  # the left column lit: a flip would light the right one
    y = augment(x, torch.Generator().manual_seed(0), shift=0, noise_std=0.0)
    assert torch.equal(y, x)
    y = augment(x, torch.Generator().manual_seed(0), flip=True)
    assert 0 < y[..., 3].amax(dim=(1, 2)).sum() < 50


@pytest.mark.parametrize("call, match", [
    (lambda: random_shift(randn(3, 4), 1), "N, C, H, W"),
    (lambda: random_shift(randn(1, 1, 3, 4), -1), "padding"),
    (lambda: random_flip(randn(1, 1, 3, 4), 2.0), "p in"),
    (lambda: gaussian_noise(randn(3), -1.0), "std"),
])
def test_augmentation_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
