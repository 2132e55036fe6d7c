"""Losses: values and gradients against torch.nn.functional in float64, stability at extreme logits, properties."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.nn import losses as L

REDUCTIONS = ["mean", "sum", "none"]


pytestmark = pytest.mark.usefixtures("float64")  # tests/nn/conftest.py


def leaf(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()


def assert_twins(ours, ref, inputs):
    """Same value and same gradient with respect to every input, for an arbitrary upstream gradient."""
    a, b = ours(), ref()
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    upstream = torch.randn(a.shape, generator=torch.Generator().manual_seed(1), dtype=a.dtype)
    ga = torch.autograd.grad(a, inputs, upstream)
    gb = torch.autograd.grad(b, inputs, upstream)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- regression

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_mae_match_torch(reduction):
    pred, target = leaf(7, 3), leaf(7, 3, seed=1)
    assert_twins(lambda: L.mse_loss(pred, target, reduction), lambda: F.mse_loss(pred, target, reduction=reduction),
                 (pred, target))
    assert_twins(lambda: L.mae_loss(pred, target, reduction), lambda: F.l1_loss(pred, target, reduction=reduction),
                 (pred, target))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber_matches_torch(reduction, delta):
    pred, target = leaf(50, scale=2.0), leaf(50, seed=1)  # residuals on both sides of delta
    assert_twins(lambda: L.huber_loss(pred, target, delta, reduction),
                 lambda: F.huber_loss(pred, target, reduction=reduction, delta=delta), (pred, target))


def test_huber_is_mse_inside_and_capped_outside():
    r = torch.linspace(-5, 5, 101, requires_grad=True)
    loss = L.huber_loss(r, torch.zeros_like(r), delta=1.0, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), r)
    inside = r.abs() <= 1
    torch.testing.assert_close(loss[inside], 0.5 * r[inside] ** 2)
    torch.testing.assert_close(grad, r.detach().clamp(-1, 1))  # gradient clipped at +-delta


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"shape \(4, 1\) differs from target shape \(4,\)"):
        L.mse_loss(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="unknown reduction 'avg'"):
        L.mae_loss(torch.zeros(4), torch.zeros(4), reduction="avg")
    with pytest.raises(ValueError, match="delta must be > 0"):
        L.huber_loss(torch.zeros(4), torch.zeros(4), delta=0.0)


# ---------------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_matches_torch(reduction):
    z = leaf(40, scale=3.0)
    y = torch.rand(40, generator=torch.Generator().manual_seed(2)).requires_grad_()  # soft targets too
    assert_twins(lambda: L.binary_cross_entropy_with_logits(z, y, reduction=reduction),
                 lambda: F.binary_cross_entropy_with_logits(z, y, reduction=reduction), (z, y))
    pw = torch.tensor(4.0)
    assert_twins(lambda: L.binary_cross_entropy_with_logits(z, y, pos_weight=pw, reduction=reduction),
                 lambda: F.binary_cross_entropy_with_logits(z, y, pos_weight=pw, reduction=reduction), (z, y))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_torch(reduction, smoothing, weighted):
    z = leaf(9, 5, scale=2.0)
    target = torch.tensor([0, 1, 2, 3, 4, 4, 2, 0, 1])
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5]) if weighted else None
    assert_twins(lambda: L.cross_entropy(z, target, w, smoothing, reduction),
                 lambda: F.cross_entropy(z, target, w, reduction=reduction, label_smoothing=smoothing), (z,))
    probs = torch.softmax(leaf(9, 5, seed=3), 1).detach().requires_grad_()  # probability targets
    assert_twins(lambda: L.cross_entropy(z, probs, w, smoothing, reduction),
                 lambda: F.cross_entropy(z, probs, w, reduction=reduction, label_smoothing=smoothing), (z, probs))


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    z, target = leaf(6, 4), torch.tensor([0, 3, 1, 1, 2, 0])
    (grad,) = torch.autograd.grad(L.cross_entropy(z, target, reduction="sum"), z)
    torch.testing.assert_close(grad, torch.softmax(z, 1) - F.one_hot(target, 4))


def test_logits_of_a_thousand_stay_finite():
    z = torch.tensor([1000.0, -1000.0, 1000.0, -1000.0, 0.0], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    focal_at_zero = lambda a, b: L.binary_focal_loss_with_logits(a, b, gamma=0.0)  # noqa: E731
    for ours in [L.binary_cross_entropy_with_logits, focal_at_zero]:
        assert_twins(lambda: ours(z, y), lambda: F.binary_cross_entropy_with_logits(z, y), (z,))
    assert L.binary_cross_entropy_with_logits(z, y, reduction="none")[2].item() == 1000.0  # confidently wrong
    assert L.binary_focal_loss_with_logits(z, y, reduction="none")[:4].tolist() == [0.0, 0.0, 1000.0, 1000.0]
    zc = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]], requires_grad=True)
    tc = torch.tensor([1, 2])
    assert_twins(lambda: L.cross_entropy(zc, tc, reduction="none"),
                 lambda: F.cross_entropy(zc, tc, reduction="none"), (zc,))
    for fl, x in [(L.focal_loss(zc, tc), zc), (L.binary_focal_loss_with_logits(z, y, alpha=0.25), z)]:
        (g,) = torch.autograd.grad(fl, x)
        assert torch.isfinite(fl) and torch.isfinite(g).all()


def test_cross_entropy_bad_arguments():
    with pytest.raises(ValueError, match=r"logits \(N, C\)"):
        L.cross_entropy(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        L.cross_entropy(torch.zeros(3, 2), torch.tensor([0, 1, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"class-index target must have shape \(3,\)"):
        L.cross_entropy(torch.zeros(3, 2), torch.tensor([[0], [1], [1]]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=2, max_size=6), st.floats(-1e3, 1e3))
def test_logsumexp_is_shift_invariant(xs, c):
    x = torch.tensor(xs)
    torch.testing.assert_close(L.logsumexp(x + c, 0), L.logsumexp(x, 0) + c, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(L.logsumexp(x, 0), torch.logsumexp(x, 0))


# ---------------------------------------------------------------- hinge

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_binary_hinge_is_twice_two_class_multi_margin(reduction, margin):
    # with scores (0, s): multi_margin = max(0, m - y s) / 2, so the binary hinge is twice it
    s = leaf(30, scale=2.0)
    y = torch.where(torch.arange(30) % 3 == 0, 1.0, -1.0)
    two_class = lambda: torch.stack([torch.zeros_like(s), s], 1)  # noqa: E731
    assert_twins(lambda: L.hinge_loss(s, y, margin, reduction),
                 lambda: 2 * F.multi_margin_loss(two_class(), ((y + 1) / 2).long(), margin=margin, reduction=reduction),
                 (s,))


def test_binary_hinge_matches_sklearn():
    from sklearn.metrics import hinge_loss as sk_hinge

    s, y = torch.randn(100), torch.where(torch.rand(100) > 0.5, 1.0, -1.0)
    assert L.hinge_loss(s, y).item() == pytest.approx(sk_hinge(y.numpy(), s.numpy()), rel=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_matches_torch(reduction, p, weighted):
    s, target = leaf(12, 4), torch.tensor([0, 1, 2, 3] * 3)
    w = torch.tensor([1.0, 0.5, 2.0, 3.0]) if weighted else None
    assert_twins(lambda: L.multi_margin_loss(s, target, 0.7, p, w, reduction),
                 lambda: F.multi_margin_loss(s, target, p=p, margin=0.7, weight=w, reduction=reduction), (s,))


def test_hinge_gives_no_gradient_beyond_the_margin():
    s = torch.tensor([2.0, 1.5, 0.5, -1.0], requires_grad=True)
    y = torch.ones(4)
    (g,) = torch.autograd.grad(L.hinge_loss(s, y, reduction="sum"), s)
    assert g.tolist() == [0.0, 0.0, -1.0, -1.0]


# ---------------------------------------------------------------- focal

def focal_reference_binary(z, y, gamma, alpha):
    """The RetinaNet definition, written plainly with probabilities (fine away from extreme logits)."""
    p = torch.sigmoid(z)
    p_t = torch.where(y == 1, p, 1 - p)
    alpha_t = 1.0 if alpha is None else torch.where(y == 1, alpha, 1 - alpha)
    return -alpha_t * (1 - p_t) ** gamma * torch.log(p_t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma,alpha", [(2.0, None), (2.0, 0.25), (0.5, 0.75), (5.0, None)])
def test_binary_focal_matches_reference(reduction, gamma, alpha):
    z = leaf(64, scale=3.0)
    y = (torch.arange(64) % 4 == 0).double()
    ref = focal_reference_binary(z, y, gamma, alpha)
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    assert_twins(lambda: L.binary_focal_loss_with_logits(z, y, gamma, alpha, reduction), lambda: ref.clone(), (z,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_at_gamma_zero_is_cross_entropy(reduction):
    z, y = leaf(32, scale=3.0), (torch.arange(32) % 3 == 0).double()
    assert_twins(lambda: L.binary_focal_loss_with_logits(z, y, gamma=0.0, reduction=reduction),
                 lambda: F.binary_cross_entropy_with_logits(z, y, reduction=reduction), (z,))
    zc, t = leaf(10, 4), torch.tensor([0, 1, 2, 3, 3, 2, 1, 0, 0, 1])
    assert_twins(lambda: L.focal_loss(zc, t, gamma=0.0, reduction=reduction),
                 lambda: F.cross_entropy(zc, t, reduction=reduction), (zc,))


@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_multiclass_focal_matches_reference(gamma):
    zc, t = leaf(10, 4, scale=2.0), torch.tensor([0, 1, 2, 3, 3, 2, 1, 0, 0, 1])
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4])
    p_t = torch.softmax(zc, 1)[torch.arange(10), t]
    assert_twins(lambda: L.focal_loss(zc, t, gamma, alpha),
                 lambda: (-alpha[t] * (1 - p_t) ** gamma * torch.log(p_t)).mean(), (zc,))


def test_focal_down_weights_easy_examples():
    z, y = torch.tensor([4.0, 0.0]), torch.ones(2)  # an easy and a hard positive
    ratio_ce = L.binary_cross_entropy_with_logits(z, y, reduction="none")
    ratio_fl = L.binary_focal_loss_with_logits(z, y, gamma=2.0, reduction="none")
    assert (ratio_fl / ratio_ce)[0] < 1e-3 and (ratio_fl / ratio_ce)[1] == pytest.approx(0.25)


# ---------------------------------------------------------------- KL divergence

@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("reduction", ["batchmean", "mean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_matches_torch(reduction, log_target):
    log_q = torch.log_softmax(leaf(5, 6), 1).detach().requires_grad_()
    p = torch.softmax(leaf(5, 6, seed=4), 1)
    target = (p.log() if log_target else p).detach().requires_grad_()
    assert_twins(lambda: L.kl_divergence(log_q, target, log_target, reduction),
                 lambda: F.kl_div(log_q, target, reduction=reduction, log_target=log_target), (log_q, target))


def test_kl_handles_zero_probabilities_and_bad_reduction():
    log_q = torch.log_softmax(torch.randn(3, 4), 1)
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.25] * 4])
    torch.testing.assert_close(L.kl_divergence(log_q, p), F.kl_div(log_q, p, reduction="batchmean"))
    with pytest.raises(ValueError, match="choose one of batchmean"):
        L.kl_divergence(log_q, p, reduction="avg")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=4, max_size=4), st.lists(st.floats(-10, 10), min_size=4, max_size=4))
def test_kl_is_nonnegative_zero_on_itself_and_cross_entropy_minus_entropy(a, b):
    log_p, log_q = L.log_softmax(torch.tensor([a]), 1), L.log_softmax(torch.tensor([b]), 1)
    p = log_p.exp()
    kl = L.kl_divergence(log_q, p)
    assert kl.item() >= -1e-12
    assert abs(L.kl_divergence(log_p, p).item()) < 1e-12
    # D_KL(p || q) = H(p, q) - H(p)
    torch.testing.assert_close(kl, L.cross_entropy(torch.tensor([b]), p) - L.cross_entropy(torch.tensor([a]), p))


# ---------------------------------------------------------------- metric learning

def contrastive_reference(x1, x2, y, margin):
    d = F.pairwise_distance(x1, x2, eps=0.0)
    return 0.5 * (1 - y) * d ** 2 + 0.5 * y * torch.clamp(margin - d, min=0) ** 2


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_contrastive_matches_hadsell_formula(reduction):
    x1, x2 = leaf(20, 3), leaf(20, 3, seed=1)
    y = (torch.arange(20) % 2).double()
    ref = contrastive_reference(x1, x2, y, margin=2.0)
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    assert_twins(lambda: L.contrastive_loss(x1, x2, y, 2.0, reduction), lambda: ref.clone(), (x1, x2))


def test_contrastive_dissimilar_term_is_hinge_embedding_of_squared_gap():
    # torch's hinge_embedding_loss on the distances gives max(0, m - D) for y = -1: square it by hand
    x1, x2 = leaf(10, 2), leaf(10, 2, seed=1)
    d = F.pairwise_distance(x1, x2, eps=0.0)
    twin = 0.5 * F.hinge_embedding_loss(d, -torch.ones(10), margin=1.5, reduction="none") ** 2
    torch.testing.assert_close(L.contrastive_loss(x1, x2, torch.ones(10), 1.5, "none"), twin)


def test_contrastive_gradcheck_and_zero_distance():
    x1, x2 = leaf(4, 3), leaf(4, 3, seed=1)
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert torch.autograd.gradcheck(lambda a, b: L.contrastive_loss(a, b, y, 3.0), (x1, x2))
    same = torch.ones(2, 3, requires_grad=True)
    (g,) = torch.autograd.grad(L.contrastive_loss(same, same.detach(), torch.tensor([0.0, 1.0])), same)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,swap", [(2.0, False), (1.0, False), (3.0, True)])
def test_triplet_matches_torch(reduction, p, swap):
    a, pos, neg = leaf(16, 5), leaf(16, 5, seed=1), leaf(16, 5, seed=2)
    assert_twins(lambda: L.triplet_margin_loss(a, pos, neg, margin=1.5, p=p, swap=swap, reduction=reduction),
                 lambda: F.triplet_margin_loss(a, pos, neg, margin=1.5, p=p, swap=swap, reduction=reduction),
                 (a, pos, neg))


def test_metric_losses_refuse_bad_arguments():
    with pytest.raises(ValueError, match="margin must be > 0"):
        L.contrastive_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2), margin=0.0)
    with pytest.raises(ValueError, match="shapes differ"):
        L.triplet_margin_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        L.multi_margin_loss(torch.zeros(2, 3), torch.tensor([0, 1]), p=3)
