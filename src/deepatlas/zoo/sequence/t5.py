"""T5: every task as text in, text out, for one encoder-decoder pre-trained by span corruption.

A task is named by a prefix of the input ("rev: ...", "upper: ...") and answered as text, even a
number, so one model, one cross-entropy loss and one decoding procedure serve all tasks. Pre-training
drops about 15% of the input tokens in short spans, replaces each span by its own sentinel token,
and asks the decoder to write the dropped spans out, each behind its sentinel.

    \\tilde x = x_{1:3}\\,\\langle X\\rangle\\,x_{6:9}\\,\\langle Y\\rangle \\dots,\\quad
    y = \\langle X\\rangle\\,x_{4:5}\\,\\langle Y\\rangle \\dots \\langle Z\\rangle,\\quad
    \\mathcal L = -\\sum_t \\log p_\\theta(y_t \\mid y_{<t}, \\tilde x)

Raffel, Shazeer, Roberts, Lee, Narang, Matena, Zhou, Li & Liu, "Exploring the Limits of Transfer
Learning with a Unified Text-to-Text Transformer", JMLR 21 (2020) (arXiv 1910.10683).

This miniature keeps the pre-LN encoder-decoder, the tied embeddings and the objective; it uses
the shared LayerNorm layers and sinusoidal positions where T5 uses RMSNorm and relative position
buckets.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import CharVocab, shakespeare_text
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.attention import causal_mask
from deepatlas.nn.transformer import DecoderLayer, EncoderLayer, sinusoidal_positions
from deepatlas.optim.schedules import WarmupCosine
from deepatlas.registry import register_model

PAD, EOS = 0, 1  # PAD also starts the decoder, as in T5
N_SENTINELS = 16
SENTINEL0 = 2  # sentinel k has id SENTINEL0 + k
N_SPECIAL = SENTINEL0 + N_SENTINELS  # characters start here


class T5(nn.Module):
    """Encoder-decoder: src (B, S), tgt_in (B, T) -> logits (B, T, vocab_size). One embedding table
    serves the encoder's input, the decoder's input and (tied) the read-out."""

    def __init__(self, vocab_size: int, d_model: int = 64, n_head: int = 4, n_encoder: int = 2, n_decoder: int = 2,
                 d_ff: int | None = None, max_len: int = 128, dropout: float = 0.0):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} is not divisible by n_head={n_head}")
        f = d_ff or 4 * d_model
        self.d_model, self.max_len = d_model, max_len
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, 0.0, d_model**-0.5)
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, n_head, f, dropout, norm_first=True)
                                     for _ in range(n_encoder))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, n_head, f, dropout, norm_first=True)
                                     for _ in range(n_decoder))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)  # pre-LN needs a last norm

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > self.max_len:
            raise ValueError(f"sequence of length {ids.shape[1]} is longer than max_len={self.max_len}")
        # x = \sqrt{d} E[ids] + PE
        return self.drop(self.embed(ids) * math.sqrt(self.d_model) + self.pe[:ids.shape[1]])

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        x = self._embed(src)  # (B, S, d)
        for layer in self.encoder:
            x = layer(x, key_padding_mask=src == PAD)
        return self.enc_norm(x)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        x = self._embed(tgt_in)  # (B, T, d)
        mask = causal_mask(tgt_in.shape[1], tgt_in.device)
        for layer in self.decoder:
            x = layer(x, memory, attn_mask=mask, memory_key_padding_mask=src == PAD)
        # logits = \mathrm{LN}(h) E^\top   (the read-out tied to the embedding)
        return F.linear(self.dec_norm(x), self.embed.weight)  # (B, T, V)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(tgt_in, self.encode(src), src)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_new: int) -> torch.Tensor:
        """Greedy decoding from PAD: (B, S) -> (B, max_new) ids; after EOS a row is padded with PAD."""
        memory = self.encode(src)
        out = torch.full((len(src), 1), PAD, dtype=torch.int64, device=src.device)
        done = torch.zeros(len(src), dtype=torch.bool, device=src.device)
        for _ in range(max_new):
            nxt = self.decode(out, memory, src)[:, -1].argmax(-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            out = torch.cat([out, nxt[:, None]], 1)
            done |= nxt == EOS
            if done.all():
                break
        return out[:, 1:]


def t5_loss(model: T5, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Teacher-forced cross-entropy of tgt (B, T) given src: the decoder reads [PAD] + tgt[:-1]."""
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], PAD), tgt[:, :-1]], 1)
    # \mathcal L = -\frac{1}{N} \sum_t \log p(y_t \mid y_{<t}, x), over the real (non-PAD) targets
    return F.cross_entropy(model(src, tgt_in).flatten(0, 1), tgt.flatten(), ignore_index=PAD)


def _example():
    g = torch.Generator().manual_seed(0)
    src = torch.randint(N_SPECIAL, 50, (2, 9), generator=g)
    src[1, 6:] = PAD
    return src, torch.randint(N_SPECIAL, 50, (2, 5), generator=g)


@register_model("t5_char", card="t5", example=_example)
def t5_char(**kw) -> T5:
    """A small character-level T5: 2 encoder and 2 decoder layers, 64 wide."""
    return T5(**{"vocab_size": 50, "d_model": 64, "n_head": 4, "n_encoder": 2, "n_decoder": 2, **kw})


# --- span corruption -------------------------------------------------------------------------------

def _random_partition(total: int, parts: int, generator: torch.Generator) -> list[int]:
    """`total` split into `parts` positive lengths, uniformly over all such splits."""
    cuts = (torch.randperm(total - 1, generator=generator)[:parts - 1] + 1).sort().values.tolist()
    return [b - a for a, b in zip([0, *cuts], [*cuts, total])]


def noise_spans(n: int, generator: torch.Generator, noise_density: float = 0.15,
                mean_span: float = 3.0) -> list[tuple[int, int]]:
    """(start, end) of the dropped spans of a sequence of n tokens, as T5 draws them: round(n density)
    noise tokens in round(noise / mean_span) spans, the spans and the kept runs between them each a
    random partition, the sequence starting with a kept run."""
    if n < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {n}")
    n_noise = min(max(round(n * noise_density), 1), n - 1)
    n_spans = min(max(round(n_noise / mean_span), 1), n_noise, n - n_noise)
    noise = _random_partition(n_noise, n_spans, generator)
    kept = _random_partition(n - n_noise, n_spans, generator)
    spans, at = [], 0
    for k, s in zip(kept, noise):
        spans.append((at + k, at + k + s))
        at += k + s
    return spans


def span_corruption(ids: list[int], generator: torch.Generator, noise_density: float = 0.15,
                    mean_span: float = 3.0) -> tuple[list[int], list[int]]:
    """T5's pre-training pair: the input with each dropped span replaced by its sentinel, and the
    target listing each sentinel followed by its span, closed by one more sentinel. Both end in EOS."""
    spans = noise_spans(len(ids), generator, noise_density, mean_span)
    if len(spans) + 1 > N_SENTINELS:
        raise ValueError(f"{len(spans)} spans need more than the {N_SENTINELS} sentinels")
    inputs, targets, at = [], [], 0
    for k, (a, b) in enumerate(spans):
        inputs += ids[at:a] + [SENTINEL0 + k]
        targets += [SENTINEL0 + k] + ids[a:b]
        at = b
    return inputs + ids[at:] + [EOS], targets + [SENTINEL0 + len(spans), EOS]


def uncorrupt(inputs: list[int], targets: list[int]) -> list[int]:
    """Put the spans of `targets` back in place of their sentinels in `inputs` (the inverse of
    span_corruption, without the EOS)."""
    spans: dict[int, list[int]] = {}
    current = None
    for t in targets[:-1]:
        if SENTINEL0 <= t < N_SPECIAL:
            current = spans.setdefault(t, [])
        elif current is not None:
            current.append(t)
    out = []
    for t in inputs[:-1]:
        out += spans.get(t, []) if SENTINEL0 <= t < N_SPECIAL else [t]
    return out


def pad_batch(rows: list[list[int]]) -> torch.Tensor:
    """Rows of ids -> (B, longest) padded with PAD."""
    out = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r)
    return out


# --- text-to-text tasks: a prefix names the task, the answer is text --------------------------------

TASKS = {
    "rev": lambda w: w[::-1],  # "rev: night" -> "thgin"
    "upper": str.upper,  # "upper: night" -> "NIGHT"
    "count": lambda w: str(len(w)),  # "count: night" -> "5"
}


def corpus_words(text: str, min_len: int = 3, max_len: int = 10) -> list[str]:
    """The distinct lower-case alphabetic words of `text` with min_len..max_len letters, sorted."""
    words = "".join(c if c.isalpha() else " " for c in text).split()
    return sorted({w for w in words if w.islower() and w.isascii() and min_len <= len(w) <= max_len})


def encode_text(s: str, vocab: CharVocab) -> list[int]:
    return (vocab.encode(s) + N_SPECIAL).tolist()


def decode_ids(ids, vocab: CharVocab) -> str:
    """Characters up to the first EOS; special tokens are dropped."""
    out = []
    for i in ids:
        if i == EOS:
            break
        if i >= N_SPECIAL:
            out.append(vocab.itos[i - N_SPECIAL])
    return "".join(out)


def task_batch(words: list[str], vocab: CharVocab, batch_size: int, generator: torch.Generator,
               tasks: tuple[str, ...] = tuple(TASKS)) -> tuple[torch.Tensor, torch.Tensor]:
    """A mixed batch: each row a random task applied to a random word, src "task: word" and its answer."""
    t = torch.randint(len(tasks), (batch_size,), generator=generator).tolist()
    w = torch.randint(len(words), (batch_size,), generator=generator).tolist()
    src = [encode_text(f"{tasks[i]}: {words[j]}", vocab) + [EOS] for i, j in zip(t, w)]
    tgt = [encode_text(TASKS[tasks[i]](words[j]), vocab) + [EOS] for i, j in zip(t, w)]
    return pad_batch(src), pad_batch(tgt)


def exact_match(model: T5, words: list[str], task: str, vocab: CharVocab, device) -> float:
    """Fraction of words whose greedy answer to "task: word" is exactly right."""
    src = pad_batch([encode_text(f"{task}: {w}", vocab) + [EOS] for w in words]).to(device)
    out = model.greedy(src, max(len(TASKS[task](w)) for w in words) + 1).tolist()
    return sum(decode_ids(o, vocab) == TASKS[task](w) for o, w in zip(out, words)) / len(words)


@torch.no_grad()
def span_accuracy(model: T5, src: torch.Tensor, tgt: torch.Tensor, device) -> float:
    """Teacher-forced accuracy of the dropped characters (the target's non-special tokens)."""
    model.eval()
    src, tgt = src.to(device), tgt.to(device)
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], PAD), tgt[:, :-1]], 1)
    hit = model(src, tgt_in).argmax(-1) == tgt
    chars = tgt >= N_SPECIAL
    return (hit & chars).sum().item() / chars.sum().item()


def train_t5(run, model: T5, make_batch, steps: int, lr: float, name: str) -> list[float]:
    """AdamW with warm-up and cosine decay on batches from make_batch() -> (src, tgt)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = WarmupCosine(opt, max(1, steps // 10), steps + 1, eta_min=lr / 10)
    losses = []
    model.train()
    for step in run.progress(range(steps), desc=name):
        src, tgt = make_batch()
        loss = t5_loss(model, src.to(run.device), tgt.to(run.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        losses.append(loss.detach())
        if step % 50 == 0 or step == steps - 1:
            run.log(step, **{f"{name}_loss": loss})
    model.eval()
    return [v.item() for v in losses]


# --- t5/span-corruption: pre-train on Shakespeare, then one model for three tasks ------------------

@dataclass
class SpanConfig:
    d_model: int = 96
    n_head: int = 4
    n_layer: int = 2  # encoder layers, and as many decoder layers
    window: int = 48  # characters per pre-training example
    pretrain_steps: int = 200
    finetune_steps: int = 500
    batch_size: int = 64
    lr: float = 2e-3
    n_test_words: int = 200  # held-out words per task


@lab(
    "t5/span-corruption",
    card="t5",
    config=SpanConfig,
    scales={
        "quick": {"d_model": 32, "n_layer": 1, "pretrain_steps": 10, "finetune_steps": 20, "batch_size": 16,
                  "n_test_words": 20},
        "default": {},
        "full": {"d_model": 256, "n_head": 8, "n_layer": 4, "pretrain_steps": 5000, "finetune_steps": 5000,
                 "lr": 1e-3},
    },
    goals=[Goal("min_exact_match", ">=", 0.9)],
    claims=[
        Check(
            "t5-unified-text-to-text",
            lambda m: m["min_exact_match"] >= 0.9,
            "one encoder-decoder ({n_layer}+{n_layer} layers, d={d_model}), pre-trained by span corruption on "
            "Shakespeare (it restores {heldout_span_acc:.2f} of the dropped characters of held-out plays), then "
            "trained with one loss on a mix of prefixed tasks, answers held-out words with exact match rev "
            "{exact_rev:.3f}, upper {exact_upper:.3f}, count {exact_count:.3f} by one greedy decoder (0.9 asked "
            "of each)",
        ),
    ],
    budget_s=120,
    threads=1,
)
def span_corruption_lab(run, cfg: SpanConfig) -> dict:
    """Span-corruption pre-training, then one T5 for reversing, upper-casing and counting words."""
    t0 = time.perf_counter()
    text = shakespeare_text().text
    vocab = CharVocab(text)
    cut = int(len(text) * 0.9)
    words = corpus_words(text)
    order = torch.randperm(len(words), generator=torch.Generator().manual_seed(0)).tolist()  # fixed split
    n_test = max(cfg.n_test_words, len(words) // 5)
    test_words = [words[i] for i in order[:n_test]]
    train_words = [words[i] for i in order[n_test:]]
    g = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)
    model = T5(len(vocab) + N_SPECIAL, cfg.d_model, cfg.n_head, cfg.n_layer, cfg.n_layer).to(run.device)

    def corrupted_batch(lo: int, hi: int, n: int, gen: torch.Generator):
        """n span-corrupted windows of text[lo:hi]."""
        starts = torch.randint(lo, hi - cfg.window, (n,), generator=gen).tolist()
        pairs = [span_corruption(encode_text(text[s:s + cfg.window], vocab), gen) for s in starts]
        return pad_batch([p[0] for p in pairs]), pad_batch([p[1] for p in pairs])

    pre = train_t5(run, model, lambda: corrupted_batch(0, cut, cfg.batch_size, g), cfg.pretrain_steps, cfg.lr,
                   "span_corruption")
    span_acc = span_accuracy(model, *corrupted_batch(cut, len(text), 256, torch.Generator().manual_seed(0)),
                             run.device)
    fine = train_t5(run, model, lambda: task_batch(train_words, vocab, cfg.batch_size, g), cfg.finetune_steps,
                    cfg.lr, "text_to_text")
    probe = test_words[:cfg.n_test_words]
    exact = {task: exact_match(model, probe, task, vocab, run.device) for task in TASKS}
    examples = _examples(model, probe[:4], vocab, run.device)
    _plot_t5(run, pre, fine, exact, examples)
    return {
        **{f"exact_{task}": v for task, v in exact.items()}, "min_exact_match": min(exact.values()),
        "heldout_span_acc": span_acc,
        "pretrain_loss": sum(pre[-20:]) / len(pre[-20:]), "finetune_loss": sum(fine[-20:]) / len(fine[-20:]),
        "n_train_words": len(train_words), "n_test_words": len(probe), "d_model": cfg.d_model,
        "n_layer": cfg.n_layer, "n_params": sum(p.numel() for p in model.parameters()),
        "seconds": time.perf_counter() - t0,
    }


def _examples(model: T5, words: list[str], vocab: CharVocab, device) -> list[str]:
    lines = []
    for task in TASKS:
        src = pad_batch([encode_text(f"{task}: {w}", vocab) + [EOS] for w in words]).to(device)
        for w, out in zip(words, model.greedy(src, 12).tolist()):
            lines.append(f"{task}: {w}  ->  {decode_ids(out, vocab)}")
    return lines


def _plot_t5(run, pre: list[float], fine: list[float], exact: dict, examples: list[str]) -> None:
    with run.figure("t5_span_corruption", ncols=3, size=(14, 4)) as (fig, (ax_loss, ax_acc, ax_text)):
        ax_loss.plot(pre, lw=0.8, label="span corruption")
        ax_loss.plot(range(len(pre), len(pre) + len(fine)), fine, lw=0.8, label="text-to-text tasks")
        ax_loss.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="one loss throughout")
        ax_loss.legend()
        ax_acc.bar(list(exact), list(exact.values()), color="#2ca02c")
        ax_acc.axhline(0.9, color="grey", ls="--", lw=1)
        ax_acc.set(ylim=(0, 1.05), ylabel="exact match (held-out words)", title="one model, three tasks")
        ax_text.axis("off")
        ax_text.text(0, 1, "\n".join(examples), va="top", family="monospace", fontsize=7)
        ax_text.set_title("greedy answers")
