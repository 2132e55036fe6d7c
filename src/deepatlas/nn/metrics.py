"""Evaluation metrics, written out from their definitions: classification, ranking, regression,
segmentation, detection, language and retrieval.

A metric reduces predictions and targets to a few counts or sums - the confusion matrix, the
true and false positives above each threshold, squared residuals, overlaps of regions, matched
n-grams, discounted gains - and divides them. Arguments follow scikit-learn's order, truth first
(`y_true, y_pred`), except perplexity, which takes `(logits, targets)` like cross-entropy. Counting
metrics return float64 tensors; regression, soft-mask and perplexity metrics keep the input's dtype
and are differentiable. Conventions are those of scikit-learn where it has the metric, stated in
each docstring where it does not.

Kent et al. 1955 (precision, recall); Hanley & McNeil, Radiology 1982 (AUC); Jaccard 1901 and
Dice, Ecology 1945 (overlap); Everingham et al., "The Pascal VOC Challenge", IJCV 2010 (mAP);
Papineni et al., "BLEU", ACL 2002; Lin, "ROUGE", ACL workshop 2004; Jarvelin & Kekalainen,
"Cumulated gain-based evaluation of IR techniques", TOIS 2002 (NDCG).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import torch

from deepatlas.nn.losses import log_softmax

AVERAGES = ("binary", "micro", "macro", "weighted", None)
MAPE_EPS = torch.finfo(torch.float64).eps  # scikit-learn's floor on |y| in MAPE's denominator


def _same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")


def _divide(num: torch.Tensor, den: torch.Tensor, zero_division: float) -> torch.Tensor:
    """num / den, with `zero_division` (0, 1 or nan) where den is 0, as scikit-learn does."""
    out = num / torch.where(den == 0, torch.ones_like(den), den)
    return torch.where(den == 0, torch.full_like(out, zero_division), out)


def _check_zero_division(zero_division: float) -> None:
    if not (zero_division in (0.0, 1.0) or math.isnan(zero_division)):
        raise ValueError(f"zero_division must be 0, 1 or nan, got {zero_division}")


# ---------------------------------------------------------------- classification

def _confusion(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The label set (sorted union of the labels seen, or 0..K-1) and the confusion matrix over it."""
    y_true, y_pred = torch.as_tensor(y_true), torch.as_tensor(y_pred)
    _same_shape(y_true, y_pred, "labels")
    if y_true.numel() == 0:
        raise ValueError("no samples: y_true and y_pred are empty")
    if y_true.is_floating_point() or y_pred.is_floating_point():
        raise ValueError("class labels must be integers (or bool); threshold scores first")
    y_true, y_pred = y_true.reshape(-1).long(), y_pred.reshape(-1).long()
    if num_classes is None:
        labels = torch.unique(torch.cat([y_true, y_pred]))  # sorted, as scikit-learn's unique_labels
    else:
        labels = torch.arange(num_classes, device=y_true.device)
        low, high = min(y_true.min(), y_pred.min()).item(), max(y_true.max(), y_pred.max()).item()
        if low < 0 or high >= num_classes:
            raise ValueError(f"labels must lie in 0..{num_classes - 1} for num_classes={num_classes}; "
                             f"found {low}..{high}")
    i, j, k = torch.searchsorted(labels, y_true), torch.searchsorted(labels, y_pred), len(labels)
    # C_{ij} = \#\{n : y_n = i,\ \hat y_n = j\}
    return labels, torch.bincount(i * k + j, minlength=k * k).reshape(k, k)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """C (K, K) with C[i, j] = number of samples of true class i predicted as class j.

    The classes are 0..num_classes-1, or by default the sorted labels that occur in either input."""
    return _confusion(y_true, y_pred, num_classes)[1]


def accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Share of correct predictions."""
    y_true, y_pred = torch.as_tensor(y_true), torch.as_tensor(y_pred)
    _same_shape(y_true, y_pred, "accuracy")
    if y_true.numel() == 0:
        raise ValueError("no samples: y_true and y_pred are empty")
    # \mathrm{acc} = \frac{1}{N}\sum_n \mathbb{1}[y_n = \hat y_n]
    return (y_true == y_pred).double().mean()


class PRF(NamedTuple):
    precision: torch.Tensor
    recall: torch.Tensor
    f1: torch.Tensor


def precision_recall_f1(y_true: torch.Tensor, y_pred: torch.Tensor, *, average: str | None = "binary",
                        pos_label: int = 1, num_classes: int | None = None, zero_division: float = 0.0) -> PRF:
    """Precision, recall and F1 from the per-class counts TP, FP and FN.

    average: "binary" (the class `pos_label` only; at most two labels), "micro" (pool the counts of
    all classes: equals accuracy for single-label data), "macro" (unweighted mean over classes),
    "weighted" (mean weighted by each class's true count), None (one value per class, shape (K,)).
    A ratio whose denominator is 0 (no predicted or no true members) takes `zero_division`; nan
    values are left out of the averages. The classes are as in `confusion_matrix`."""
    if average not in AVERAGES:
        raise ValueError(f"unknown average {average!r}; choose one of {AVERAGES}")
    _check_zero_division(zero_division)
    labels, c = _confusion(y_true, y_pred, num_classes)
    k, c = len(labels), c.double()
    tp, n_pred, n_true = c.diagonal(), c.sum(0), c.sum(1)  # (K,) each: TP, TP + FP, TP + FN
    if average == "binary":
        if k > 2:
            raise ValueError(f"average='binary' needs at most two classes, found {k}: {labels.tolist()}; "
                             "use average='micro', 'macro', 'weighted' or None")
        hit = labels == pos_label
        if k == 2 and not hit.any():
            raise ValueError(f"pos_label={pos_label} is not one of the labels {labels.tolist()}")
        tp, n_pred, n_true = (v[hit].sum(0, keepdim=True) for v in (tp, n_pred, n_true))  # (1,) or zeros if absent
    elif average == "micro":
        tp, n_pred, n_true = (v.sum(0, keepdim=True) for v in (tp, n_pred, n_true))  # (1,) pooled counts
    # P = \frac{TP}{TP + FP}, \quad R = \frac{TP}{TP + FN}
    precision = _divide(tp, n_pred, zero_division)
    recall = _divide(tp, n_true, zero_division)
    # F_1 = \frac{2PR}{P + R} = \frac{2\,TP}{2\,TP + FP + FN}
    f1 = _divide(2 * tp, n_pred + n_true, zero_division)
    if average in ("binary", "micro"):
        return PRF(precision[0], recall[0], f1[0])
    if average is None:
        return PRF(precision, recall, f1)
    weights = n_true if average == "weighted" else torch.ones_like(n_true)
    return PRF(*(_nan_average(v, weights) for v in (precision, recall, f1)))


def _nan_average(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean ignoring nan entries; plain mean where the remaining weights sum to 0."""
    keep = ~values.isnan()
    if not keep.any():
        return values.new_tensor(float("nan"))
    v, w = values[keep], weights[keep]
    return (v * w).sum() / w.sum() if w.sum() > 0 else v.mean()


# ---------------------------------------------------------------- scores: ROC and precision-recall

def _threshold_counts(y_true: torch.Tensor, y_score: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """False and true positives when everything scored >= t counts as positive, for each distinct
    score t from high to low. Tied scores enter together: a threshold cannot split them."""
    y_true, y_score = torch.as_tensor(y_true), torch.as_tensor(y_score)
    _same_shape(y_true, y_score, "y_true and y_score")
    if y_true.ndim != 1 or y_true.numel() == 0:
        raise ValueError(f"y_true and y_score must be non-empty 1-D tensors, got shape {tuple(y_true.shape)}")
    if not ((y_true == 0) | (y_true == 1)).all():
        raise ValueError("y_true must hold binary labels 0/1 (or bool)")
    order = torch.argsort(y_score, descending=True, stable=True)
    s, y = y_score[order], y_true[order].double()
    ends = torch.cat([torch.nonzero(s[1:] != s[:-1]).squeeze(1), s.new_tensor([len(s) - 1], dtype=torch.long)])
    tps = torch.cumsum(y, 0)[ends]  # (T,) positives at or above each distinct threshold
    fps = (ends + 1).double() - tps  # (T,)
    return fps, tps, s[ends]


def roc_curve(y_true: torch.Tensor, y_score: torch.Tensor, drop_intermediate: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fpr, tpr, thresholds) as scikit-learn's roc_curve: one point per distinct score, a first
    point (0, 0) at threshold +inf, and with `drop_intermediate` the collinear points removed
    (they do not change the curve or its area). Needs both classes in y_true."""
    fps, tps, thresholds = _threshold_counts(y_true, y_score)
    if tps[-1] == 0 or fps[-1] == 0:
        raise ValueError("the ROC curve needs at least one positive and one negative in y_true")
    if drop_intermediate and len(fps) > 2:
        # keep a point where the curve bends: a non-zero second difference in FP or TP
        bends = (torch.diff(fps, 2) != 0) | (torch.diff(tps, 2) != 0)
        keep = torch.cat([bends.new_ones(1), bends, bends.new_ones(1)])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    zero = fps.new_zeros(1)
    fps, tps = torch.cat([zero, fps]), torch.cat([zero, tps])
    thresholds = torch.cat([thresholds.new_tensor([float("inf")], dtype=torch.float64), thresholds.double()])
    # \mathrm{FPR} = \frac{FP}{FP + TN}, \quad \mathrm{TPR} = \frac{TP}{TP + FN}
    return fps / fps[-1], tps / tps[-1], thresholds


def auc(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Area under the piecewise-linear curve through the points (x, y), x monotonic (trapezoid rule)."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    _same_shape(x, y, "auc")
    if x.ndim != 1 or len(x) < 2:
        raise ValueError("auc needs at least two points on 1-D x and y")
    dx = torch.diff(x)
    if not ((dx >= 0).all() or (dx <= 0).all()):
        raise ValueError("auc needs x sorted (increasing or decreasing)")
    # A = \sum_i (x_{i+1} - x_i)\,\frac{y_{i+1} + y_i}{2}
    area = (dx * (y[1:] + y[:-1]) / 2).sum()
    return area if (dx >= 0).all() else -area


def roc_auc(y_true: torch.Tensor, y_score: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (the Mann-Whitney statistic over n+ n- pairs)."""
    fpr, tpr, _ = roc_curve(y_true, y_score)
    return auc(fpr, tpr)


def average_precision(y_true: torch.Tensor, y_score: torch.Tensor) -> torch.Tensor:
    """Area under the precision-recall step curve, as scikit-learn's average_precision_score:
    precision at each distinct threshold weighted by the recall it adds (no interpolation)."""
    fps, tps, _ = _threshold_counts(y_true, y_score)
    if tps[-1] == 0:
        raise ValueError("average precision needs at least one positive in y_true")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    # \mathrm{AP} = \sum_t (R_t - R_{t-1})\,P_t
    return (torch.diff(recall, prepend=recall.new_zeros(1)) * precision).sum()


# ---------------------------------------------------------------- regression

def rmse(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Root mean squared error over all elements; in the target's unit."""
    _same_shape(y_true, y_pred, "rmse")
    # \mathrm{RMSE} = \sqrt{\frac{1}{n}\sum_i (y_i - \hat y_i)^2}
    return ((y_true - y_pred) ** 2).mean().sqrt()


def mae(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements."""
    _same_shape(y_true, y_pred, "mae")
    # \mathrm{MAE} = \frac{1}{n}\sum_i |y_i - \hat y_i|
    return (y_true - y_pred).abs().mean()


def mape(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean absolute percentage error as a fraction (multiply by 100 for percent), as scikit-learn:
    |y| is floored at float64's machine epsilon, so a zero target gives a huge, finite value."""
    _same_shape(y_true, y_pred, "mape")
    # \mathrm{MAPE} = \frac{1}{n}\sum_i \frac{|y_i - \hat y_i|}{\max(|y_i|, \epsilon)}
    return ((y_true - y_pred).abs() / y_true.abs().clamp_min(MAPE_EPS)).mean()


def r2_score(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination over all elements (one output). Constant targets give 1 if the
    prediction is exact, else 0 (scikit-learn's force_finite). Below 0: worse than the mean."""
    _same_shape(y_true, y_pred, "r2_score")
    ss_res = ((y_true - y_pred) ** 2).sum()
    ss_tot = ((y_true - y_true.mean()) ** 2).sum()
    if ss_tot == 0:
        return (ss_res == 0).to(y_pred.dtype)
    # R^2 = 1 - \frac{\sum_i (y_i - \hat y_i)^2}{\sum_i (y_i - \bar y)^2}
    return 1 - ss_res / ss_tot


# ---------------------------------------------------------------- segmentation masks and boxes

def _overlaps(target: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """|X n Y|, |X| and |Y| for binary masks, or their soft versions for probabilities in [0, 1]."""
    _same_shape(target, pred, "masks")
    target, pred = (t if t.is_floating_point() else t.double() for t in (target, pred))  # binary masks count exactly
    return (target * pred).sum(), target.sum(), pred.sum()


def iou(target: torch.Tensor, pred: torch.Tensor, zero_division: float = float("nan")) -> torch.Tensor:
    """Intersection over union (Jaccard index) of two masks, binary or soft; both empty gives
    `zero_division`. Differentiable in soft masks."""
    inter, a, b = _overlaps(target, pred)
    # \mathrm{IoU} = \frac{|X \cap Y|}{|X| + |Y| - |X \cap Y|}
    return _divide(inter, a + b - inter, zero_division)


def dice(target: torch.Tensor, pred: torch.Tensor, zero_division: float = float("nan")) -> torch.Tensor:
    """Dice coefficient (F1 of the pixels) of two masks, binary or soft; 1 - dice is the Dice loss."""
    inter, a, b = _overlaps(target, pred)
    # \mathrm{Dice} = \frac{2|X \cap Y|}{|X| + |Y|}
    return _divide(2 * inter, a + b, zero_division)


def per_class_iou(target: torch.Tensor, pred: torch.Tensor, num_classes: int,
                  zero_division: float = float("nan")) -> torch.Tensor:
    """IoU of each class (K,) from label maps of any shape. A class absent from both maps gets
    `zero_division`, nan by default so that mIoU = per_class_iou(...).nanmean() skips it."""
    c = confusion_matrix(target, pred, num_classes).double()
    tp = c.diagonal()
    # \mathrm{IoU}_k = \frac{TP_k}{TP_k + FP_k + FN_k}
    return _divide(tp, c.sum(0) + c.sum(1) - tp, zero_division)


def per_class_dice(target: torch.Tensor, pred: torch.Tensor, num_classes: int,
                   zero_division: float = float("nan")) -> torch.Tensor:
    """Dice of each class (K,) from label maps; absent classes as in `per_class_iou`."""
    c = confusion_matrix(target, pred, num_classes).double()
    # \mathrm{Dice}_k = \frac{2\,TP_k}{2\,TP_k + FP_k + FN_k}
    return _divide(2 * c.diagonal(), c.sum(0) + c.sum(1), zero_division)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of boxes (N, 4) x (M, 4) -> (N, M); boxes as (x1, y1, x2, y2), x2 >= x1,
    y2 >= y1, in continuous coordinates (width x2 - x1, not VOC's x2 - x1 + 1 pixels)."""
    for b in (boxes1, boxes2):
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {tuple(b.shape)}")
        if (b[:, 2:] < b[:, :2]).any():
            raise ValueError("boxes must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1")
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])  # (N,)
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])  # (M,)
    lt = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2) top-left of the overlap
    rb = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2) bottom-right
    wh = (rb - lt).clamp_min(0)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    return inter / (area1[:, None] + area2[None, :] - inter)


# ---------------------------------------------------------------- detection: mAP

def interpolated_ap(recall: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """VOC all-point average precision: the area under the precision envelope
    p_interp(r) = max_{r' >= r} p(r'), for recall sorted increasing (VOC 2010 onwards)."""
    r = torch.cat([recall.new_zeros(1), recall, recall.new_ones(1)])
    p = torch.cat([precision.new_zeros(1), precision, precision.new_zeros(1)])
    # p_{\mathrm{interp}}(r) = \max_{\tilde r \ge r} p(\tilde r): a running maximum from the right
    p = torch.flip(torch.cummax(torch.flip(p, [0]), 0).values, [0])
    # \mathrm{AP} = \sum_i (r_{i+1} - r_i)\, p_{\mathrm{interp}}(r_{i+1})
    return ((r[1:] - r[:-1]) * p[1:]).sum()


def mean_average_precision(ground_truths: Sequence[dict], detections: Sequence[dict],
                           iou_threshold: float = 0.5) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Detection mAP at one IoU threshold, VOC style; returns (mAP, {class: AP}).

    Per image: ground_truths[i] = {"boxes": (M, 4), "labels": (M,)},
    detections[i] = {"boxes": (N, 4), "scores": (N,), "labels": (N,)}, boxes as in `box_iou`.
    For each class, detections from all images are ranked by score (stable for ties); each one
    takes the ground-truth box of its image and class that it overlaps most and is a true positive
    if that IoU is >= iou_threshold and the box is not yet taken, else a false positive (a
    duplicate). AP is `interpolated_ap` of the resulting curve. Classes without ground truth are
    left out of the mean; a class with ground truth but no detection has AP 0. Unlike the VOC
    devkit there are no "difficult" boxes, IoU >= (not >) the threshold counts, and widths have no
    +1. COCO's mAP@[.5:.95] is the mean of this over thresholds 0.5, 0.55, ..., 0.95, though
    COCO samples the envelope at 101 recall points instead of integrating it."""
    if len(ground_truths) != len(detections):
        raise ValueError(f"{len(ground_truths)} images of ground truth but {len(detections)} of detections")
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
    classes = sorted({int(c) for gt in ground_truths for c in gt["labels"]})
    ap = {}
    for c in classes:
        gt_boxes = [gt["boxes"][gt["labels"] == c] for gt in ground_truths]  # per image (M_i, 4)
        n_gt = sum(len(b) for b in gt_boxes)
        found = [torch.zeros(len(b), dtype=torch.bool) for b in gt_boxes]
        ranked = [(float(s), i, box) for i, det in enumerate(detections)
                  for s, box in zip(det["scores"][det["labels"] == c], det["boxes"][det["labels"] == c])]
        ranked.sort(key=lambda item: -item[0])  # stable: ties keep image order
        hits = torch.zeros(len(ranked), dtype=torch.float64)  # (D,) 1 for a true positive
        for d, (_, i, box) in enumerate(ranked):
            if len(gt_boxes[i]) == 0:
                continue
            overlap, best = box_iou(box[None], gt_boxes[i])[0].max(0)
            if overlap >= iou_threshold and not found[i][best]:
                found[i][best] = True
                hits[d] = 1.0
        tp = torch.cumsum(hits, 0)
        fp = torch.cumsum(1 - hits, 0)
        ap[c] = interpolated_ap(tp / n_gt, tp / (tp + fp)) if len(ranked) else torch.zeros((), dtype=torch.float64)
    if not ap:
        raise ValueError("no ground-truth boxes in any image: mAP is undefined")
    # \mathrm{mAP} = \frac{1}{K}\sum_k \mathrm{AP}_k
    return torch.stack(list(ap.values())).mean(), ap


# ---------------------------------------------------------------- language: perplexity, BLEU, ROUGE-L

def perplexity_from_nll(nll: torch.Tensor) -> torch.Tensor:
    """exp of the mean negative log-likelihood (natural log) per token."""
    if nll.numel() == 0:
        raise ValueError("perplexity needs at least one token")
    # \mathrm{PPL} = \exp\big(-\frac{1}{N}\sum_i \log p(x_i \mid x_{<i})\big)
    return nll.mean().exp()


def perplexity(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Perplexity of next-token logits (..., V) for targets (...); targets equal to ignore_index
    (padding) are left out. Uniform logits give exactly V."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be targets {tuple(targets.shape)} plus a vocabulary axis")
    keep = torch.ones_like(targets, dtype=torch.bool) if ignore_index is None else targets != ignore_index
    safe = torch.where(keep, targets, torch.zeros_like(targets))  # any valid index; masked out below
    if ((safe < 0) | (safe >= logits.shape[-1])).any():
        raise ValueError(f"targets must lie in 0..{logits.shape[-1] - 1} (or equal ignore_index)")
    # -\log p(x_i) = -\log\mathrm{softmax}(z)_{x_i}
    nll = -log_softmax(logits, -1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return perplexity_from_nll(nll[keep])


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


class Bleu(NamedTuple):
    score: float
    matches: list[int]  # clipped n-gram matches, n = 1..max_n, summed over the corpus
    totals: list[int]  # n-grams in the hypotheses
    brevity_penalty: float
    hyp_len: int
    ref_len: int


SMOOTHING = (None, "epsilon", "add-one")


def corpus_bleu(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]],
                max_n: int = 4, smoothing: str | None = None, epsilon: float = 0.1) -> Bleu:
    """Corpus BLEU (Papineni et al. 2002) of tokenised hypotheses, each with one or more tokenised
    references: clipped n-gram counts and lengths are summed over the corpus before dividing.

    Each hypothesis n-gram counts at most as often as it occurs in one reference; the reference
    length of a sentence is the one closest to its hypothesis (the shorter on a tie). Without
    smoothing any n with no match gives 0. smoothing="epsilon" adds `epsilon` to a zero match
    count, "add-one" adds 1 to matches and totals for n >= 2 (Lin & Och 2004): NLTK's method1 and
    method2. Where every hypothesis is shorter than n, that order's total is taken as 1."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets but {len(hypotheses)} hypotheses")
    if smoothing not in SMOOTHING:
        raise ValueError(f"unknown smoothing {smoothing!r}; choose one of {SMOOTHING}")
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            best = Counter()  # max count of each n-gram over the references
            for ref in refs:
                best |= _ngrams(ref, n)
            # \mathrm{Count}_{clip}(g) = \min(\mathrm{Count}(g), \max_{ref} \mathrm{Count}_{ref}(g))
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n - 1] += sum(counts.values())
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
    # \mathrm{BP} = 1 \text{ if } c > r \text{ else } e^{1 - r/c}
    bp = 1.0 if hyp_len > ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    log_p = []
    for n, (m, t) in enumerate(zip(matches, totals), start=1):
        t = max(t, 1)
        if smoothing == "add-one" and n >= 2:
            m, t = m + 1, t + 1
        elif smoothing == "epsilon" and m == 0:
            m = epsilon
        if m == 0:
            return Bleu(0.0, matches, totals, bp, hyp_len, ref_len)
        log_p.append(math.log(m / t))
    # \mathrm{BLEU} = \mathrm{BP}\cdot\exp\big(\sum_{n=1}^{N} \tfrac{1}{N}\log p_n\big)
    return Bleu(bp * math.exp(math.fsum(log_p) / max_n), matches, totals, bp, hyp_len, ref_len)


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence (not necessarily contiguous), by dynamic programming."""
    row = [0] * (len(b) + 1)  # row[j] = LCS of the prefix of a seen so far and b[:j]
    for x in a:
        diag = 0  # LCS of the previous a-prefix and b[:j-1]
        for j, y in enumerate(b, start=1):
            # L_{i,j} = L_{i-1,j-1} + 1 \text{ if } a_i = b_j \text{ else } \max(L_{i-1,j}, L_{i,j-1})
            diag, row[j] = row[j], diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


class Rouge(NamedTuple):
    precision: float
    recall: float
    f: float


def rouge_l(reference: Sequence[str], hypothesis: Sequence[str], beta: float = 1.0) -> Rouge:
    """ROUGE-L of one tokenised hypothesis against one reference (Lin 2004): LCS-based precision,
    recall and F-measure; beta = 1 (the harmonic mean) as in the rouge-score package."""
    lcs = lcs_length(reference, hypothesis)
    if lcs == 0:
        return Rouge(0.0, 0.0, 0.0)
    # R_{lcs} = \frac{LCS}{|ref|}, \quad P_{lcs} = \frac{LCS}{|hyp|}
    r, p = lcs / len(reference), lcs / len(hypothesis)
    # F_{lcs} = \frac{(1 + \beta^2) R P}{R + \beta^2 P}
    return Rouge(p, r, (1 + beta**2) * r * p / (r + beta**2 * p))


# ---------------------------------------------------------------- ranking: NDCG

GAINS = ("exponential", "linear")


def ndcg(relevance: torch.Tensor, scores: torch.Tensor, k: int | None = None,
         gain: str = "exponential", reduction: str = "mean") -> torch.Tensor:
    """NDCG@k averaged over queries ("mean") or per query (Q,) ("none"); relevance and scores
    (Q, L) or (L,), relevance >= 0 (graded).

    gain="exponential" uses 2^rel - 1 (Burges et al. 2005, the common form, which rewards the most
    relevant items more); "linear" uses rel itself, as scikit-learn's ndcg_score. Items with tied
    scores share the mean gain of their tie group (scikit-learn's default, McSherry & Najork 2008),
    so the order among ties does not matter. A query with no relevant item scores 0."""
    relevance, scores = torch.atleast_2d(torch.as_tensor(relevance)), torch.atleast_2d(torch.as_tensor(scores))
    _same_shape(relevance, scores, "ndcg")
    if relevance.ndim != 2 or relevance.shape[1] == 0:
        raise ValueError(f"relevance must be (Q, L) or (L,) with L >= 1, got {tuple(relevance.shape)}")
    if gain not in GAINS:
        raise ValueError(f"unknown gain {gain!r}; choose one of {GAINS}")
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"unknown reduction {reduction!r}; choose 'mean' or 'none'")
    if (relevance < 0).any():
        raise ValueError("relevance must be >= 0")
    relevance = relevance.double()
    n_items = relevance.shape[1]
    g = 2**relevance - 1 if gain == "exponential" else relevance  # (Q, L)
    ranks = torch.arange(n_items, dtype=torch.float64, device=g.device)
    # \text{discount}_i = \frac{1}{\log_2(i + 1)} for ranks i = 1..k, 0 below rank k
    discount = torch.where(ranks < (k or n_items), 1 / torch.log2(ranks + 2), 0.0)  # (L,)
    s, order = torch.sort(scores, dim=1, descending=True, stable=True)
    g_ranked = g.gather(1, order)  # (Q, L) gains in the predicted order
    group = torch.cumsum(torch.cat([torch.ones_like(s[:, :1], dtype=torch.long),
                                    (s[:, 1:] != s[:, :-1]).long()], 1), 1) - 1  # (Q, L) tie-group id
    total = torch.zeros_like(g_ranked).scatter_add(1, group, g_ranked)
    size = torch.zeros_like(g_ranked).scatter_add(1, group, torch.ones_like(g_ranked))
    g_ranked = (total / size.clamp_min(1)).gather(1, group)  # each item: the mean gain of its tie group
    # \mathrm{DCG@}k = \sum_{i=1}^{k} \frac{g_i}{\log_2(i + 1)}
    dcg = (g_ranked * discount).sum(1)
    idcg = (torch.sort(g, dim=1, descending=True).values * discount).sum(1)
    # \mathrm{NDCG@}k = \mathrm{DCG@}k / \mathrm{IDCG@}k
    per_query = torch.where(idcg > 0, dcg / torch.where(idcg > 0, idcg, 1.0), 0.0)  # (Q,)
    return per_query.mean() if reduction == "mean" else per_query


# --- sample quality of generative models ---------------------------------------------------------------
# Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter, "GANs Trained by a Two Time-Scale Update Rule Converge
# to a Local Nash Equilibrium", NeurIPS 2017 (the Frechet distance of features); Rabin, Peyre, Delon & Bernot,
# "Wasserstein Barycenter and its Application to Texture Mixing", SSVM 2011 (sliced Wasserstein); Gretton,
# Borgwardt, Rasch, Scholkopf & Smola, "A Kernel Two-Sample Test", JMLR 2012 (MMD); Srivastava, Valkov, Russell,
# Gutmann & Sutton, "VEEGAN", NeurIPS 2017 (modes covered and high-quality samples on a ring of Gaussians).

def _points(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two (N, D) point sets with the same D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each point set needs at least 2 points")
    return a.detach().double(), b.detach().double()


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Frechet distance between Gaussians fitted to two feature sets (N, D) and (M, D): the FID formula.

    The matrix square root comes from symmetric eigendecompositions, so it stays real and exact up to
    rounding: tr((S_a S_b)^{1/2}) = tr((S_a^{1/2} S_b S_a^{1/2})^{1/2}).
    """
    a, b = _points(a, b)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)  # (D, D)
    w, v = torch.linalg.eigh(s_a)
    s_a_half = v @ torch.diag(w.clamp_min(0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(s_a_half @ s_b @ s_a_half).clamp_min(0).sqrt().sum()
    # d^2 = \lVert \mu_a - \mu_b \rVert^2 + \mathrm{tr}(\Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2})
    return (mu_a - mu_b).square().sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * cross


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_projections: int = 256, p: int = 2,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Sliced p-Wasserstein distance between point sets (N, D) and (M, D), averaged over random directions.

    On each direction the 1-D distance compares quantiles: sorted projections when N = M, otherwise both
    empirical quantile functions read at the midpoints of max(N, M) equal bins.
    """
    a, b = _points(a, b)
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    theta = torch.randn(a.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)  # (D, P) unit directions
    pa, pb = (a @ theta).sort(0).values, (b @ theta).sort(0).values  # (N, P), (M, P)
    if len(pa) != len(pb):
        n = max(len(pa), len(pb))
        levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n

        def quantiles(sorted_proj: torch.Tensor) -> torch.Tensor:
            return sorted_proj[(levels * len(sorted_proj)).long().clamp_max(len(sorted_proj) - 1)]
        pa, pb = quantiles(pa), quantiles(pb)
    # SW_p(a, b) = \big( \mathbb{E}_\theta\, W_p^p(\theta^\top a, \theta^\top b) \big)^{1/p}
    return (pa - pb).abs().pow(p).mean().pow(1 / p)


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, bandwidths: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0)) -> torch.Tensor:
    """Unbiased squared maximum mean discrepancy with a sum of Gaussian kernels k(x, y) = exp(-|x-y|^2 / (2 h^2))."""
    a, b = _points(a, b)

    def k(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(x, y).square()
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    n, m = len(a), len(b)
    k_aa, k_bb = k(a, a), k(b, b)
    # \widehat{\mathrm{MMD}}^2 = \frac{\sum_{i \ne j} k(a_i, a_j)}{n(n-1)} + \frac{\sum_{i \ne j} k(b_i, b_j)}{m(m-1)}
    #                          - \frac{2}{nm} \sum_{i,j} k(a_i, b_j)
    return ((k_aa.sum() - k_aa.diagonal().sum()) / (n * (n - 1)) + (k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
            - 2 * k(a, b).mean())


def mode_coverage(samples: torch.Tensor, modes: torch.Tensor, radius: float,
                  min_share: float | None = None) -> tuple[int, float]:
    """How many modes a sampler covers and the share of its samples that are of high quality.

    A sample is of high quality when it lies within `radius` of its nearest mode; a mode is covered
    when at least `min_share` of all samples (default 1 / (4K) for K modes) are high-quality samples
    nearest to it. Returns (modes covered, high-quality share).
    """
    samples, modes = _points(samples, modes) if len(modes) > 1 else (samples.double(), modes.double())
    d = torch.cdist(samples, modes)  # (N, K)
    nearest_d, nearest = d.min(1)
    good = nearest_d <= radius
    counts = torch.bincount(nearest[good], minlength=len(modes))  # (K,)
    threshold = (1 / (4 * len(modes)) if min_share is None else min_share) * len(samples)
    return int((counts >= threshold).sum()), good.double().mean().item()
