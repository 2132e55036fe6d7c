"""Loss functions, written out from their equations: regression, classification and metric learning.

A loss turns a prediction and a target into one number whose gradient trains the model.
Regression losses differ in how they weigh large residuals (squared, absolute, Huber's mix);
classification losses are computed from logits with the log-sum-exp trick, so that logits
of +-1000 give finite values and gradients; metric-learning losses act on distances
between embeddings. Every function takes `reduction`: "mean", "sum" or "none".

Legendre 1805 (least squares); Huber, "Robust Estimation of a Location Parameter", 1964;
Shannon 1948 (cross-entropy); Cortes & Vapnik, "Support-Vector Networks", 1995;
Weston & Watkins, "Support Vector Machines for Multi-Class Pattern Recognition", 1999;
Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (arXiv 1708.02002);
Kullback & Leibler, "On Information and Sufficiency", 1951;
Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning an Invariant Mapping", CVPR 2006;
Schroff et al., "FaceNet", CVPR 2015 (arXiv 1503.03832).
"""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")


def _same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    # broadcasting (N, 1) against (N,) would silently compare every pair: refuse it
    if a.shape != b.shape:
        raise ValueError(f"{what}: prediction shape {tuple(a.shape)} differs from target shape {tuple(b.shape)}")


def _positive(name: str, value: float, strict: bool = True) -> None:
    if value < 0 or (strict and value == 0):
        raise ValueError(f"{name} must be {'> 0' if strict else '>= 0'}, got {value}")


# ---------------------------------------------------------------- the log-sum-exp trick

def logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """log sum_j exp(x_j) without overflow: shift by the maximum first."""
    m = x.amax(dim, keepdim=True).detach()  # a constant shift: the gradient is exactly softmax(x)
    # \log\sum_j e^{x_j} = m + \log\sum_j e^{x_j - m}, \quad m = \max_j x_j
    return (m + (x - m).exp().sum(dim, keepdim=True).log()).squeeze(dim)


def log_softmax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # \log \mathrm{softmax}(z)_c = z_c - \log\sum_j e^{z_j}
    return z - logsumexp(z, dim).unsqueeze(dim)


def softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e^z) = -log(1 - sigmoid(z)), as the log-sum-exp of the two logits (0, z)."""
    # \log(1 + e^{z}) = \log(e^0 + e^z)
    return logsumexp(torch.stack([torch.zeros_like(z), z], dim=-1), dim=-1)


# ---------------------------------------------------------------- regression

def mse_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error; any shape, pred and target alike."""
    _same_shape(pred, target, "mse_loss")
    # \mathcal{L} = (y - \hat y)^2
    return _reduce((pred - target) ** 2, reduction)


def mae_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error; at zero error autograd takes the subgradient 0."""
    _same_shape(pred, target, "mae_loss")
    # \mathcal{L} = |y - \hat y|
    return _reduce((pred - target).abs(), reduction)


def huber_loss(pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0,
               reduction: str = "mean") -> torch.Tensor:
    """Quadratic for residuals up to `delta`, linear beyond: the gradient is capped at +-delta."""
    _same_shape(pred, target, "huber_loss")
    _positive("delta", delta)
    r = (pred - target).abs()
    # \mathcal{L}_\delta = \tfrac12 r^2 \text{ if } r \le \delta, \text{ else } \delta (r - \tfrac12 \delta)
    loss = torch.where(r <= delta, 0.5 * r ** 2, delta * (r - 0.5 * delta))
    return _reduce(loss, reduction)


# ---------------------------------------------------------------- classification

def binary_cross_entropy_with_logits(z: torch.Tensor, y: torch.Tensor, pos_weight: float | torch.Tensor | None = None,
                                     reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy of sigmoid(z) against targets y in [0, 1]; `pos_weight` scales the positive term."""
    _same_shape(z, y, "binary_cross_entropy_with_logits")
    # -\log\sigma(z) = \log(1 + e^{-z}) = \mathrm{softplus}(z) - z, \quad -\log(1 - \sigma(z)) = \mathrm{softplus}(z)
    sp = softplus(z)
    w = 1.0 if pos_weight is None else pos_weight
    # \mathcal{L} = -[\,w_+ y \log\sigma(z) + (1 - y)\log(1 - \sigma(z))\,]
    loss = w * y * (sp - z) + (1 - y) * sp
    return _reduce(loss, reduction)


def cross_entropy(z: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                  label_smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Categorical cross-entropy of softmax(z), z (N, C), against class indices (N,) or probabilities (N, C).

    `weight` (C,) weighs each class; with index targets "mean" divides by the summed weights of
    the targets, as torch does. `label_smoothing` eps mixes the target with the uniform distribution.
    """
    if z.dim() != 2:
        raise ValueError(f"cross_entropy expects logits (N, C), got shape {tuple(z.shape)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    n, c = z.shape
    index_target = not target.is_floating_point()
    if index_target:
        if target.shape != (n,):
            raise ValueError(f"class-index target must have shape ({n},), got {tuple(target.shape)}")
        q = torch.zeros_like(z).scatter_(1, target[:, None], 1.0)  # (N, C) one-hot
    else:
        _same_shape(z, target, "cross_entropy")
        q = target
    # q \leftarrow (1 - \epsilon)\, q + \epsilon / C
    q = (1 - label_smoothing) * q + label_smoothing / c
    w = torch.ones(c, dtype=z.dtype, device=z.device) if weight is None else weight  # (C,)
    # \mathcal{L}_i = -\sum_c w_c\, q_{ic} \log \mathrm{softmax}(z_i)_c
    loss = -(w * q * log_softmax(z, dim=1)).sum(1)  # (N,)
    if reduction == "mean" and index_target and weight is not None:
        return loss.sum() / w[target].sum()
    return _reduce(loss, reduction)


def hinge_loss(score: torch.Tensor, y: torch.Tensor, margin: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Binary hinge loss of a raw score against labels y in {-1, +1}: zero once y * score >= margin."""
    _same_shape(score, y, "hinge_loss")
    _positive("margin", margin, strict=False)
    # \mathcal{L} = \max(0,\ m - y\,\hat y)
    return _reduce((margin - y * score).clamp_min(0), reduction)


def multi_margin_loss(s: torch.Tensor, target: torch.Tensor, margin: float = 1.0, p: int = 1,
                      weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Multi-class hinge (Weston & Watkins): every wrong class should score `margin` below the right one.

    s (N, C) raw scores, target (N,) class indices; the sum over wrong classes is divided by C, as torch does.
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    _positive("margin", margin, strict=False)
    n, c = s.shape
    s_y = s.gather(1, target[:, None])  # (N, 1) score of the true class
    # \mathcal{L}_i = \frac{1}{C}\sum_{j \ne y_i} \max(0,\ m - s_{y_i} + s_j)^p
    violation = (margin - s_y + s).clamp_min(0) ** p  # (N, C)
    wrong = torch.ones_like(s, dtype=torch.bool).scatter_(1, target[:, None], False)
    loss = (violation * wrong).sum(1) / c  # (N,)
    if weight is not None:
        loss = weight[target] * loss
    return _reduce(loss, reduction)


def binary_focal_loss_with_logits(z: torch.Tensor, y: torch.Tensor, gamma: float = 2.0, alpha: float | None = None,
                                  reduction: str = "mean") -> torch.Tensor:
    """Focal loss for binary targets y in [0, 1]: cross-entropy scaled by (1 - p_t)^gamma.

    `alpha` weighs positives by alpha and negatives by 1 - alpha (RetinaNet used alpha = 0.25,
    gamma = 2); gamma = 0 and alpha = None give binary cross-entropy.
    """
    _same_shape(z, y, "binary_focal_loss_with_logits")
    _positive("gamma", gamma, strict=False)
    ce = binary_cross_entropy_with_logits(z, y, reduction="none")
    sp = softplus(z)
    p = torch.exp(z - sp)  # sigmoid(z), from logs so that it cannot overflow
    # p_t = p\,y + (1 - p)(1 - y)
    p_t = p * y + (1 - p) * (1 - y)
    # \mathrm{FL} = -\alpha_t (1 - p_t)^\gamma \log p_t
    loss = (1 - p_t) ** gamma * ce
    if alpha is not None:
        # \alpha_t = \alpha\, y + (1 - \alpha)(1 - y)
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return _reduce(loss, reduction)


def focal_loss(z: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: torch.Tensor | None = None,
               reduction: str = "mean") -> torch.Tensor:
    """Multi-class focal loss of softmax(z), z (N, C), against class indices (N,); `alpha` (C,) weighs classes."""
    _positive("gamma", gamma, strict=False)
    log_p_t = log_softmax(z, dim=1).gather(1, target[:, None]).squeeze(1)  # (N,) log-probability of the true class
    # \mathrm{FL} = -\alpha_{y} (1 - p_t)^\gamma \log p_t
    loss = -(1 - log_p_t.exp()) ** gamma * log_p_t
    if alpha is not None:
        loss = alpha[target] * loss
    return _reduce(loss, reduction)


def kl_divergence(log_q: torch.Tensor, p: torch.Tensor, log_target: bool = False,
                  reduction: str = "batchmean") -> torch.Tensor:
    """D_KL(p || q) from the model's log-probabilities log q and the target p (or log p with `log_target`).

    As torch.nn.functional.kl_div: "batchmean" sums over everything and divides by the batch size
    (the true KL per sample when rows are distributions); "mean" divides by the number of elements.
    """
    _same_shape(log_q, p, "kl_divergence")
    if log_target:
        # p_c \log\frac{p_c}{q_c} = e^{\log p_c} (\log p_c - \log q_c)
        loss = p.exp() * (p - log_q)
    else:
        # p_c \log\frac{p_c}{q_c} = p_c \log p_c - p_c \log q_c, \quad 0 \log 0 = 0
        loss = torch.xlogy(p, p) - p * log_q
    if reduction == "batchmean":
        return loss.sum() / log_q.shape[0]
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of batchmean, {', '.join(REDUCTIONS)}")
    return _reduce(loss, reduction)


# ---------------------------------------------------------------- metric learning

def contrastive_loss(x1: torch.Tensor, x2: torch.Tensor, y: torch.Tensor, margin: float = 1.0,
                     reduction: str = "mean") -> torch.Tensor:
    """Hadsell-Chopra-LeCun pairwise loss on embeddings x1, x2 (N, D); y (N,) is 0 for similar, 1 for dissimilar.

    Similar pairs are pulled together by D^2; dissimilar pairs are pushed apart only while closer than `margin`.
    """
    _same_shape(x1, x2, "contrastive_loss")
    _positive("margin", margin)
    d = torch.linalg.vector_norm(x1 - x2, dim=-1)  # (N,) Euclidean distance
    # \mathcal{L} = \tfrac12 (1 - Y) D^2 + \tfrac12 Y \max(0,\ m - D)^2
    loss = 0.5 * (1 - y) * d ** 2 + 0.5 * y * (margin - d).clamp_min(0) ** 2
    return _reduce(loss, reduction)


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, p: float = 2.0, eps: float = 1e-6) -> torch.Tensor:
    """||a - b + eps||_p over the last dimension; eps keeps the gradient finite when a == b (as torch does)."""
    # D(a, b) = \big(\sum_k |a_k - b_k + \epsilon|^p\big)^{1/p}
    return torch.linalg.vector_norm(a - b + eps, ord=p, dim=-1)


def triplet_margin_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 1.0,
                        p: float = 2.0, eps: float = 1e-6, swap: bool = False, reduction: str = "mean") -> torch.Tensor:
    """Triplet loss on embeddings (N, D): the anchor should be `margin` closer to the positive than to the negative.

    `swap` (Balntas et al. 2016) uses the harder of d(a, n) and d(p, n) as the negative distance.
    """
    if not anchor.shape == positive.shape == negative.shape:
        raise ValueError(f"triplet_margin_loss: anchor, positive and negative shapes differ: {tuple(anchor.shape)}, "
                         f"{tuple(positive.shape)}, {tuple(negative.shape)}")
    _positive("margin", margin, strict=False)
    _positive("p", p)
    d_ap = pairwise_distance(anchor, positive, p, eps)  # (N,)
    d_an = pairwise_distance(anchor, negative, p, eps)  # (N,)
    if swap:
        d_an = torch.minimum(d_an, pairwise_distance(positive, negative, p, eps))
    # \mathcal{L} = \max(0,\ D(a, p) - D(a, n) + \alpha)
    return _reduce((d_ap - d_an + margin).clamp_min(0), reduction)
