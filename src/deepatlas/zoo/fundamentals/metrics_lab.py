"""What evaluation metrics reward and hide: six small experiments on the metrics of deepatlas.nn.metrics.

A metric is a choice of what counts as good. Accuracy counts correct answers and so cannot tell
a classifier that ignores a rare class from one that finds it; AUC counts correctly ordered
positive-negative pairs; MAPE divides by the target and so explodes near zero; R² compares with
predicting the mean; perplexity is the exponentiated mean negative log-likelihood; NDCG discounts
each relevant item by its rank. Each lab below measures one of these on real or generated data.

    \\mathrm{acc} = \\frac{TP + TN}{N}, \\quad F_1 = \\frac{2TP}{2TP + FP + FN}, \\quad
    \\mathrm{AUC} = P(s_+ > s_-), \\quad \\mathrm{PPL} = e^{-\\frac1N \\sum_i \\log p(x_i)}

Hanley & McNeil, "The meaning and use of the area under a ROC curve", Radiology 1982;
Jarvelin & Kekalainen, "Cumulated gain-based evaluation of IR techniques", TOIS 2002.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import CharVocab, digits, shakespeare_text
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn import metrics as M


# ---------------------------------------------------------------- shared: a rare digit and a linear scorer

def rare_digit(positive: int, share: float | None, g: torch.Generator):
    """Digits as a binary task "is it `positive`?"; with `share`, positives are subsampled (in train
    and test alike) to that fraction of the samples, otherwise the natural ~10% is kept."""
    data = digits()
    parts = []
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        pos, neg = torch.nonzero(y == positive).squeeze(1), torch.nonzero(y != positive).squeeze(1)
        if share is not None:
            # n_+ / (n_+ + n_-) = share
            n_pos = round(share / (1 - share) * len(neg))
            pos = pos[torch.randperm(len(pos), generator=g)[:n_pos]]
        keep = torch.cat([neg, pos])
        parts += [x[keep], (y[keep] == positive).long()]
    return parts  # x_train (N, 64), y_train (N,) in {0, 1}, x_test, y_test


def logistic_scores(run, x, y, x_test, steps: int, lr: float) -> torch.Tensor:
    """Fit logistic regression by full-batch Adam on the cross-entropy; return test logits (N_test,)."""
    x, y, x_test = x.to(run.device), y.float().to(run.device), x_test.to(run.device)
    model = nn.Linear(x.shape[1], 1).to(run.device)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in run.progress(range(steps), desc="logistic regression"):
        # \mathcal{L} = -\frac1N \sum_n y_n \log\sigma(s_n) + (1 - y_n)\log(1 - \sigma(s_n))
        loss = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == steps - 1:
            run.log(step, loss=loss)
    with torch.no_grad():
        return model(x_test).squeeze(1).cpu()


# ---------------------------------------------------------------- classification-metrics/imbalance

@dataclass
class ImbalanceConfig:
    positive: int = 8  # the rare class: 8 is the digit a linear model finds hardest
    share: float = 0.05  # positives are 1 sample in 20
    steps: int = 300
    lr: float = 0.05


@lab(
    "classification-metrics/imbalance",
    card="classification-metrics",
    config=ImbalanceConfig,
    scales={"quick": {"steps": 30}, "default": {}, "full": {"steps": 2000}},
    goals=[Goal("model_f1", ">=", 0.5)],
    claims=[
        Check(
            "classification-metrics-imbalance",
            lambda m: m["majority_acc"] >= 0.9 and m["majority_recall"] == 0 and m["majority_f1"] == 0
            and m["model_acc"] - m["majority_acc"] < m["model_f1"] - m["majority_f1"],
            "with {share:.0%} positives (digit {positive}, {n_test_pos} of {n_test} test images) always answering "
            "'no' scores accuracy {majority_acc:.3f} with minority recall {majority_recall:.2f} and F1 "
            "{majority_f1:.2f}; a logistic regression scores accuracy {model_acc:.3f} (only "
            "{acc_gap:+.3f}) but F1 {model_f1:.3f} (recall {model_recall:.3f}, precision {model_precision:.3f})",
        ),
    ],
    budget_s=20,  # includes loading scikit-learn for the digits, several seconds on a busy machine
    threads=1,
)
def imbalance(run, cfg: ImbalanceConfig) -> dict:
    """A 1:19 imbalanced digit task: the always-majority classifier against a trained one, by four metrics."""
    g = torch.Generator().manual_seed(run.seed)
    x, y, x_test, y_test = rare_digit(cfg.positive, cfg.share, g)
    scores = logistic_scores(run, x, y, x_test, cfg.steps, cfg.lr)
    majority = torch.full_like(y_test, int(y.bincount().argmax()))  # the most frequent training label
    predictions = {"always majority": majority, "logistic regression": (scores > 0).long()}
    metrics: dict = {"positive": cfg.positive, "share": cfg.share, "n_test": len(y_test),
                     "n_test_pos": int(y_test.sum())}
    bars = {}
    for key, pred in zip(("majority", "model"), predictions.values()):
        prf = M.precision_recall_f1(y_test, pred, zero_division=0.0)  # minority class, binary average
        values = {"acc": M.accuracy(y_test, pred), "precision": prf.precision, "recall": prf.recall, "f1": prf.f1}
        metrics.update({f"{key}_{name}": v.item() for name, v in values.items()})
        bars[key] = [v.item() for v in values.values()]
    metrics["acc_gap"] = metrics["model_acc"] - metrics["majority_acc"]

    with run.figure("imbalance") as (fig, ax):
        names = ["accuracy", "precision", "recall", "F1"]
        for i, (label, values) in enumerate(zip(predictions, bars.values())):
            ax.bar([j + 0.4 * i for j in range(4)], values, width=0.4, label=label)
        ax.set_xticks([j + 0.2 for j in range(4)], names)
        ax.set(ylim=(0, 1.05), title=f"digit {cfg.positive} vs rest, {cfg.share:.0%} positives (test)")
        ax.legend(loc="lower left")
    return metrics


# ---------------------------------------------------------------- roc-auc/ranking

@dataclass
class RankingConfig:
    positive: int = 8
    steps: int = 300
    lr: float = 0.05
    random_draws: int = 200  # random scorers whose AUC is measured


@lab(
    "roc-auc/ranking",
    card="roc-auc",
    config=RankingConfig,
    scales={"quick": {"steps": 30, "random_draws": 20}, "default": {}, "full": {"steps": 2000, "random_draws": 2000}},
    goals=[Goal("model_auc", ">=", 0.9)],
    claims=[
        Check(
            "roc-auc-ranking",
            lambda m: 0 <= m["auc_min"] and m["auc_max"] <= 1 and abs(m["random_auc_mean"] - 0.5) < 0.02
            and m["pairwise_gap"] < 1e-9 and abs(m["model_auc"] + m["flipped_auc"] - 1) < 1e-9
            and m["model_auc"] > m["random_auc_max"],
            "every AUC measured lies in [{auc_min:.3f}, {auc_max:.3f}]; {random_draws} random scorers average "
            "{random_auc_mean:.3f} (sd {random_auc_std:.3f}; about 0.5 counted as within 0.02); logistic regression "
            "scores {model_auc:.3f}, above every random scorer (max {random_auc_max:.3f}), its reversed score "
            "{flipped_auc:.3f}; the area equals the share of correctly ordered positive-negative pairs to "
            "{pairwise_gap:.1e}",
        ),
    ],
    budget_s=20,  # includes loading scikit-learn for the digits, several seconds on a busy machine
    threads=1,
)
def ranking(run, cfg: RankingConfig) -> dict:
    """ROC AUC of a trained scorer, its reverse and random scorers, and AUC as a pairwise ranking probability."""
    g = torch.Generator().manual_seed(run.seed)
    x, y, x_test, y_test = rare_digit(cfg.positive, None, g)
    s = logistic_scores(run, x, y, x_test, cfg.steps, cfg.lr).double()
    model_auc, flipped_auc = M.roc_auc(y_test, s).item(), M.roc_auc(y_test, -s).item()
    random_aucs = torch.stack([M.roc_auc(y_test, torch.rand(len(y_test), generator=g, dtype=torch.float64))
                               for _ in range(cfg.random_draws)])
    # \mathrm{AUC} = \frac{1}{n_+ n_-}\sum_{i \in +}\sum_{j \in -} \mathbb{1}[s_i > s_j] + \tfrac12 \mathbb{1}[s_i = s_j]
    diff = s[y_test == 1][:, None] - s[y_test == 0][None, :]  # (n+, n-) every pair
    pairwise = ((diff > 0).double() + 0.5 * (diff == 0).double()).mean().item()
    every = torch.cat([random_aucs, torch.tensor([model_auc, flipped_auc], dtype=torch.float64)])
    metrics = {
        "model_auc": model_auc, "flipped_auc": flipped_auc, "model_ap": M.average_precision(y_test, s).item(),
        "random_draws": cfg.random_draws, "random_auc_mean": random_aucs.mean().item(),
        "random_auc_std": random_aucs.std().item(), "random_auc_max": random_aucs.max().item(),
        "auc_min": every.min().item(), "auc_max": every.max().item(), "pairwise_gap": abs(model_auc - pairwise),
        "positive_share": y_test.double().mean().item(),
    }

    with run.figure("roc", ncols=2) as (fig, axes):
        noise = torch.rand(len(y_test), generator=g, dtype=torch.float64)
        for name, score in (("logistic regression", s), ("reversed score", -s), ("random score", noise)):
            fpr, tpr, _ = M.roc_curve(y_test, score)
            axes[0].plot(fpr, tpr, label=f"{name} (AUC {M.roc_auc(y_test, score).item():.3f})")
        axes[0].plot([0, 1], [0, 1], "k:", lw=0.8)
        axes[0].set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"digit {cfg.positive} vs rest")
        axes[0].legend(loc="lower right", fontsize=8)
        axes[1].hist(random_aucs, bins=20, color="grey")
        axes[1].axvline(model_auc, color="C0", label="logistic regression")
        axes[1].set(xlabel="AUC", title=f"{cfg.random_draws} random scorers", xlim=(0, 1))
        axes[1].legend(fontsize=8)
    return metrics


# ---------------------------------------------------------------- regression-metrics/mape-near-zero

OFFSETS = (100.0, 10.0, 1.0, 0.1, 0.01)  # targets drawn from [a, 2a]


@dataclass
class MapeConfig:
    n: int = 2000
    noise: float = 0.1  # standard deviation of the prediction errors, the same for every offset
    test_sets: int = 200  # independent test sets for the spread of MAPE


@lab(
    "regression-metrics/mape-near-zero",
    card="regression-metrics",
    config=MapeConfig,
    scales={"quick": {"n": 200, "test_sets": 20}, "default": {}, "full": {"n": 100_000, "test_sets": 1000}},
    claims=[
        Check(
            "regression-metrics-mape-near-zero",
            lambda m: m["mape_ratio"] > 100 and m["rmse_spread"] < 1e-9 and m["cv_ratio"] > 10,
            "the same errors (RMSE {rmse:.4f} at every offset, spread {rmse_spread:.1e}) give MAPE "
            "{mape_far:.2%} on targets in [100, 200] and {mape_near:.0%} on targets in [0.01, 0.02] "
            "({mape_ratio:.0f}x; exploding counted as > 100x); over {test_sets} test sets with targets crossing zero "
            "MAPE varies with coefficient of variation {cv_straddle:.2f}, against {cv_far:.3f} for targets near 10 "
            "({cv_ratio:.0f}x; unstable counted as > 10x)",
        ),
    ],
    budget_s=10,
    threads=1,
)
def mape_near_zero(run, cfg: MapeConfig) -> dict:
    """Identical prediction errors scored by RMSE and MAPE as the targets approach zero."""
    g = torch.Generator().manual_seed(run.seed)
    u = torch.rand(cfg.n, generator=g, dtype=torch.float64)
    e = cfg.noise * torch.randn(cfg.n, generator=g, dtype=torch.float64)  # the errors, fixed
    rmses, mapes = [], []
    for i, a in enumerate(OFFSETS):
        y = a * (1 + u)  # (n,) in [a, 2a]
        y_hat = y + e
        rmses.append(M.rmse(y, y_hat).item())
        mapes.append(M.mape(y, y_hat).item())
        run.log(i, offset=a, rmse=rmses[-1], mape=mapes[-1])

    def spread(mean: float) -> float:
        """Coefficient of variation (sd / mean) of MAPE over `test_sets` independent test sets of n
        targets from N(mean, 1), each with fresh errors of the same size."""
        y = mean + torch.randn(cfg.test_sets, cfg.n, generator=g, dtype=torch.float64)  # (S, n)
        y_hat = y + cfg.noise * torch.randn(cfg.test_sets, cfg.n, generator=g, dtype=torch.float64)
        values = torch.stack([M.mape(a, b) for a, b in zip(y, y_hat)])  # (S,)
        return (values.std() / values.mean()).item()

    cv_straddle, cv_far = spread(0.0), spread(10.0)  # N(0, 1) crosses zero; N(10, 1) does not
    metrics = {
        "rmse": rmses[0], "rmse_spread": max(rmses) - min(rmses), "mape_far": mapes[0], "mape_near": mapes[-1],
        "mape_ratio": mapes[-1] / mapes[0], "cv_straddle": cv_straddle, "cv_far": cv_far,
        "cv_ratio": cv_straddle / cv_far, "test_sets": cfg.test_sets,
    }

    with run.figure("mape") as (fig, ax):
        ax.loglog(OFFSETS, mapes, "o-", label="MAPE")
        ax.loglog(OFFSETS, rmses, "s-", label="RMSE")
        ax.set(xlabel="smallest target a (targets in [a, 2a])", ylabel="error", title="same errors, smaller targets")
        ax.invert_xaxis()
        ax.legend()
    return metrics


# ---------------------------------------------------------------- regression-metrics/r2-range

DEGREES = (0, 1, 3, 5, 9, 15)


@dataclass
class R2Config:
    n_train: int = 30
    n_test: int = 500
    noise: float = 0.2


@lab(
    "regression-metrics/r2-range",
    card="regression-metrics",
    config=R2Config,
    scales={"quick": {"n_test": 100}, "default": {}, "full": {"n_test": 10_000}},
    goals=[Goal("best_test_r2", ">=", 0.8)],
    claims=[
        Check(
            "regression-metrics-r2-range",
            lambda m: -1e-9 <= m["min_train_r2"] and m["max_train_r2"] <= 1 and 0 <= m["best_test_r2"] <= 1,
            "least-squares polynomials of degree 0-15 fitted to {n_train} noisy points of sin(3x) score R² from "
            "{min_train_r2:.3f} (the mean; 0 counted to 1e-9) to {max_train_r2:.3f} on their training data; on "
            "held-out points R² ranges from {worst_test_r2:.3g} (degree {worst_degree}) to {best_test_r2:.3f} "
            "(degree {best_degree}): below 0 means worse than predicting the mean",
        ),
    ],
    budget_s=10,
    threads=1,
)
def r2_range(run, cfg: R2Config) -> dict:
    """R² of polynomial least-squares fits of rising degree, on their training data and on held-out data."""
    g = torch.Generator().manual_seed(run.seed)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1  # (n,) in [-1, 1]
        return x, torch.sin(3 * x) + cfg.noise * torch.randn(n, generator=g, dtype=torch.float64)

    x, y = sample(cfg.n_train)
    x_test, y_test = sample(cfg.n_test)
    metrics: dict = {"n_train": cfg.n_train}
    def predict(t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # (n,) -> (n,)
        return t[:, None] ** torch.arange(len(w), dtype=torch.float64) @ w

    fits = {}
    for i, degree in enumerate(DEGREES):
        vander = x[:, None] ** torch.arange(degree + 1, dtype=torch.float64)  # (n, degree + 1), column 0: intercept
        # \hat w = \arg\min_w \|X w - y\|^2, \quad X_{nj} = x_n^j
        fits[degree] = w = torch.linalg.lstsq(vander, y[:, None]).solution.squeeze(1)  # (degree + 1,)
        metrics[f"train_r2_d{degree}"] = M.r2_score(y, predict(x, w)).item()
        metrics[f"test_r2_d{degree}"] = M.r2_score(y_test, predict(x_test, w)).item()
        run.log(i, degree=degree, train_r2=metrics[f"train_r2_d{degree}"], test_r2=metrics[f"test_r2_d{degree}"])
    train = [metrics[f"train_r2_d{d}"] for d in DEGREES]
    test = [metrics[f"test_r2_d{d}"] for d in DEGREES]
    best, worst = max(range(len(DEGREES)), key=test.__getitem__), min(range(len(DEGREES)), key=test.__getitem__)
    metrics.update({"min_train_r2": min(train), "max_train_r2": max(train), "best_test_r2": test[best],
                    "best_degree": DEGREES[best], "worst_test_r2": test[worst], "worst_degree": DEGREES[worst]})

    with run.figure("r2", ncols=2) as (fig, axes):
        axes[0].plot(DEGREES, train, "o-", label="training data")
        axes[0].plot(DEGREES, test, "s-", label="held-out data")
        axes[0].axhline(0, color="k", lw=0.8)
        axes[0].set(xlabel="polynomial degree", ylabel="R²", title="R² of least-squares fits",
                    ylim=(max(-2.0, min(test) - 0.1), 1.05))
        axes[0].legend()
        grid = torch.linspace(-1, 1, 400, dtype=torch.float64)
        axes[1].scatter(x, y, s=12, color="k", label="training points")
        for degree in (DEGREES[best], DEGREES[worst]):
            axes[1].plot(grid, predict(grid, fits[degree]), label=f"degree {degree}")
        axes[1].set(ylim=(-2, 2), title="fits", xlabel="x")
        axes[1].legend(fontsize=8)
    return metrics


# ---------------------------------------------------------------- nlp-metrics/perplexity

@dataclass
class PerplexityConfig:
    train_chars: int = 1_000_000
    test_chars: int = 50_000
    max_order: int = 6  # character n-gram models of order 1..max_order
    k: float = 0.1  # add-k smoothing, the same for every order


def ngram_logits(train: torch.Tensor, test: torch.Tensor, order: int, vocab: int, k: float):
    """Add-k character n-gram model: logits log(count(context, v) + k) for each test position (N, V)
    and its next character (N,); the softmax of these logits is the smoothed conditional distribution."""
    n = order - 1

    def contexts(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.zeros(len(ids) - n, dtype=torch.long)
        for i in range(n):  # the previous n characters as one base-V number
            c = c * vocab + ids[i:len(ids) - n + i]
        return c, ids[n:]

    ctx, nxt = contexts(train)
    seen, counts = torch.unique(ctx * vocab + nxt, return_counts=True)  # sorted (context, next) keys
    test_ctx, test_next = contexts(test)
    query = test_ctx[:, None] * vocab + torch.arange(vocab)[None]  # (N, V) every possible next character
    at = torch.searchsorted(seen, query).clamp_max(len(seen) - 1)
    count = torch.where(seen[at] == query, counts[at], 0).double()
    # p(v \mid c) = \frac{\#(c, v) + k}{\#(c) + kV} = \mathrm{softmax}_v \log(\#(c, v) + k)
    return torch.log(count + k), test_next


@lab(
    "nlp-metrics/perplexity",
    card="nlp-metrics",
    config=PerplexityConfig,
    scales={"quick": {"train_chars": 100_000, "test_chars": 5_000, "max_order": 3}, "default": {},
            "full": {"train_chars": 4_000_000, "test_chars": 400_000, "max_order": 8}},
    goals=[Goal("best_ppl", "<=", 8.0)],
    claims=[
        Check(
            "nlp-metrics-perplexity",
            lambda m: abs(m["uniform_ppl"] - m["vocab"]) < 1e-6 * m["vocab"] and m["kendall_tau"] > 0,
            "uniform guessing over {vocab} characters gives perplexity {uniform_ppl:.4f}; character n-gram models "
            "of order 1 to {max_order} on Shakespeare reach {unigram_ppl:.2f} down to {best_ppl:.2f} (order "
            "{best_ppl_order}); lower perplexity goes with higher next-character accuracy in most model pairs "
            "(Kendall tau {kendall_tau:.2f}; counted as > 0); the lowest perplexity (order {best_ppl_order}) predicts "
            "{best_ppl_acc:.3f} of the next characters, the most accurate model (order {best_acc_order}) {best_acc:.3f}",
        ),
    ],
    budget_s=20,
    threads=1,
)
def perplexity(run, cfg: PerplexityConfig) -> dict:
    """Perplexity and next-character accuracy of uniform and n-gram character models on held-out Shakespeare."""
    text = shakespeare_text().text
    chars = CharVocab(text)
    vocab = len(chars)
    ids = chars.encode(text[: cfg.train_chars + cfg.test_chars])
    train, test = ids[: cfg.train_chars], ids[cfg.train_chars:]
    models = {0: (torch.zeros(len(test), vocab, dtype=torch.float64), test)}  # uniform: all logits equal
    for order in run.progress(range(1, cfg.max_order + 1), desc="n-gram models"):
        # the test part with the order - 1 characters before it: every model predicts the same characters
        models[order] = ngram_logits(train, ids[cfg.train_chars - order + 1:], order, vocab, cfg.k)
    ppl, acc = {}, {}
    for order, (logits, target) in models.items():
        ppl[order] = M.perplexity(logits, target).item()
        acc[order] = (logits.argmax(-1) == target).double().mean().item()
        run.log(order, ppl=ppl[order], acc=acc[order])
    # Kendall's tau between -PPL and accuracy: (concordant - discordant) / pairs
    orders = list(models)
    pairs = [(a, b) for i, a in enumerate(orders) for b in orders[i + 1:]]
    product = [(ppl[a] - ppl[b]) * (acc[a] - acc[b]) for a, b in pairs]  # < 0: lower perplexity, higher accuracy
    agree = sum((p < 0) - (p > 0) for p in product)
    best_ppl, best_acc = min(orders[1:], key=ppl.get), max(orders[1:], key=acc.get)
    metrics = {
        "vocab": vocab, "max_order": cfg.max_order, "uniform_ppl": ppl[0], "unigram_ppl": ppl[1],
        "best_ppl": ppl[best_ppl], "best_ppl_order": best_ppl, "best_ppl_acc": acc[best_ppl],
        "best_acc": acc[best_acc], "best_acc_order": best_acc, "kendall_tau": agree / len(pairs),
        **{f"ppl_order{o}": ppl[o] for o in orders[1:]}, **{f"acc_order{o}": acc[o] for o in orders[1:]},
    }

    with run.figure("perplexity") as (fig, ax):
        ax.semilogy(orders, [ppl[o] for o in orders], "o-", color="C0")
        ax.set(xlabel="n-gram order (0 = uniform)", ylabel="test perplexity", title="character models, Shakespeare")
        twin = ax.twinx()
        twin.plot(orders, [acc[o] for o in orders], "s--", color="C1")
        twin.set_ylabel("next-character accuracy", color="C1")
    return metrics


# ---------------------------------------------------------------- ndcg/position-sensitivity

@dataclass
class NdcgConfig:
    queries: int = 1000
    items: int = 20
    k: int = 10


@lab(
    "ndcg/position-sensitivity",
    card="ndcg",
    config=NdcgConfig,
    scales={"quick": {"queries": 50}, "default": {}, "full": {"queries": 100_000}},
    claims=[
        Check(
            "ndcg-position",
            lambda m: m["precision_spread"] == 0 and m["ndcg_decreasing"] == 1 and m["drop_share"] == 1,
            "moving each query's most relevant item from rank 1 to rank {k} leaves precision@{k} at "
            "{precision_at_k:.3f} (spread {precision_spread:.1e}) but lowers mean NDCG@{k} from {ndcg_top:.3f} to "
            "{ndcg_bottom:.3f} step by step (linear gain: to {linear_ndcg_bottom:.3f}); NDCG fell in "
            "{drop_share:.0%} of the {queries} queries where the move passes a less relevant item",
        ),
    ],
    budget_s=10,
    threads=1,
)
def position_sensitivity(run, cfg: NdcgConfig) -> dict:
    """NDCG@k and precision@k as the most relevant item slides down the top k of an ideal ranking."""
    g = torch.Generator().manual_seed(run.seed)
    grades = torch.tensor([0.5, 0.25, 0.15, 0.1])  # P(relevance = 0, 1, 2, 3)
    rel = torch.multinomial(grades, cfg.queries * cfg.items, replacement=True, generator=g).reshape(
        cfg.queries, cfg.items).sort(dim=1, descending=True).values.double()  # (Q, L), ideal order
    curves: dict[str, list[float]] = {"exponential": [], "linear": [], "precision": []}
    per_query = []  # (Q,) NDCG@k of each query, for each rank of the moved item
    for p in range(cfg.k):
        order = list(range(1, p + 1)) + [0] + list(range(p + 1, cfg.items))  # item 0 moved to rank p + 1
        ranked = rel[:, order]
        scores = torch.arange(cfg.items, 0, -1, dtype=torch.float64).expand_as(ranked)  # rank i scores L - i
        per_query.append(M.ndcg(ranked, scores, k=cfg.k, reduction="none"))
        curves["exponential"].append(per_query[-1].mean().item())
        curves["linear"].append(M.ndcg(ranked, scores, k=cfg.k, gain="linear").item())
        # precision@k: the share of the top k with relevance > 0
        curves["precision"].append((ranked[:, : cfg.k] > 0).double().mean().item())
        run.log(p, ndcg=curves["exponential"][-1], precision=curves["precision"][-1])
    passes_lower = rel[:, 0] > rel[:, 1: cfg.k].min(1).values  # the move passes a less relevant item
    dropped = per_query[-1] < per_query[0]
    e = curves["exponential"]
    metrics = {
        "k": cfg.k, "queries": cfg.queries, "ndcg_top": e[0], "ndcg_bottom": e[-1],
        "linear_ndcg_bottom": curves["linear"][-1], "precision_at_k": curves["precision"][0],
        "precision_spread": max(curves["precision"]) - min(curves["precision"]),
        "ndcg_decreasing": float(all(a > b for a, b in zip(e, e[1:]))),
        "drop_share": dropped[passes_lower].double().mean().item(),
    }

    with run.figure("ndcg") as (fig, ax):
        ranks = range(1, cfg.k + 1)
        ax.plot(ranks, e, "o-", label="NDCG@k, gain 2^rel - 1")
        ax.plot(ranks, curves["linear"], "s-", label="NDCG@k, gain rel")
        ax.plot(ranks, curves["precision"], "k--", label="precision@k")
        ax.set(xlabel="rank of the most relevant item", ylim=(0, 1.05), title=f"{cfg.queries} queries, k = {cfg.k}")
        ax.legend(loc="lower left")
    return metrics
