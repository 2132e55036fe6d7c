"""Pre-training then fine-tuning: learn from unlabelled text first, so that few labels suffice.

A network is first trained on a self-supervised objective over plentiful unlabelled data (here
BERT's masked-LM on Shakespeare), then all its weights are trained further on a small labelled
task. Compared with the same network trained from random weights on the same labels, the
pre-trained one should reach a given accuracy with far fewer labelled examples.

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
from deepatlas.zoo.sequence.bert import (BERT, HELD_OUT, N_SPECIAL, TAIL_PLAYS, Classifier, encode_lines, finetune,
                                         play_lines, predict, pretrain_mlm)
from deepatlas.zoo.sequence.gpt import use_bf16


def scramble_line(line: str, generator: torch.Generator) -> str:
    """Shuffle the inner letters of every word of four or more letters, keeping its first and last
    ("Cmabrigde" reading): the characters a line is made of stay the same, its spelling does not."""
    out, word = [], []
    for ch in line + " ":
        if ch.isalpha():
            word.append(ch)
            continue
        if len(word) >= 4:
            inner = [word[1 + int(i)] for i in torch.randperm(len(word) - 2, generator=generator)]
            word = [word[0], *inner, word[-1]]
        out += word + [ch]
        word = []
    return "".join(out[:-1])


def scrambled_task(lines: list[str], generator: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """Each line kept as it is (label 0) or scrambled (label 1), half and half at random. Lines that
    no scrambling can change (no word with two different inner letters) are left out."""
    texts, labels = [], []
    for line in lines:
        changed = scramble_line(line, generator)
        tries = 0
        while changed == line and tries < 5:
            changed = scramble_line(line, generator)
            tries += 1
        if changed == line:
            continue
        flip = bool(torch.rand((), generator=generator) < 0.5)
        texts.append(changed if flip else line)
        labels.append(int(flip))
    return texts, torch.tensor(labels)


@dataclass
class LabelConfig:
    d_model: int = 64
    n_layer: int = 3
    n_head: int = 4
    max_len: int = 72
    pretrain_steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    label_counts: str = "50,200,1000"  # labelled training lines per fine-tuning run
    finetune_steps: int = 120  # per run, whatever the number of labels
    finetune_lr: float = 5e-4
    n_test: int = 1000
    bf16: str = "auto"  # bfloat16 autocast where the hardware has it (see gpt.use_bf16)
    pooling: str = "cls"  # what the classifier reads: "cls" or "mean" (see bert.Classifier)


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
    goals=[Goal("pretrained_acc_min", ">=", 0.8)],
    claims=[
        Check(
            "pretrain-finetune-label-efficiency",
            lambda m: m["min_gain"] > 0 and m["pretrained_acc_min"] >= m["scratch_acc_max"],
            "spotting letter-scrambled lines of 4 held-out plays: fine-tuned on {min_labels} labelled lines, the "
            "masked-LM pre-trained encoder reaches {pretrained_acc_min:.3f} against {scratch_acc_min:.3f} for the "
            "same encoder from random weights; on {max_labels} lines {pretrained_acc_max:.3f} against "
            "{scratch_acc_max:.3f} (smallest gain over all label counts {min_gain:+.3f}); so {min_labels} labels "
            "with pre-training against {max_labels} without: {pretrained_acc_min:.3f} vs {scratch_acc_max:.3f}",
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
    lines, _ = play_lines(text, TAIL_PLAYS, cut)
    data_g = torch.Generator().manual_seed(0)  # the task's data are the same for every seed
    order = torch.randperm(len(lines), generator=data_g).tolist()
    need = cfg.n_test + max(counts)
    texts, y = scrambled_task([lines[i] for i in order[:2 * need]], data_g)  # a few lines cannot be scrambled
    if len(texts) < need:
        raise ValueError(f"only {len(texts)} usable lines for {cfg.n_test} test and {max(counts)} training lines")
    x = encode_lines(texts[:need], vocab, cfg.max_len)
    x_test, y_test = x[:cfg.n_test], y[:cfg.n_test]
    x_pool, y_pool = x[cfg.n_test:], y[cfg.n_test:need]

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
               title="spotting scrambled lines", ylim=(0.4, 1.02))
        ax.legend()
