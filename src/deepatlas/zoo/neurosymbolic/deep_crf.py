"""BiLSTM-CRF: a bidirectional LSTM scores every label at every position, a linear-chain CRF scores the sequence.

A softmax tagger decides each position on its own, so nothing stops it from writing I-PER right
after O. The CRF adds a learned score A_{i,j} for every label transition and normalises over whole
label sequences: training maximises the exact conditional log-likelihood, with the partition
function from the forward algorithm (a log-sum-exp recursion over positions), and decoding finds
the best sequence with the Viterbi algorithm (the same recursion with max). Both cost O(T K^2).

    s(x, y) = \\sum_t (A_{y_{t-1}, y_t} + P_{t, y_t}),\\quad
    \\log p(y | x) = s(x, y) - \\log \\sum_{y'} \\exp s(x, y'),\\quad y^* = \\arg\\max_y s(x, y)

Huang, Xu & Yu, "Bidirectional LSTM-CRF Models for Sequence Tagging", arXiv 1508.01991 (2015);
Lafferty, McCallum & Pereira, "Conditional Random Fields", ICML 2001. Start and end scores follow
pytorch-crf's parametrisation (start_transitions, end_transitions, transitions[i, j] for i -> j),
so the tests compare with it directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.span_tagging import invalid_sequences, span_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.recurrent import Recurrent
from deepatlas.registry import register_model


class CRF(nn.Module):
    """Linear-chain CRF over K tags: emissions (B, T, K) from any network, tags (B, T)."""

    def __init__(self, num_tags: int):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"CRF needs num_tags >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))  # (K,)
        self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))  # (K,)
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))  # (K, K) i -> j

    def _check(self, emissions: torch.Tensor, tags: torch.Tensor | None = None) -> None:
        if emissions.dim() != 3 or emissions.shape[2] != self.num_tags:
            raise ValueError(f"emissions must be (B, T, {self.num_tags}), got {tuple(emissions.shape)}")
        if tags is not None and tags.shape != emissions.shape[:2]:
            raise ValueError(f"tags must be (B, T) = {tuple(emissions.shape[:2])}, got {tuple(tags.shape)}")

    def score(self, emissions: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:  # -> (B,)
        self._check(emissions, tags)
        # s(x, y) = \pi_{y_1} + \sum_t P_{t, y_t} + \sum_{t>1} A_{y_{t-1}, y_t} + \eta_{y_T}
        emit = emissions.gather(2, tags[..., None])[..., 0].sum(1)  # (B,)
        trans = self.transitions[tags[:, :-1], tags[:, 1:]].sum(1)  # (B,)
        return self.start_transitions[tags[:, 0]] + emit + trans + self.end_transitions[tags[:, -1]]

    def log_partition(self, emissions: torch.Tensor) -> torch.Tensor:  # (B, T, K) -> (B,)
        """The forward algorithm: alpha_t(j) = log sum_i exp(alpha_{t-1}(i) + A_{i,j}) + P_{t,j}."""
        self._check(emissions)
        alpha = self.start_transitions + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            # \alpha_t(j) = \log\sum_i \exp(\alpha_{t-1}(i) + A_{ij}) + P_{tj}
            alpha = torch.logsumexp(alpha[:, :, None] + self.transitions, dim=1) + emissions[:, t]
        # \log Z = \log\sum_j \exp(\alpha_T(j) + \eta_j)
        return torch.logsumexp(alpha + self.end_transitions, dim=1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """Mean negative conditional log-likelihood: log Z(x) - s(x, y)."""
        return (self.log_partition(emissions) - self.score(emissions, tags)).mean()

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor) -> torch.Tensor:  # (B, T, K) -> (B, T) best tags
        self._check(emissions)
        delta = self.start_transitions + emissions[:, 0]  # (B, K)
        back = []
        for t in range(1, emissions.shape[1]):
            # \delta_t(j) = \max_i (\delta_{t-1}(i) + A_{ij}) + P_{tj}
            best, arg = (delta[:, :, None] + self.transitions).max(dim=1)  # (B, K) each
            back.append(arg)
            delta = best + emissions[:, t]
        tag = (delta + self.end_transitions).argmax(1)  # (B,)
        path = [tag]
        for arg in reversed(back):
            tag = arg.gather(1, tag[:, None])[:, 0]
            path.append(tag)
        return torch.stack(path[::-1], dim=1)


class BiLSTMTagger(nn.Module):
    """Embedding -> BiLSTM (deepatlas.nn.recurrent) -> linear emissions, with a CRF on top or not.

    forward(x (B, T)) -> {"emissions": (B, T, K)} and, with the CRF, "log_z": (B,) the log-partition.
    """

    def __init__(self, vocab_size: int, num_tags: int, embed: int = 16, hidden: int = 32, crf: bool = True):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = Recurrent("lstm", embed, hidden, bidirectional=True, fused=True)
        self.proj = nn.Linear(2 * hidden, num_tags)
        self.crf = CRF(num_tags) if crf else None

    def emissions(self, x: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, K)
        h, _ = self.lstm(self.embed(x))  # (B, T, 2H)
        return self.proj(h)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        P = self.emissions(x)
        return {"emissions": P} if self.crf is None else {"emissions": P, "log_z": self.crf.log_partition(P)}

    def loss(self, x: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        P = self.emissions(x)
        if self.crf is None:
            # \mathcal{L} = -\frac{1}{BT}\sum_{b,t} \log \mathrm{softmax}(P_{bt})_{y_{bt}}
            return F.cross_entropy(P.flatten(0, 1), tags.flatten())
        # \mathcal{L} = \log Z(x) - s(x, y)
        return self.crf.nll(P, tags)

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T)
        P = self.emissions(x)
        return P.argmax(-1) if self.crf is None else self.crf.viterbi(P)


@register_model("bilstm-crf", card="deep-crf", example=lambda: (torch.randint(0, 10, (2, 7)),))
def bilstm_crf(vocab_size: int = 10, num_tags: int = 5, embed: int = 8, hidden: int = 8) -> BiLSTMTagger:
    return BiLSTMTagger(vocab_size, num_tags, embed, hidden, crf=True)


# --- deep-crf/label-constraints: the CRF against a softmax on the same BiLSTM ------------------

@dataclass
class ConstraintsConfig:
    n_train: int = 1000
    n_test: int = 1000
    length: int = 24
    max_span: int = 8
    p_hidden: float = 0.2  # spans whose type cue is left out: their type can only be guessed, consistently
    hidden: int = 16
    epochs: int = 8
    batch_size: int = 32
    lr: float = 0.01  # Adam


@lab(
    "deep-crf/label-constraints",
    card="deep-crf",
    config=ConstraintsConfig,
    scales={"quick": {"n_train": 200, "n_test": 200, "epochs": 2}, "default": {},
            "full": {"n_train": 5000, "epochs": 20, "hidden": 64}},
    goals=[Goal("seq_acc_gain", ">", 0.0), Goal("crf_invalid_rate", "<=", 0.01)],
    claims=[
        Check(
            "deep-crf-structured-output",
            lambda m: m["crf_seq_acc"] > m["softmax_seq_acc"],
            "typed spans of up to {max_span} tokens whose type is named by one cue inside (left out of a "
            "fraction {p_hidden} of the spans): the BiLSTM-CRF tags "
            "{crf_seq_acc:.3f} of {n_test} held-out sequences entirely right against {softmax_seq_acc:.3f} for "
            "the same BiLSTM with a softmax (token accuracy {crf_token_acc:.4f} vs {softmax_token_acc:.4f}); "
            "{crf_invalid_rate:.3f} vs {softmax_invalid_rate:.3f} of their outputs break a BIO transition rule",
        ),
    ],
    budget_s=90,
    threads=1,
)
def label_constraints(run, cfg: ConstraintsConfig) -> dict:
    """BiLSTM-CRF against the same BiLSTM with a per-token softmax on typed-span tagging."""
    data = span_split(cfg.n_train, cfg.n_test, seed=run.seed, length=cfg.length, max_span=cfg.max_span,
                      p_hidden=cfg.p_hidden).to(run.device)
    n_types = data.meta["n_types"]
    metrics: dict = {"max_span": cfg.max_span, "n_test": cfg.n_test, "p_hidden": cfg.p_hidden}
    curves = {}
    for name, use_crf in (("softmax", False), ("crf", True)):
        torch.manual_seed(run.seed)
        model = BiLSTMTagger(data.meta["vocab_size"], data.meta["n_tags"], hidden=cfg.hidden, crf=use_crf).to(run.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        g = torch.Generator().manual_seed(run.seed)
        curves[name] = []
        t0 = time.perf_counter()
        steps = len(data.x_train) // cfg.batch_size
        for epoch in run.progress(range(cfg.epochs), desc=name):
            order = torch.randperm(len(data.x_train), generator=g).to(run.device)
            for i in range(steps):
                idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                loss = model.loss(data.x_train[idx], data.y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            run.log(epoch + 1, **{f"{name}_loss": loss})
            pred = model.decode(data.x_test)
            curves[name].append((pred == data.y_test).all(1).float().mean().item())
        metrics[f"{name}_train_s"] = time.perf_counter() - t0
        metrics[f"{name}_seq_acc"] = curves[name][-1]
        metrics[f"{name}_token_acc"] = (pred == data.y_test).float().mean().item()
        metrics[f"{name}_invalid_rate"] = invalid_sequences(pred.cpu(), n_types).float().mean().item()
    metrics["seq_acc_gain"] = metrics["crf_seq_acc"] - metrics["softmax_seq_acc"]

    with run.figure("label_constraints", ncols=2) as (fig, (ax_c, ax_b)):
        for name in curves:
            ax_c.plot(range(1, cfg.epochs + 1), curves[name], "o-", label=name)
        ax_c.set(xlabel="epoch", ylabel="held-out sequence accuracy", title="all tags of a sequence right")
        ax_c.legend()
        names = ["softmax", "crf"]
        ax_b.bar([f"{n}\nseq acc" for n in names], [metrics[f"{n}_seq_acc"] for n in names], color=["C0", "C1"])
        ax_b.bar([f"{n}\ninvalid" for n in names], [metrics[f"{n}_invalid_rate"] for n in names],
                 color=["C0", "C1"], alpha=0.5)
        ax_b.set(ylim=(0, 1), title="sequence accuracy and invalid-transition rate")
    return metrics
