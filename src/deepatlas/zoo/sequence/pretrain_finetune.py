"""Pre-training then fine-tuning: learn from unlabelled text first, so that few labels suffice.

A network is first trained on a self-supervised objective over plentiful unlabelled data (here
BERT's masked-LM on Shakespeare), then all its weights are trained further on a small labelled
task. Compared with the same network trained from random weights on the same labels, the
pre-trained one should reach a given accuracy with far fewer labelled examples. The task here
tells real lines of held-out plays from lines whose words have their letters shuffled: a bag of
characters cannot see the difference, knowing how words are spelled can.

    \\theta_0 = \\arg\\min_\\theta \\mathbb E_{x \\sim \\mathcal D_u} \\mathcal L_{self}(x; \\theta)
    \\theta^* = \\arg\\min_{\\theta, \\phi} \\mathbb E_{(x, y) \\sim \\mathcal D_\\ell}
               \\mathcal L(h_\\phi(f_\\theta(x)), y)   \\text{starting from } \\theta_0

Dai & Le, "Semi-supervised Sequence Learning", NIPS 2015 (arXiv 1511.01432); Devlin et al.,
"BERT", NAACL 2019 (arXiv 1810.04805).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch

from deepatlas.data.real import CharVocab, shakespeare_text
from deepatlas.labs import Check, Goal, lab
from deepatlas.zoo.sequence.bert import (BERT, HELD_OUT, N_SPECIAL, Classifier, encode_lines, finetune, letter_task,
                                         predict, pretrain_mlm)
from deepatlas.zoo.sequence.gpt import use_bf16


@dataclass
class LabelConfig:
    d_model: int = 64
    n_layer: int = 3
    n_head: int = 4
    max_len: int = 72
    pretrain_steps: int = 700
    batch_size: int = 32
    lr: float = 2e-3
    label_counts: str = "50,200,1000"  # labelled training lines per fine-tuning run
    finetune_steps: int = 120  # per run, whatever the number of labels
    finetune_lr: float = 1e-3
    n_test: int = 1000
    bf16: str = "auto"  # bfloat16 autocast where the hardware has it (see gpt.use_bf16)
    pooling: str = "mean"  # what the classifier reads: "cls" or "mean" (see bert.Classifier)
    keep_ends: bool = False  # scramble only the inner letters of long words (True) or every letter (False)


@lab(
    "pretrain-finetune/label-efficiency",
    card="pretrain-finetune",
    config=LabelConfig,
    scales={
        "quick": {"d_model": 32, "n_layer": 1, "pretrain_steps": 20, "label_counts": "50,200",
                  "finetune_steps": 10, "n_test": 200},
        "default": {},
        "full": {"d_model": 128, "n_layer": 4, "pretrain_steps": 5000, "label_counts": "50,200,1000,5000",
                 "finetune_steps": 400},
    },
    goals=[Goal("gain_at_max", ">", 0.1), Goal("pretrained_acc_max", ">=", 0.8)],
    claims=[
        Check(
            "pretrain-finetune-label-efficiency",
            lambda m: m["gain_at_max"] > 0 and m["labels_to_match"] < m["max_labels"],
            "spotting lines of 4 held-out plays whose words have their letters shuffled (chance 0.5): fine-tuned "
            "on {max_labels} labelled lines, the masked-LM pre-trained encoder reaches {pretrained_acc_max:.3f} "
            "against {scratch_acc_max:.3f} for the same encoder from random weights (on {min_labels} lines: "
            "{pretrained_acc_min:.3f} against "
            "{scratch_acc_min:.3f}); the pre-trained model needs {labels_to_match} labels to match what the scratch "
            "model reaches with {max_labels} (a number above {max_labels} means it never does)",
        ),
    ],
    budget_s=120,
    threads=1,
)
def label_efficiency(run, cfg: LabelConfig) -> dict:
    """Accuracy against the number of labels, with and without masked-LM pre-training."""
    t0 = time.perf_counter()
    bf16 = use_bf16(cfg.bf16, run.device)
    counts = sorted(int(c) for c in cfg.label_counts.split(","))
    text = shakespeare_text().text
    vocab = CharVocab(text)
    cut = int(len(text) * (1 - HELD_OUT))
    need = cfg.n_test + max(counts)
    texts, y = letter_task(text, cut, need, cfg.keep_ends)
    x = encode_lines(texts, vocab, cfg.max_len)
    x_test, y_test = x[:cfg.n_test], y[:cfg.n_test]
    x_pool, y_pool = x[cfg.n_test:], y[cfg.n_test:]

    g = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)
    V = len(vocab) + N_SPECIAL
    pretrained = BERT(V, cfg.max_len, cfg.n_layer, cfg.n_head, cfg.d_model).to(run.device)
    scratch = copy.deepcopy(pretrained)  # the same initial weights, never pre-trained
    pretrain_mlm(run, pretrained, vocab.encode(text[:cut]) + N_SPECIAL, cfg.pretrain_steps, cfg.batch_size,
                 cfg.lr, g, bf16=bf16)

    acc = {"pretrained": [], "scratch": []}
    for n in counts:
        for name, encoder in [("pretrained", pretrained), ("scratch", scratch)]:
            torch.manual_seed(run.seed + n)  # the same head initialisation for both
            clf = Classifier(copy.deepcopy(encoder), 2, pooling=cfg.pooling).to(run.device)
            epochs = max(1, round(cfg.finetune_steps / max(1, n // cfg.batch_size)))
            finetune(run, clf, x_pool[:n], y_pool[:n], epochs, min(cfg.batch_size, n), cfg.finetune_lr, g,
                     f"{name}_{n}", bf16)
            acc[name].append((predict(clf, x_test, run.device) == y_test).float().mean().item())

    _plot_labels(run, counts, acc)
    metrics = {f"{name}_acc_{n}": a for name in acc for n, a in zip(counts, acc[name])}
    metrics.update({
        "pretrained_acc_min": acc["pretrained"][0], "scratch_acc_min": acc["scratch"][0],
        "pretrained_acc_max": acc["pretrained"][-1], "scratch_acc_max": acc["scratch"][-1],
        "min_gain": min(p - s for p, s in zip(acc["pretrained"], acc["scratch"])),
        "gain_at_max": acc["pretrained"][-1] - acc["scratch"][-1],
        # the fewest labels with which the pre-trained model reaches the scratch model's best-labelled accuracy
        "labels_to_match": min([n for n, a in zip(counts, acc["pretrained"]) if a >= acc["scratch"][-1]],
                               default=2 * counts[-1]),
        "min_labels": counts[0], "max_labels": counts[-1], "n_test": len(y_test), "bf16": int(bf16),
        "seconds": time.perf_counter() - t0,
    })
    return metrics


def _plot_labels(run, counts: list[int], acc: dict) -> None:
    with run.figure("label_efficiency") as (fig, ax):
        for name, marker in [("pretrained", "o-"), ("scratch", "s--")]:
            ax.plot(counts, acc[name], marker, label="masked-LM pre-trained" if name == "pretrained" else
                    "from random weights")
        ax.axhline(0.5, color="grey", ls=":", lw=1, label="chance")
        ax.set(xscale="log", xlabel="labelled training lines", ylabel="test accuracy",
               title="spotting lines with shuffled letters", ylim=(0.4, 1.02))
        ax.legend()
