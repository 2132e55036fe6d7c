"""Metrics: values against scikit-learn in float64 (NLTK's BLEU where installed), gradients against
torch, hand-worked examples written out, and properties (AUC as a pairwise probability, Dice from
IoU, box IoU as a pixel count, LCS by brute force)."""

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from deepatlas.nn import metrics as M

NAN = float("nan")


def close(ours, ref, tol=1e-12):
    ours = ours.detach().double() if isinstance(ours, torch.Tensor) else ours
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64),
                               rtol=tol, atol=tol, equal_nan=True)


def labels(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, k, (n,), generator=g), torch.randint(0, k, (n,), generator=g)


# ---------------------------------------------------------------- classification

@pytest.mark.parametrize("seed", range(4))
def test_confusion_matrix_and_accuracy_match_sklearn(seed):
    y, p = labels(200, 5, seed)
    close(M.confusion_matrix(y, p), skm.confusion_matrix(y, p))
    close(M.confusion_matrix(y, p, num_classes=7), skm.confusion_matrix(y, p, labels=range(7)))
    close(M.accuracy(y, p), skm.accuracy_score(y, p))


label_pairs = st.integers(1, 25).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 3), min_size=n, max_size=n), st.lists(st.integers(0, 3), min_size=n, max_size=n)))


@settings(max_examples=40, deadline=None)
@given(pair=label_pairs, zero_division=st.sampled_from([0.0, 1.0, NAN]), fixed=st.booleans())
def test_precision_recall_f1_match_sklearn(pair, zero_division, fixed):
    """Random small label sets hit every zero-division case: classes never predicted, never present."""
    y, p = torch.tensor(pair[0]), torch.tensor(pair[1])
    kw = {"labels": list(range(4))} if fixed else {}
    for average in ("micro", "macro", "weighted", None):
        ours = M.precision_recall_f1(y, p, average=average, num_classes=4 if fixed else None,
                                     zero_division=zero_division)
        ref = skm.precision_recall_fscore_support(y, p, average=average, zero_division=zero_division, **kw)
        for a, b in zip(ours, ref[:3]):
            close(a, b)


@settings(max_examples=40, deadline=None)
@given(pair=st.integers(1, 25).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n), st.lists(st.integers(0, 1), min_size=n, max_size=n))),
    pos_label=st.sampled_from([0, 1]), zero_division=st.sampled_from([0.0, 1.0, NAN]))
def test_binary_precision_recall_f1_match_sklearn(pair, pos_label, zero_division):
    y, p = torch.tensor(pair[0]), torch.tensor(pair[1])
    ours = M.precision_recall_f1(y, p, pos_label=pos_label, zero_division=zero_division)
    ref = skm.precision_recall_fscore_support(y, p, average="binary", pos_label=pos_label,
                                              zero_division=zero_division)
    for a, b in zip(ours, ref[:3]):
        close(a, b)


def test_micro_average_is_accuracy():
    y, p = labels(300, 6, 9)
    prf = M.precision_recall_f1(y, p, average="micro")
    for value in prf:
        close(value, M.accuracy(y, p))


def test_classification_errors():
    y, p = labels(20, 3, 0)
    with pytest.raises(ValueError, match="binary.*three|at most two classes"):
        M.precision_recall_f1(y, p)
    with pytest.raises(ValueError, match="unknown average"):
        M.precision_recall_f1(y, p, average="mean")
    with pytest.raises(ValueError, match="zero_division"):
        M.precision_recall_f1(y, p, average="macro", zero_division=0.5)
    with pytest.raises(ValueError, match="pos_label=1"):
        M.precision_recall_f1(torch.tensor([0, 2]), torch.tensor([2, 0]))
    with pytest.raises(ValueError, match="integers"):
        M.confusion_matrix(y.double(), p)
    with pytest.raises(ValueError, match="0..1"):
        M.confusion_matrix(y, p, num_classes=2)
    with pytest.raises(ValueError, match="differ"):
        M.accuracy(y, p[:5])


# ---------------------------------------------------------------- ROC, AUC, average precision

scored = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=40).filter(
    lambda rows: len({r[0] for r in rows}) == 2)


@settings(max_examples=50, deadline=None)
@given(rows=scored, drop=st.booleans())
def test_roc_curve_auc_ap_match_sklearn_with_ties(rows, drop):
    """Scores from seven values: many ties, which a threshold cannot split."""
    y = torch.tensor([r[0] for r in rows])
    s = torch.tensor([r[1] for r in rows], dtype=torch.float64) / 3
    fpr, tpr, thr = M.roc_curve(y, s, drop_intermediate=drop)
    rfpr, rtpr, rthr = skm.roc_curve(y.numpy(), s.numpy(), drop_intermediate=drop)
    close(fpr, rfpr)
    close(tpr, rtpr)
    close(thr, rthr)
    close(M.roc_auc(y, s), skm.roc_auc_score(y.numpy(), s.numpy()))
    close(M.average_precision(y, s), skm.average_precision_score(y.numpy(), s.numpy()))


@pytest.mark.parametrize("seed", range(3))
def test_auc_is_the_pairwise_ranking_probability(seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(300, generator=g) < 0.3
    s = torch.round(torch.randn(300, generator=g, dtype=torch.float64) + y * 1.0, decimals=1)
    pos, neg = s[y], s[~y]
    diff = pos[:, None] - neg[None, :]  # every (positive, negative) pair
    pairwise = ((diff > 0).double() + 0.5 * (diff == 0).double()).mean()
    close(M.roc_auc(y, s), pairwise)
    close(M.roc_auc(y, -s), 1 - pairwise)  # reversing the score reflects the AUC
    close(M.roc_auc(y, torch.exp(3 * s)), pairwise)  # a monotone map keeps the ranking, so the AUC


def test_auc_trapezoid_and_errors():
    close(M.auc(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 1.0, 1.0])), 0.75)
    close(M.auc(torch.tensor([1.0, 0.5, 0.0]), torch.tensor([1.0, 1.0, 0.0])), 0.75)
    with pytest.raises(ValueError, match="sorted"):
        M.auc(torch.tensor([0.0, 1.0, 0.5]), torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="positive and one negative"):
        M.roc_auc(torch.ones(4), torch.rand(4))
    with pytest.raises(ValueError, match="binary"):
        M.roc_curve(torch.tensor([0, 2, 1]), torch.rand(3))
    with pytest.raises(ValueError, match="at least one positive"):
        M.average_precision(torch.zeros(3), torch.rand(3))


# ---------------------------------------------------------------- regression

def leaf(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=g, dtype=torch.float64) + shift).requires_grad_()


@pytest.mark.parametrize("seed", range(3))
def test_regression_metrics_match_sklearn(seed):
    y, p = leaf(50, seed), leaf(50, seed + 10)
    yn, pn = y.detach().numpy(), p.detach().numpy()
    close(M.rmse(y, p), math.sqrt(skm.mean_squared_error(yn, pn)))
    close(M.mae(y, p), skm.mean_absolute_error(yn, pn))
    close(M.mape(y, p), skm.mean_absolute_percentage_error(yn, pn))
    close(M.r2_score(y, p), skm.r2_score(yn, pn))


def test_mape_zero_target_and_r2_constant_target_follow_sklearn():
    y, p = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.1, 1.0, 2.5])
    close(M.mape(y, p), skm.mean_absolute_percentage_error(y.numpy(), p.numpy()))
    const = torch.full((4,), 2.0)
    close(M.r2_score(const, const), skm.r2_score(const.numpy(), const.numpy()))  # 1
    close(M.r2_score(const, const + 1), skm.r2_score(const.numpy(), (const + 1).numpy()))  # 0


def test_regression_gradients_match_torch_and_gradcheck():
    y, p = leaf(20, 0), leaf(20, 1)
    ours = torch.autograd.grad(M.rmse(y, p), (y, p))
    ref = torch.autograd.grad(F.mse_loss(p, y).sqrt(), (y, p))
    for a, b in zip(ours, ref):
        close(a, b)
    ours = torch.autograd.grad(M.mae(y, p), (y, p))
    ref = torch.autograd.grad(F.l1_loss(p, y), (y, p))
    for a, b in zip(ours, ref):
        close(a, b)
    y2, p2 = leaf(6, 2, shift=3.0), leaf(6, 3)  # targets away from zero: MAPE is smooth there
    for fn in (M.rmse, M.mape, M.r2_score):
        assert torch.autograd.gradcheck(fn, (y2, p2))


def test_r2_is_negative_for_a_model_worse_than_the_mean():
    y = torch.arange(10.0, dtype=torch.float64)
    assert M.r2_score(y, y.flip(0)) < 0
    close(M.r2_score(y, torch.full_like(y, y.mean().item())), 0.0)


# ---------------------------------------------------------------- segmentation

@pytest.mark.parametrize("seed", range(3))
def test_binary_mask_iou_dice_match_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    t, p = torch.rand(16, 16, generator=g) < 0.4, torch.rand(16, 16, generator=g) < 0.5
    close(M.iou(t, p), skm.jaccard_score(t.ravel(), p.ravel()))
    close(M.dice(t, p), skm.f1_score(t.ravel(), p.ravel()))


@pytest.mark.parametrize("zero_division", [0.0, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_per_class_iou_dice_match_sklearn(seed, zero_division):
    g = torch.Generator().manual_seed(seed)
    t, p = torch.randint(0, 4, (8, 8), generator=g), torch.randint(0, 4, (8, 8), generator=g)
    # classes 4 and 5 appear in neither map: the zero-division case
    kw = {"labels": list(range(6)), "average": None, "zero_division": zero_division}
    close(M.per_class_iou(t, p, 6, zero_division), skm.jaccard_score(t.ravel(), p.ravel(), **kw))
    close(M.per_class_dice(t, p, 6, zero_division), skm.f1_score(t.ravel(), p.ravel(), **kw))
    assert M.per_class_iou(t, p, 6)[4:].isnan().all()  # default nan: mIoU = nanmean skips them


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_dice_is_a_function_of_iou(seed):
    g = torch.Generator().manual_seed(seed)
    t, p = torch.rand(30, generator=g, dtype=torch.float64), torch.rand(30, generator=g, dtype=torch.float64)
    j, d = M.iou(t, p), M.dice(t, p)
    close(d, 2 * j / (1 + j))
    assert d >= j


def test_soft_iou_dice_gradcheck_and_empty_masks():
    g = torch.Generator().manual_seed(0)
    t = (torch.rand(12, generator=g) < 0.5).double()
    p = torch.rand(12, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda q: M.dice(t, q), (p,))
    assert torch.autograd.gradcheck(lambda q: M.iou(t, q), (p,))
    empty = torch.zeros(5, dtype=torch.bool)
    assert M.iou(empty, empty).isnan() and M.dice(empty, empty, zero_division=1.0) == 1.0


# ---------------------------------------------------------------- boxes and detection mAP

def test_box_iou_hand_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [1.0, 1.0, 3.0, 3.0]])
    expected = torch.tensor([
        [1 / 7, 0.0, 0.0, 1 / 7],  # overlap 1x1 = 1, union 4 + 4 - 1 = 7
        [4 / 100, 50 / 150, 0.0, 4 / 100],  # contained 2x2 box: 4 / 100; half-shifted: 50 / (100 + 100 - 50)
    ])
    close(M.box_iou(a, b), expected)
    with pytest.raises(ValueError, match="x2 >= x1"):
        M.box_iou(torch.tensor([[2.0, 0.0, 1.0, 1.0]]), a)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=8, max_size=8))
def test_box_iou_counts_pixels(c):
    """Integer boxes rasterised on a grid: box IoU is the IoU of their pixel masks."""
    boxes = torch.tensor([[min(c[0], c[1]), min(c[2], c[3]), max(c[0], c[1]) + 1, max(c[2], c[3]) + 1],
                          [min(c[4], c[5]), min(c[6], c[7]), max(c[4], c[5]) + 1, max(c[6], c[7]) + 1]],
                         dtype=torch.float64)
    grid = torch.arange(14)
    masks = [((grid[None, :] >= b[0]) & (grid[None, :] < b[2]) & (grid[:, None] >= b[1]) & (grid[:, None] < b[3]))
             for b in boxes]
    ious = M.box_iou(boxes, boxes)
    close(ious[0, 1], M.iou(masks[0], masks[1]))
    close(ious, ious.T)
    close(ious.diagonal(), [1.0, 1.0])


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_map_on_a_hand_checked_example():
    """Class 0: image 0 holds A=(0,0,10,10) and B=(20,20,30,30), image 1 holds C=(0,0,10,10).
    Ranked detections: 0.9 hits A (TP); 0.8 overlaps A by 81/119 but A is taken (duplicate, FP);
    0.7 overlaps C by 25/175 < 0.5 (FP); 0.6 hits B (TP). Cumulative TP 1,1,1,2 and FP 0,1,2,2
    give recall 1/3,1/3,1/3,2/3 and precision 1,1/2,1/3,1/2; the envelope is 1 up to recall 1/3
    and 1/2 up to 2/3, so AP = 1/3 * 1 + 1/3 * 1/2 = 1/2. Class 1: one box, found: AP 1. Class 2:
    one box, never detected: AP 0. Class 3 is only detected, never present: left out. mAP = 1/2."""
    gts = [{"boxes": boxes([0, 0, 10, 10], [20, 20, 30, 30]), "labels": torch.tensor([0, 0])},
           {"boxes": boxes([0, 0, 10, 10], [50, 50, 60, 60], [70, 70, 80, 80]), "labels": torch.tensor([0, 1, 2])}]
    dets = [{"boxes": boxes([0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 5, 5]),
             "scores": torch.tensor([0.9, 0.8, 0.6, 0.95]), "labels": torch.tensor([0, 0, 0, 3])},
            {"boxes": boxes([5, 5, 15, 15], [51, 50, 61, 60]),
             "scores": torch.tensor([0.7, 0.5]), "labels": torch.tensor([0, 1])}]
    mean, ap = M.mean_average_precision(gts, dets)
    assert set(ap) == {0, 1, 2}
    close(torch.stack([ap[0], ap[1], ap[2]]), [0.5, 1.0, 0.0])
    close(mean, 0.5)
    # at IoU 0.1 the 0.7 detection finds C: TP 1,1,2,3 / FP 0,1,1,1 -> envelope 3/4 to recall 1
    _, ap = M.mean_average_precision(gts, dets, iou_threshold=0.1)
    close(ap[0], 1 / 3 * 1 + 2 / 3 * 3 / 4)


def test_interpolated_ap_and_map_errors():
    # precision 0.5 then 1.0 at recalls 0.5 and 1: the envelope lifts the first point to 1
    close(M.interpolated_ap(torch.tensor([0.5, 1.0]), torch.tensor([0.5, 1.0])), 1.0)
    perfect = [{"boxes": boxes([0, 0, 1, 1]), "labels": torch.tensor([0])}]
    found = [{"boxes": boxes([0, 0, 1, 1]), "scores": torch.tensor([0.3]), "labels": torch.tensor([0])}]
    close(M.mean_average_precision(perfect, found)[0], 1.0)
    with pytest.raises(ValueError, match="images"):
        M.mean_average_precision(perfect, found * 2)


# ---------------------------------------------------------------- perplexity

def test_perplexity_is_exp_of_cross_entropy_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 5, 11, generator=g, dtype=torch.float64).requires_grad_()
    y = torch.randint(0, 11, (3, 5), generator=g)
    ours, ref = M.perplexity(z, y), F.cross_entropy(z.reshape(-1, 11), y.reshape(-1)).exp()
    close(ours.detach(), ref.detach())
    close(torch.autograd.grad(ours, z)[0], torch.autograd.grad(ref, z)[0])
    y[0, :2] = -100  # padding
    close(M.perplexity(z, y, ignore_index=-100).detach(),
          F.cross_entropy(z.reshape(-1, 11), y.reshape(-1), ignore_index=-100).exp().detach())


@pytest.mark.parametrize("vocab", [2, 50, 1000])
def test_uniform_logits_give_the_vocabulary_size(vocab):
    z = torch.full((4, 7, vocab), 3.0, dtype=torch.float64)
    close(M.perplexity(z, torch.zeros(4, 7, dtype=torch.long)), vocab)
    close(M.perplexity_from_nll(torch.tensor([0.5, 1.5], dtype=torch.float64)), math.exp(1.0))


def test_perplexity_errors():
    with pytest.raises(ValueError, match="vocabulary axis"):
        M.perplexity(torch.zeros(3, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="0..3"):
        M.perplexity(torch.zeros(2, 4), torch.tensor([1, 4]))


# ---------------------------------------------------------------- BLEU and ROUGE-L

def test_bleu_clips_counts_by_the_references():
    """Papineni et al.'s example: 'the' x7 against references holding it twice at most -> p1 = 2/7."""
    refs = [["the cat is on the mat".split(), "there is a cat on the mat".split()]]
    b = M.corpus_bleu(refs, ["the the the the the the the".split()], max_n=1)
    assert b.matches == [2] and b.totals == [7]
    close(b.score, 2 / 7)  # c = 7 > r = 6 (closest): no brevity penalty


def test_bleu_hand_worked_corpus():
    """Sentence 1, 'the cat sat on the mat' against 'the cat sat on a mat':
        1-grams: the x2 (ref has 1 -> clip to 1), cat, sat, on, mat       -> 5 of 6
        2-grams: the cat, cat sat, sat on | on the, the mat (no)          -> 3 of 5
        3-grams: the cat sat, cat sat on | sat on the, on the mat (no)    -> 2 of 4
        4-grams: the cat sat on | cat sat on the, sat on the mat (no)     -> 1 of 3
    Sentence 2, 'there is a cat' against 'there is a cat here' and 'a cat is there now ok':
        every n-gram occurs in the first reference                        -> 4/4, 3/3, 2/2, 1/1
        reference lengths 5 and 6: the closest to 4 is 5
    Corpus: p = 9/10, 6/8, 4/6, 2/4; c = 10, r = 6 + 5 = 11, BP = exp(1 - 11/10)."""
    refs = [["the cat sat on a mat".split()], ["there is a cat here".split(), "a cat is there now ok".split()]]
    hyps = ["the cat sat on the mat".split(), "there is a cat".split()]
    b = M.corpus_bleu(refs, hyps)
    assert b.matches == [9, 6, 4, 2] and b.totals == [10, 8, 6, 4]
    assert (b.hyp_len, b.ref_len) == (10, 11)
    close(b.brevity_penalty, math.exp(-0.1))
    close(b.score, math.exp(-0.1) * (9 / 10 * 6 / 8 * 4 / 6 * 2 / 4) ** 0.25)
    close(M.corpus_bleu(refs[:1], hyps[:1]).score, (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)  # c = r: BP 1


def test_bleu_smoothing_by_hand():
    """'a b c d' against 'a b x d': 1-grams 3/4 (a, b, d), 2-grams 1/3 (a b), 3- and 4-grams 0/2 and 0/1."""
    refs, hyps = [["a b x d".split()]], ["a b c d".split()]
    assert M.corpus_bleu(refs, hyps).score == 0.0  # a zero precision zeroes the geometric mean
    close(M.corpus_bleu(refs, hyps, smoothing="epsilon").score, (3 / 4 * 1 / 3 * 0.1 / 2 * 0.1 / 1) ** 0.25)
    close(M.corpus_bleu(refs, hyps, smoothing="add-one").score, (3 / 4 * 2 / 4 * 1 / 3 * 1 / 2) ** 0.25)
    with pytest.raises(ValueError, match="smoothing"):
        M.corpus_bleu(refs, hyps, smoothing="laplace")
    with pytest.raises(ValueError, match="hypotheses"):
        M.corpus_bleu(refs * 2, hyps)


@pytest.mark.parametrize("smoothing", [None, "epsilon", "add-one"])
def test_bleu_matches_nltk(smoothing):
    from nltk.translate import bleu_score  # a test dependency (pyproject: test extra)
    rng = np.random.default_rng(0)
    words = "a b c".split()  # a small vocabulary: most corpora share 4-grams, some do not
    for _ in range(20):
        # sentences of >= 4 tokens: where NLTK floors a short sentence's n-gram total at 1 we do not
        hyps = [list(rng.choice(words, rng.integers(4, 12))) for _ in range(5)]
        refs = [[list(rng.choice(words, rng.integers(4, 12))) for _ in range(rng.integers(1, 4))] for _ in range(5)]
        method = {None: None, "epsilon": bleu_score.SmoothingFunction().method1,
                  "add-one": bleu_score.SmoothingFunction().method2}[smoothing]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NLTK warns on zero counts
            ref = bleu_score.corpus_bleu(refs, hyps, smoothing_function=method)
        close(M.corpus_bleu(refs, hyps, smoothing=smoothing).score, ref, tol=1e-12)


def test_rouge_l_hand_worked():
    """Lin (2004): reference 'police killed the gunman'. 'police kill the gunman' shares the
    subsequence 'police the gunman' (LCS 3): P = R = F = 3/4. 'the gunman kill police' shares
    only 'the gunman' (2): 1/2, although both candidates have the same bigram overlap."""
    ref = "police killed the gunman".split()
    close(list(M.rouge_l(ref, "police kill the gunman".split())), [0.75, 0.75, 0.75])
    close(list(M.rouge_l(ref, "the gunman kill police".split())), [0.5, 0.5, 0.5])
    p, r, f = M.rouge_l(ref, "police the".split())  # LCS 2: P = 1, R = 1/2, F = 2/3
    close([p, r, f], [1.0, 0.5, 2 / 3])
    assert M.rouge_l(ref, "nothing shared".split()) == (0.0, 0.0, 0.0)


@settings(max_examples=80, deadline=None)
@given(a=st.lists(st.sampled_from("xyz"), max_size=7), b=st.lists(st.sampled_from("xyz"), max_size=7))
def test_lcs_by_brute_force(a, b):
    def is_subsequence(sub, seq):
        it = iter(seq)
        return all(any(x == y for y in it) for x in sub)

    brute = max(n for n in range(len(a) + 1) for sub in itertools.combinations(a, n) if is_subsequence(sub, b))
    assert M.lcs_length(a, b) == brute == M.lcs_length(b, a)


# ---------------------------------------------------------------- NDCG

@pytest.mark.parametrize("k", [None, 1, 3, 8])
@pytest.mark.parametrize("seed", range(3))
def test_ndcg_matches_sklearn_with_ties(seed, k):
    g = torch.Generator().manual_seed(seed)
    rel = torch.randint(0, 4, (6, 10), generator=g)
    rel[0] = 0  # a query with nothing relevant scores 0
    scores = torch.randint(0, 4, (6, 10), generator=g).double()  # many tied scores
    close(M.ndcg(rel, scores, k=k, gain="linear"), skm.ndcg_score(rel.numpy(), scores.numpy(), k=k))
    # exponential gain is linear gain on 2^rel - 1
    close(M.ndcg(rel, scores, k=k), skm.ndcg_score((2**rel - 1).numpy(), scores.numpy(), k=k))
    per_query = M.ndcg(rel, scores, k=k, gain="linear", reduction="none")
    close(per_query, [skm.ndcg_score(r[None].numpy(), s[None].numpy(), k=k) for r, s in zip(rel, scores)])


def test_ndcg_ideal_order_and_position():
    rel = torch.tensor([3.0, 2.0, 0.0, 1.0])
    close(M.ndcg(rel, rel), 1.0)
    # the best item (exponential gain 7) swapped with the second (gain 3): ranks hold gains 3, 7, 1, 0
    moved = torch.tensor([3.0, 4.0, 1.0, 2.0])
    close(M.ndcg(rel, moved), (3 + 7 / math.log2(3) + 1 / 2) / (7 + 3 / math.log2(3) + 1 / 2))


def test_ndcg_errors():
    with pytest.raises(ValueError, match=">= 0"):
        M.ndcg(torch.tensor([-1.0, 1.0]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="gain"):
        M.ndcg(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), gain="log")
    with pytest.raises(ValueError, match="k must be"):
        M.ndcg(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), k=0)
    with pytest.raises(ValueError, match="reduction"):
        M.ndcg(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), reduction="sum")


# --- generative sample quality ---------------------------------------------------------------------------

def _frechet_scipy(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s_a @ s_b).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


def test_frechet_distance_matches_the_scipy_sqrtm_formula():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 6, generator=g, dtype=torch.float64)
    b = torch.randn(200, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64) + 1
    close(M.frechet_distance(a, b), _frechet_scipy(a.numpy(), b.numpy()), tol=1e-8)
    assert M.frechet_distance(a, a).item() == pytest.approx(0, abs=1e-9)


def test_frechet_distance_of_known_gaussians():
    # Same covariance: only the means differ, so d^2 = |mu_a - mu_b|^2 up to sampling noise.
    g = torch.Generator().manual_seed(1)
    a = torch.randn(20_000, 3, generator=g, dtype=torch.float64)
    b = torch.randn(20_000, 3, generator=g, dtype=torch.float64) + torch.tensor([3.0, 0, 4.0], dtype=torch.float64)
    assert M.frechet_distance(a, b).item() == pytest.approx(25.0, rel=0.01)


def test_sliced_wasserstein_in_one_dimension_is_the_exact_distance():
    from scipy.stats import wasserstein_distance
    g = torch.Generator().manual_seed(2)
    a = torch.randn(400, 1, generator=g, dtype=torch.float64)
    b = 2 * torch.rand(400, 1, generator=g, dtype=torch.float64) + 0.5
    # In 1-D every direction is +-1, so the sliced distance is the 1-D distance itself.
    close(M.sliced_wasserstein(a, b, n_projections=8, p=1, generator=g), wasserstein_distance(a[:, 0], b[:, 0]), 1e-10)
    shift = M.sliced_wasserstein(a, a + 0.7, n_projections=8, p=2, generator=g)
    close(shift, 0.7, 1e-10)


def test_sliced_wasserstein_unequal_sizes_and_errors():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(500, 2, generator=g), torch.randn(2000, 2, generator=g)
    far = torch.randn(700, 2, generator=g) + 5
    near = M.sliced_wasserstein(a, b, generator=g).item()
    assert near < 0.15 < M.sliced_wasserstein(a, far, generator=g).item()
    with pytest.raises(ValueError, match="same D"):
        M.sliced_wasserstein(a, torch.randn(10, 3))
    with pytest.raises(ValueError, match="p must be"):
        M.sliced_wasserstein(a, b, p=0)


def test_mmd_rbf_matches_its_definition_written_as_loops():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(12, 2, generator=g, dtype=torch.float64), torch.randn(9, 2, generator=g, dtype=torch.float64)
    hs = (0.5, 1.0)

    def k(x, y):
        return sum(math.exp(-float(((x - y) ** 2).sum()) / (2 * h * h)) for h in hs)
    n, m = len(a), len(b)
    xx = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    close(M.mmd_rbf(a, b, bandwidths=hs), xx + yy - 2 * xy, 1e-12)


def test_mode_coverage_counts_modes_and_quality():
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    g = torch.Generator().manual_seed(5)
    on_two = torch.cat([modes[0] + 0.1 * torch.randn(50, 2, generator=g), modes[1] + 0.1 * torch.randn(50, 2, generator=g)])
    stray = torch.full((100, 2), 5.0)  # half the samples far from every mode
    covered, quality = M.mode_coverage(torch.cat([on_two, stray]), modes, radius=1.0)
    assert covered == 2 and quality == pytest.approx(0.5)
    # A few samples at the third mode do not count as covering it (the default threshold is 1 / (4K) of samples).
    few = torch.cat([on_two, modes[2] + torch.zeros(5, 2)])
    assert M.mode_coverage(few, modes, radius=1.0)[0] == 2
    assert M.mode_coverage(few, modes, radius=1.0, min_share=0.01)[0] == 3
