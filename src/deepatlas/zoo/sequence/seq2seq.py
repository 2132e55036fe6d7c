"""Sequence-to-sequence encoder-decoder, with a fixed context vector or with attention.

An encoder RNN reads the source; a decoder RNN writes the target one token at a time, fed its own
previous token (the true one while training: teacher forcing; its own guess at test time: greedy
decoding). Without attention the decoder sees the source only through one fixed-size vector c, the
encoder's final states; with attention it recomputes a context c_t over all encoder states at each
step (Bahdanau: additive score of s_{t-1}; Luong: multiplicative score of s_t, then input feeding).

    fixed:     c = [\\overrightarrow{h}_S; \\overleftarrow{h}_1],   s_t = \\mathrm{GRU}([E y_{t-1}; c], s_{t-1})
    attention: c_t = \\sum_j \\alpha_{tj} h_j,   p(y_t \\mid y_{<t}, x) = \\mathrm{softmax}(W_o [s_t; c_t])

Sutskever, Vinyals & Le, "Sequence to Sequence Learning with Neural Networks", NIPS 2014
(arXiv 1409.3215); Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for
Statistical Machine Translation", EMNLP 2014 (arXiv 1406.1078); Bahdanau, Cho & Bengio, ICLR 2015
(arXiv 1409.0473); Luong, Pham & Manning, EMNLP 2015 (arXiv 1508.04025).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data import dates
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.recurrent import GRUCell, Recurrent
from deepatlas.optim.grad import clip_grad_norm_
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.sequence.bahdanau_attention import BahdanauAttention
from deepatlas.zoo.sequence.luong_attention import LuongAttention

ATTENTIONS = ("none", "bahdanau", "luong")


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first lengths[b] steps of each row of x (B, T, ...), leaving the padding in place.
    Its own inverse; it lets a backward RNN start at each sequence's last real token."""
    t = torch.arange(x.shape[1], device=x.device)  # (T,)
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return x.gather(1, idx.view(*idx.shape, *[1] * (x.dim() - 2)).expand_as(x))


class Encoder(nn.Module):
    """Embedding and a bidirectional GRU over padded sources: src (B, S) -> states (B, S, H), c (B, H).

    Each direction has H/2 units; h_j = [forward_j; backward_j]. The backward GRU reads each source
    from its own last character, so padding never enters the states of real positions or c."""

    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int, pad: int = 0):
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"hidden_size={hidden_size} must be even: half of it goes to each direction")
        self.pad = pad
        self.embed = nn.Embedding(vocab_size, emb_size)
        # fused: the same GRU parameters through torch's kernel (deepatlas.nn.recurrent tests the numbers)
        self.forward_rnn = Recurrent("gru", emb_size, hidden_size // 2, fused=True)
        self.backward_rnn = Recurrent("gru", emb_size, hidden_size // 2, fused=True)

    def forward(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = src != self.pad  # (B, S) True on real characters
        lengths = mask.sum(1)  # (B,)
        x = self.embed(src)  # (B, S, E)
        fwd, _ = self.forward_rnn(x)  # (B, S, H/2)
        bwd = reverse_padded(self.backward_rnn(reverse_padded(x, lengths))[0], lengths)  # (B, S, H/2)
        states = torch.cat([fwd, bwd], dim=2)  # (B, S, H)
        rows = torch.arange(len(src), device=src.device)
        # c = [\overrightarrow{h}_S; \overleftarrow{h}_1]: both directions' final states
        c = torch.cat([fwd[rows, lengths - 1], bwd[:, 0]], dim=1)  # (B, H)
        return states, c, mask


class Seq2Seq(nn.Module):
    """GRU encoder-decoder; attention "none" (the fixed vector c), "bahdanau" or "luong".

    forward(src (B, S), tgt_in (B, T)) -> (logits (B, T, V), weights (B, T, S) or None), where
    tgt_in is the target shifted right behind BOS (teacher forcing). `greedy(src, steps)` decodes."""

    def __init__(self, src_vocab: int = dates.SRC_VOCAB_SIZE, tgt_vocab: int = dates.TGT_VOCAB_SIZE,
                 emb_size: int = 32, hidden_size: int = 128, attention: str = "none",
                 luong_score: str = "dot", attn_size: int | None = None, pad: int = dates.PAD,
                 bos: int = dates.BOS):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTIONS)}")
        H = hidden_size
        self.attention, self.bos = attention, bos
        self.encoder = Encoder(src_vocab, emb_size, H, pad)
        self.embed = nn.Embedding(tgt_vocab, emb_size)
        self.init = nn.Linear(H, H)  # s_0 = \tanh(W_s c)
        # the decoder's second input: c (none), c_t (bahdanau) or the last attentional state (luong)
        self.cell = GRUCell(emb_size + H, H)
        if attention == "bahdanau":
            self.attn = BahdanauAttention(H, H, attn_size or H)
        elif attention == "luong":
            self.attn = LuongAttention(H, H, luong_score, attn_size)
            self.W_c = nn.Linear(2 * H, H, bias=False)
        self.out = nn.Linear(H if attention == "luong" else 2 * H, tgt_vocab)

    def start(self, src: torch.Tensor) -> dict:
        """Encode once: what every decoder step needs, and the initial state s_0 and feed."""
        states, c, mask = self.encoder(src)
        memory = {"states": states, "c": c, "mask": mask}
        if self.attention != "none":
            memory["projected"] = self.attn.project_keys(states)  # U_a h_j, computed once
        # s_0 = \tanh(W_s c)
        s = torch.tanh(self.init(c))  # (B, H)
        return {**memory, "s": s, "feed": torch.zeros_like(s)}

    def step(self, y_prev: torch.Tensor, mem: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One decoder step from the previous token y_prev (B,); updates mem["s"] and mem["feed"] and
        returns (logits (B, V), attention weights (B, S) or None)."""
        e = self.embed(y_prev)  # (B, E)
        s, alpha = mem["s"], None
        if self.attention == "luong":
            # s_t = \mathrm{GRU}([E y_{t-1}; \tilde h_{t-1}], s_{t-1})   (input feeding)
            s = self.cell(torch.cat([e, mem["feed"]], 1), s)
            context, alpha = self.attn(s, mem["states"], mem["mask"], mem["projected"])
            # \tilde h_t = \tanh(W_c [c_t; s_t])
            mem["feed"] = torch.tanh(self.W_c(torch.cat([context, s], 1)))
            logits = self.out(mem["feed"])
        else:
            if self.attention == "bahdanau":
                # c_t = \sum_j \alpha_{tj} h_j with \alpha_t from s_{t-1}
                context, alpha = self.attn(s, mem["states"], mem["mask"], mem["projected"])
            else:
                context = mem["c"]  # the same fixed vector at every step
            # s_t = \mathrm{GRU}([E y_{t-1}; c_t], s_{t-1})
            s = self.cell(torch.cat([e, context], 1), s)
            # p(y_t \mid y_{<t}, x) = \mathrm{softmax}(W_o [s_t; c_t])
            logits = self.out(torch.cat([s, context], 1))
        mem["s"] = s
        return logits, alpha

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mem = self.start(src)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            z, alpha = self.step(tgt_in[:, t], mem)
            logits.append(z)
            weights.append(alpha)
        return torch.stack(logits, 1), None if self.attention == "none" else torch.stack(weights, 1)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Greedy decoding: each step feeds back its own most likely token.
        Returns tokens (B, steps) and attention weights (B, steps, S) or None."""
        mem = self.start(src)
        y = torch.full((len(src),), self.bos, dtype=torch.int64, device=src.device)
        tokens, weights = [], []
        for _ in range(steps):
            z, alpha = self.step(y, mem)
            y = z.argmax(1)
            tokens.append(y)
            weights.append(alpha)
        return torch.stack(tokens, 1), None if self.attention == "none" else torch.stack(weights, 1)

    def extra_repr(self) -> str:
        return f"attention={self.attention}"


def _example():
    g = torch.Generator().manual_seed(0)
    src = torch.randint(1, dates.SRC_VOCAB_SIZE, (2, 9), generator=g)
    src[1, 6:] = dates.PAD  # a shorter second source
    return src, torch.randint(0, dates.TGT_VOCAB_SIZE, (2, 5), generator=g)


@register_model("seq2seq", card="seq2seq", example=_example)
def seq2seq(**kw) -> Seq2Seq:
    return Seq2Seq(attention="none", **kw)


@register_model("seq2seq_bahdanau", card="bahdanau-attention", example=_example)
def seq2seq_bahdanau(**kw) -> Seq2Seq:
    return Seq2Seq(attention="bahdanau", **kw)


@register_model("seq2seq_luong", card="luong-attention", example=_example)
def seq2seq_luong(**kw) -> Seq2Seq:
    return Seq2Seq(attention="luong", **kw)


# --- seq2seq/date-translation: the fixed vector against attention ---------------------------------

BUCKETS = {"short": (1, 10), "medium": (11, 20), "long": (21, dates.MAX_SRC_LEN)}  # source characters
DIGIT_FORMATS = ("dd/mm/yy", "yyyy.m.d", "d.m.yyyy", "yyyymmdd")  # every character is one to copy


@dataclass
class DateConfig:
    n_train: int = 20_000
    n_test: int = 2_000
    emb_size: int = 32
    hidden: int = 64  # decoder state and encoder state size (half per direction)
    steps: int = 500
    batch_size: int = 64
    lr: float = 3e-3  # Adam; gradients clipped to norm 1


def exact_match(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor, batch: int = 500):
    """Greedy decoding of every source: (per-example exact match (N,) bool, character accuracy)."""
    model.eval()
    hits, chars = [], []
    for i in range(0, len(src), batch):
        x = src[i:i + batch]
        x = x[:, :int((x != dates.PAD).sum(1).max())]
        pred, _ = model.greedy(x, tgt.shape[1])
        hits.append((pred == tgt[i:i + batch]).all(1))
        chars.append(pred == tgt[i:i + batch])
    model.train()
    return torch.cat(hits), torch.cat(chars).float().mean().item()


def train_translator(run, name: str, model: Seq2Seq, data, cfg: DateConfig, g: torch.Generator) -> list[float]:
    """Teacher forcing: cross-entropy of every target token given the true previous ones."""
    opt = Adam(model.parameters(), lr=cfg.lr)
    x, y = data.x_train.to(run.device), data.y_train.to(run.device)
    bos = torch.full((len(y), 1), dates.BOS, device=run.device)
    y_in = torch.cat([bos, y[:, :-1]], 1)  # (N, 11): BOS, then the target shifted right
    losses = []
    for step in run.progress(range(cfg.steps), desc=f"seq2seq {name}"):
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=g).to(run.device)
        src = x[idx]
        src = src[:, :int((src != dates.PAD).sum(1).max())]  # drop columns that are padding everywhere
        logits, _ = model(src, y_in[idx])
        # \mathcal{L} = -\frac{1}{BT} \sum_{b,t} \log p(y_t \mid y_{<t}, x)
        loss = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten())
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.detach())
        if step % 50 == 0 or step == cfg.steps - 1:
            run.log(step, **{f"{name}_loss": losses[-1]})
    return torch.stack(losses).tolist()


@lab(
    "seq2seq/date-translation",
    card="seq2seq",
    config=DateConfig,
    scales={
        "quick": {"n_train": 500, "n_test": 200, "hidden": 16, "emb_size": 8, "steps": 8, "batch_size": 16},
        "default": {},
        "full": {"n_train": 50_000, "hidden": 128, "steps": 6000},
    },
    goals=[Goal("bahdanau_exact", ">=", 0.95)],
    claims=[
        Check(
            "seq2seq-fixed-vector-bottleneck",
            lambda m: m["bahdanau_exact"] - m["none_exact"] >= 0.02 and m["gap_long"] > m["gap_short"],
            "same GRU encoder-decoder, same {steps} steps: with one fixed context vector exact match is "
            "{none_exact:.3f} against {bahdanau_exact:.3f} with Bahdanau attention; by source length the fixed "
            "vector scores {none_exact_short:.3f} / {none_exact_medium:.3f} / {none_exact_long:.3f} on short / "
            "medium / long dates (attention {bahdanau_exact_short:.3f} / {bahdanau_exact_medium:.3f} / "
            "{bahdanau_exact_long:.3f}), a gap of {gap_short:+.3f} on short and {gap_long:+.3f} on long sources; "
            "the fixed vector's errors follow what must be copied, not length: {none_exact_digits:.3f} on the "
            "all-digit forms, {none_exact_words:.3f} on forms with words",
        ),
        Check(
            "bahdanau-attention-removes-bottleneck",
            lambda m: m["bahdanau_exact"] - m["none_exact"] >= 0.02 and m["bahdanau_err"] <= 0.5 * m["none_err"],
            "held-out dates in {n_formats} formats: exact match {bahdanau_exact:.3f} with Bahdanau attention "
            "against {none_exact:.3f} without ({bahdanau_err:.3f} against {none_err:.3f} wrong, a ratio of "
            "{err_ratio_bahdanau:.2f}); character accuracy {bahdanau_char_acc:.3f} against {none_char_acc:.3f}",
        ),
        Check(
            "luong-attention-dot-relieves-bottleneck",
            lambda m: (m["luong_exact"] - m["none_exact"] >= 0.02 and m["luong_err"] <= 0.5 * m["none_err"]
                       and m["luong_exact"] >= m["bahdanau_exact"] - 0.01),
            "Luong attention with the dot-product score: exact match {luong_exact:.3f}, against {none_exact:.3f} "
            "with the fixed vector and {bahdanau_exact:.3f} with additive attention; training took "
            "{luong_train_s:.1f} s against {bahdanau_train_s:.1f} s for Bahdanau's",
        ),
    ],
    budget_s=90,
    threads=1,
)
def date_translation(run, cfg: DateConfig) -> dict:
    """Dates in many surface forms to ISO: exact match with the fixed vector, Bahdanau and Luong attention."""
    data = dates.date_split(cfg.n_train, cfg.n_test, seed=run.seed)
    x_test, y_test = data.x_test.to(run.device), data.y_test.to(run.device)
    test_len = (data.x_test != dates.PAD).sum(1)
    digits = torch.isin(data.meta["test_format"], torch.tensor([dates.FORMAT_NAMES.index(f) for f in DIGIT_FORMATS]))
    metrics: dict = {"steps": cfg.steps, "n_formats": len(dates.FORMATS),
                     "overlap": data.meta["overlap"], "overlap_chance": data.meta["overlap_chance"]}
    models, curves = {}, {}
    for name in ATTENTIONS:
        torch.manual_seed(run.seed)  # the same initial weights for the parts the three models share
        g = torch.Generator().manual_seed(run.seed)  # and the same batches
        model = Seq2Seq(emb_size=cfg.emb_size, hidden_size=cfg.hidden, attention=name,
                        luong_score="dot").to(run.device)
        start = time.perf_counter()
        curves[name] = train_translator(run, name, model, data, cfg, g)
        metrics[f"{name}_train_s"] = time.perf_counter() - start
        hits, char_acc = exact_match(model, x_test, y_test)
        hits = hits.cpu()
        metrics[f"{name}_exact"] = hits.float().mean().item()
        metrics[f"{name}_err"] = 1 - metrics[f"{name}_exact"]
        metrics[f"{name}_char_acc"] = char_acc
        metrics[f"{name}_params"] = sum(p.numel() for p in model.parameters())
        for bucket, (lo, hi) in BUCKETS.items():
            inside = (test_len >= lo) & (test_len <= hi)
            metrics[f"{name}_exact_{bucket}"] = hits[inside].float().mean().item()
        metrics[f"{name}_exact_digits"] = hits[digits].float().mean().item()
        metrics[f"{name}_exact_words"] = hits[~digits].float().mean().item()
        models[name] = model
    for bucket in BUCKETS:
        metrics[f"gap_{bucket}"] = metrics[f"bahdanau_exact_{bucket}"] - metrics[f"none_exact_{bucket}"]
    for name in ("bahdanau", "luong"):
        metrics[f"err_ratio_{name}"] = metrics[f"{name}_err"] / max(metrics["none_err"], 1e-9)
    _plot_alignments(run, models, data)
    _plot_accuracy(run, metrics, curves)
    return metrics


def _plot_alignments(run, models: dict, data) -> None:
    """Attention weights (target characters x source characters) on one test date per chosen format."""
    wanted = ["the dth of Month yyyy", "Weekday, Month d, yyyy", "dd/mm/yy", "yyyy.m.d"]
    fmt = data.meta["test_format"]
    picks = [int((fmt == dates.FORMAT_NAMES.index(f)).nonzero()[0]) for f in wanted
             if (fmt == dates.FORMAT_NAMES.index(f)).any()]
    src = data.x_test[picks].to(run.device)
    attentive = [name for name in ATTENTIONS if name != "none"]
    with run.figure("alignments", ncols=len(picks), nrows=len(attentive),
                    size=(4.2 * len(picks), 3.4 * len(attentive))) as (fig, axes):
        for r, name in enumerate(attentive):
            pred, weights = models[name].greedy(src, dates.TGT_LEN)
            for c, i in enumerate(range(len(picks))):
                ax = axes[r * len(picks) + c]
                text = dates.decode_sources(src[i:i + 1])[0]
                out = [dates.TGT_CHARS[t - 3] if t >= 3 else "<eos>" for t in pred[i].tolist()]
                ax.imshow(weights[i, :, :len(text)].cpu().numpy(), cmap="Greys", vmin=0, vmax=1, aspect="auto")
                ax.set_xticks(range(len(text)), list(text), fontsize=7)
                ax.set_yticks(range(len(out)), out, fontsize=7)
                ax.set_title(f"{name}: {text}", fontsize=8)


def _plot_accuracy(run, metrics: dict, curves: dict) -> None:
    with run.figure("exact_match_by_length", ncols=2) as (fig, (ax_len, ax_loss)):
        width = 0.8 / len(ATTENTIONS)
        for k, name in enumerate(ATTENTIONS):
            values = [metrics[f"{name}_exact_{b}"] for b in BUCKETS]
            ax_len.bar([i + k * width for i in range(len(BUCKETS))], values, width, label=name)
        ax_len.set_xticks([i + width for i in range(len(BUCKETS))],
                          [f"{b}\n{lo}-{hi} chars" for b, (lo, hi) in BUCKETS.items()])
        ax_len.axhline(0.95, color="grey", ls="--", lw=1, label="goal 0.95")
        ax_len.set(ylabel="exact match (test)", ylim=(0, 1.18), title="held-out dates by source length")
        ax_len.legend(fontsize=8, loc="upper center", ncol=4)
        for name, losses in curves.items():
            ax_loss.plot(losses, label=name, lw=0.8)
        ax_loss.set(xlabel="step", ylabel="cross-entropy (train)", yscale="log", title="training loss")
        ax_loss.legend(fontsize=8)
