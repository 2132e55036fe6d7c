"""End-to-end memory network: soft attention over a memory of sentences, read in several hops.

Each sentence of a story is embedded twice, as a memory vector m_i (matched against the question)
and an output vector c_i (what a read returns). A hop attends over the memories with the current
question state u, reads o = sum_i p_i c_i and adds it to u; stacked hops let the model chain
facts. Because the attention is soft, the whole model trains from question-answer pairs alone,
where the original memory network needed the supporting facts labelled.

    p_i = \\mathrm{softmax}_i(u^{k\\top} m_i),   o^k = \\sum_i p_i c_i,   u^{k+1} = u^k + o^k,
    \\hat a = \\mathrm{softmax}(W u^{K+1})

Sukhbaatar, Szlam, Weston & Fergus, "End-To-End Memory Networks", NIPS 2015 (arXiv 1503.08895).
Sentences are bags of words weighted by the paper's position encoding, with its temporal
encoding, and the "adjacent" weight tying: A^{k+1} = C^k, B = A^1, W^T = C^K.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.babi import age, babi_split, sentence_mask
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.grad import clip_grad_norm_
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.memory.dmn import DMN
from deepatlas.zoo.memory.memory_network import MemNN, margin_ranking_loss


def position_encoding(words: torch.Tensor, d: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The paper's position weights for word ids (..., J) -> (..., J, d); zero on padding.

    J counts the real words of each sentence, so a sentence's encoding ignores its padding."""
    mask = words.ne(0)
    J = mask.sum(-1, keepdim=True).clamp(min=1).to(dtype)[..., None]  # (..., 1, 1)
    j = mask.cumsum(-1).to(J.dtype)[..., None]  # (..., J, 1): 1, 2, ... along the real words
    k = torch.arange(1, d + 1, dtype=J.dtype, device=words.device)  # (d,)
    # l_{kj} = (1 - j/J) - (k/d)(1 - 2j/J)
    ell = (1 - j / J) - (k / d) * (1 - 2 * j / J)
    return ell * mask[..., None]


class MemN2N(nn.Module):
    """MemN2N with K hops and adjacent tying: K + 1 word embeddings E_0..E_K and temporal tables
    T_0..T_K, hop k using A^k = E_{k-1}, C^k = E_k. forward(story (B, S, W), question (B, Q)) ->
    answer logits (B, vocab); `self.attention` keeps each hop's p, (B, K, S), of the last call."""

    def __init__(self, vocab_size: int, d: int = 32, hops: int = 3, memory_size: int = 10):
        super().__init__()
        if min(vocab_size, d, hops, memory_size) < 1:
            raise ValueError("MemN2N needs vocab_size, d, hops and memory_size >= 1")
        self.d, self.hops = d, hops
        self.E = nn.ModuleList(nn.Embedding(vocab_size, d, padding_idx=0) for _ in range(hops + 1))
        self.T = nn.ParameterList(nn.Parameter(torch.empty(memory_size, d)) for _ in range(hops + 1))
        for p in [*(e.weight for e in self.E), *self.T]:
            nn.init.normal_(p, std=0.1)  # the paper's initialisation
        with torch.no_grad():
            for e in self.E:
                e.weight[0] = 0
        self.attention = torch.zeros(0)

    def embed(self, k: int, words: torch.Tensor) -> torch.Tensor:
        """Sum of E_k word vectors over the last axis, weighted by position: (..., J) -> (..., d)."""
        e = self.E[k](words)  # (..., J, d)
        return (e * position_encoding(words, self.d, e.dtype)).sum(-2)

    def memories(self, k: int, story: torch.Tensor, when: torch.Tensor) -> torch.Tensor:
        """Embedding k of every sentence plus its temporal vector: (B, S, W) -> (B, S, d)."""
        # m_i = \sum_j l_j \odot A x_{ij} + T_A(i)
        return self.embed(k, story) + self.T[k][when]

    def forward(self, story: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        if story.shape[1] > self.T[0].shape[0]:
            raise ValueError(f"story of {story.shape[1]} sentences exceeds memory_size {self.T[0].shape[0]}")
        mask = sentence_mask(story)  # (B, S)
        when = age(mask)  # (B, S)
        # u^1 = \sum_j l_j \odot B q_j,  B = A^1
        u = self.embed(0, question)  # (B, d)
        c = self.memories(0, story, when)
        attention = []
        for k in range(1, self.hops + 1):
            m = c  # adjacent tying: A^{k} = C^{k-1}
            c = self.memories(k, story, when)  # (B, S, d)
            # p_i = \mathrm{softmax}_i(u^\top m_i)   over the slots that hold a sentence
            p = torch.softmax(torch.einsum("bsd,bd->bs", m, u).masked_fill(~mask, float("-inf")), dim=1)
            # o = \sum_i p_i c_i,   u^{k+1} = u^k + o^k
            u = u + torch.einsum("bs,bsd->bd", p, c)
            attention.append(p)
        self.attention = torch.stack(attention, 1).detach()  # (B, K, S)
        # \hat a = \mathrm{softmax}(W u^{K+1}),  W^\top = C^K
        return u @ self.E[-1].weight.T


@register_model("memn2n", card="memn2n",
                example=lambda: (torch.randint(1, 20, (2, 10, 6)), torch.randint(1, 20, (2, 3))))
def memn2n(vocab_size: int = 20, **kw) -> MemN2N:
    return MemN2N(vocab_size, **kw)


# --- memn2n/babi: single-supporting-fact questions, with and without the supporting facts --------

@dataclass
class BabiConfig:
    task: int = 1
    n_train: int = 5000
    n_test: int = 1000
    max_sentences: int = 10
    d: int = 32
    hops: int = 3
    epochs: int = 2  # MemN2N and the memory network
    dmn_epochs: int = 2
    dmn_passes: int = 2
    batch_size: int = 32
    lr: float = 0.01  # Adam, for MemN2N and the memory network
    dmn_lr: float = 0.003  # the DMN's GRUs sometimes stall at 0.01
    clip: float = 40.0  # gradient norm, as in the paper


def fit_babi(run, name: str, net: nn.Module, loss_fn, train, cfg: BabiConfig, epochs: int, lr: float,
             g: torch.Generator) -> None:
    """Minibatch Adam over the training stories; loss_fn(net, batch) -> scalar loss."""
    opt = Adam(net.parameters(), lr=lr)
    steps_per_epoch = len(train) // cfg.batch_size
    step = 0
    for _ in run.progress(range(epochs), desc=name):
        order = torch.randperm(len(train), generator=g).to(run.device)
        total = torch.zeros((), device=run.device)
        for i in range(steps_per_epoch):
            loss = loss_fn(net, train[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]])
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(net.parameters(), cfg.clip)
            opt.step()
            total += loss.detach()
            step += 1
        run.log(step, **{f"{name}_loss": total / steps_per_epoch})


def support_hits(attention: torch.Tensor, support: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per hop: how often the supporting sentence gets the most attention, and its mean weight.

    attention (B, K, S), support (B,) -> two lists of K floats."""
    on_support = attention.gather(2, support[:, None, None].expand(-1, attention.shape[1], 1))[..., 0]  # (B, K)
    hit = attention.argmax(2).eq(support[:, None]).float()  # (B, K)
    return hit.mean(0).tolist(), on_support.mean(0).tolist()


@lab(
    "memn2n/babi",
    card="memn2n",
    config=BabiConfig,
    scales={
        "quick": {"n_train": 256, "n_test": 64, "epochs": 1, "dmn_epochs": 1},
        "default": {},
        "full": {"n_train": 20000, "n_test": 2000, "max_sentences": 20, "epochs": 10, "dmn_epochs": 10},
    },
    goals=[Goal("memn2n_acc", ">=", 0.95)],
    claims=[
        Check(
            "memn2n-babi",
            lambda m: m["memn2n_acc"] >= 0.95 and m["memn2n_best_hop_hit"] >= 0.9,
            "on {n_test} unseen single-supporting-fact stories MemN2N answers {memn2n_acc:.3f} correctly, trained "
            "on answers only; its hop {memn2n_best_hop} puts the most attention on the supporting sentence for "
            "{memn2n_best_hop_hit:.3f} of the questions (mean weight {memn2n_best_hop_weight:.2f}). Rule: accuracy "
            ">= 0.95 and some hop finds the supporting sentence for >= 0.9 of questions. For comparison, trained "
            "with the supporting facts: memory network {memnn_acc:.3f}, DMN {dmn_acc:.3f}",
        ),
    ],
    budget_s=30,
    threads=1,
)
def babi(run, cfg: BabiConfig) -> dict:
    """MemN2N on generated bAbI single-supporting-fact questions, beside a memory network and a DMN."""
    torch.manual_seed(run.seed)
    train, test = babi_split(cfg.task, cfg.n_train, cfg.n_test, seed=run.seed, max_sentences=cfg.max_sentences)
    train, test = train.to(run.device), test.to(run.device)
    V, g = len(train.vocab), torch.Generator().manual_seed(run.seed)
    support = test.support[:, -1]  # the fact that holds the answer
    metrics: dict = {"task": cfg.task, "n_train": len(train), "n_test": len(test), "hops": cfg.hops}

    # MemN2N: answers only, \mathcal{L} = -\log \hat a_{y}
    memn2n = MemN2N(V, cfg.d, cfg.hops, cfg.max_sentences).to(run.device)
    fit_babi(run, "memn2n", memn2n, lambda net, b: F.cross_entropy(net(b.story, b.question), b.answer),
             train, cfg, cfg.epochs, cfg.lr, g)
    # memory network: margin ranking on the supporting fact and on the answer
    memnn = MemNN(V, cfg.d, cfg.max_sentences).to(run.device)

    def memnn_loss(net, b):
        answer, memory = net(b.story, b.question, b.support[:, -1])
        return margin_ranking_loss(memory, b.support[:, -1]) + margin_ranking_loss(answer, b.answer)

    fit_babi(run, "memnn", memnn, memnn_loss, train, cfg, cfg.epochs, cfg.lr, g)
    # DMN: the answer and, as in the paper, its first pass's gates on the supporting fact
    dmn = DMN(V, cfg.d, cfg.dmn_passes).to(run.device)

    def dmn_loss(net, b):
        answer, gates = net(b.story, b.question)
        return F.cross_entropy(answer, b.answer) + F.nll_loss(gates[:, 0].clamp_min(1e-9).log(), b.support[:, -1])

    fit_babi(run, "dmn", dmn, dmn_loss, train, cfg, cfg.dmn_epochs, cfg.dmn_lr, g)

    with torch.no_grad():
        metrics["memn2n_acc"] = (memn2n(test.story, test.question).argmax(1) == test.answer).float().mean().item()
        attention = memn2n.attention  # (B, K, S)
        answer, memory = memnn(test.story, test.question)
        metrics["memnn_acc"] = (answer.argmax(1) == test.answer).float().mean().item()
        metrics["memnn_support_acc"] = (memory.argmax(1) == support).float().mean().item()
        answer, gates = dmn(test.story, test.question)
        metrics["dmn_acc"] = (answer.argmax(1) == test.answer).float().mean().item()
    hits, weights = support_hits(attention, support)
    for k, (hit, weight) in enumerate(zip(hits, weights), start=1):
        metrics[f"memn2n_hop{k}_hit"], metrics[f"memn2n_hop{k}_weight"] = hit, weight
    best = max(range(len(hits)), key=hits.__getitem__)
    metrics.update(memn2n_best_hop=best + 1, memn2n_best_hop_hit=hits[best], memn2n_best_hop_weight=weights[best])
    dmn_hits, _ = support_hits(gates, support)
    metrics["dmn_pass1_hit"] = dmn_hits[0]
    _plot_babi(run, test, attention, gates, metrics)
    return metrics


def _plot_babi(run, test, attention: torch.Tensor, gates: torch.Tensor, metrics: dict) -> None:
    i = int(test.lengths.argmax())  # a long story, so that the attention has something to choose from
    n = int(test.lengths[i])
    sentences = [" ".join(test.vocab[w] for w in test.story[i, s].tolist() if w) for s in range(n)]
    question = " ".join(test.vocab[w] for w in test.question[i].tolist() if w)
    rows = torch.cat([attention[i, :, :n], gates[i, :, :n].detach()]).cpu()  # (K + passes, n)
    labels = [f"MemN2N hop {k + 1}" for k in range(attention.shape[1])] + \
             [f"DMN pass {k + 1}" for k in range(gates.shape[1])]
    with run.figure("babi_attention", ncols=2, size=(13, 4.2)) as (fig, (ax, ax_bar)):
        ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(n), [f"{s}: {t}" for s, t in enumerate(sentences)], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for s in test.support[i].tolist():
            ax.axvline(s, color="red", lw=1.5, ls="--")
        ax.set_title(f"{question}? -> {test.vocab[int(test.answer[i])]} (red: supporting fact)", fontsize=9)
        names = ["MemN2N", "memory network", "DMN"]
        ax_bar.bar(names, [metrics["memn2n_acc"], metrics["memnn_acc"], metrics["dmn_acc"]],
                   color=["C0", "C1", "C2"])
        ax_bar.axhline(0.95, color="grey", ls="--", lw=1, label="goal 0.95")
        ax_bar.set(ylim=(0, 1.02), ylabel="test accuracy",
                   title="answers only (MemN2N) vs supporting facts given (others)")
        ax_bar.legend(loc="lower right")
