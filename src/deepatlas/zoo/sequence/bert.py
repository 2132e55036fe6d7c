"""BERT: a Transformer encoder pre-trained to fill in masked tokens from both sides, then fine-tuned.

The input is the sum of token, learned position and segment embeddings; post-LN encoder layers
let every position attend to every other, left and right. Pre-training picks 15% of the tokens;
80% of those become [MASK], 10% a random token and 10% stay, and the model must recover all of
them through an output layer tied to the token embeddings. Fine-tuning puts a small head on the
pooled [CLS] state and trains the whole network on the labelled task.

    e_i = E_{tok}[x_i] + E_{seg}[s_i] + E_{pos}[i]
    \\mathcal L_{MLM} = -\\sum_{i \\in \\mathcal M} \\log p_\\theta(x_i \\mid \\tilde x)

Devlin, Chang, Lee & Toutanova, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding", NAACL 2019 (arXiv 1810.04805).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import CharVocab, shakespeare_text
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.transformer import EncoderLayer, sinusoidal_positions
from deepatlas.optim.schedules import WarmupCosine
from deepatlas.registry import register_model
from deepatlas.zoo.sequence.gpt import use_bf16

SPECIALS = ("[PAD]", "[MASK]", "[CLS]", "[SEP]")
PAD, MASK, CLS, SEP = range(len(SPECIALS))
N_SPECIAL = len(SPECIALS)
IGNORE = -100  # label of the positions the MLM loss skips (F.cross_entropy's ignore_index)


class BERT(nn.Module):
    """Encoder: ids (B, T) [and segments (B, T)] -> hidden states (B, T, d); padding ([PAD]) is never attended.

    forward returns the MLM logits (B, T, vocab_size) and the pooled [CLS] state (B, d)."""

    def __init__(self, vocab_size: int, max_len: int = 64, n_layer: int = 2, n_head: int = 4, d_model: int = 64,
                 d_ff: int | None = None, n_segments: int = 2, dropout: float = 0.0):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} is not divisible by n_head={n_head}")
        d = d_model
        self.max_len = max_len
        self.tok = nn.Embedding(vocab_size, d)  # E_tok
        self.pos = nn.Embedding(max_len, d)  # E_pos, learned
        self.seg = nn.Embedding(n_segments, d)  # E_seg: sentence A or B
        self.emb_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d, n_head, d_ff or 4 * d, dropout, norm_first=False,
                                                 activation="gelu") for _ in range(n_layer))
        self.mlm = MLMHead(d, self.tok)
        self.pooler = nn.Linear(d, d)
        _init_bert(self)

    def encode(self, ids: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        B, T = ids.shape
        if T > self.max_len:
            raise ValueError(f"sequence of length {T} is longer than max_len={self.max_len}")
        segments = torch.zeros_like(ids) if segments is None else segments
        # e_i = E_{tok}[x_i] + E_{seg}[s_i] + E_{pos}[i]
        x = self.drop(self.emb_norm(self.tok(ids) + self.seg(segments) + self.pos.weight[:T]))  # (B, T, d)
        padding = ids == PAD  # (B, T) True where there is no token
        for layer in self.layers:
            x = layer(x, key_padding_mask=padding)  # (B, T, d)
        return x

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """The [CLS] position's state through tanh(W h_0 + b): (B, T, d) -> (B, d)."""
        return torch.tanh(self.pooler(h[:, 0]))

    def forward(self, ids: torch.Tensor, segments: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encode(ids, segments)
        return self.mlm(h), self.pool(h)


class MLMHead(nn.Module):
    """h -> LN(GELU(W h + b)) -> logits over the vocabulary through the token embedding (tied) plus a bias."""

    def __init__(self, d_model: int, embedding: nn.Embedding):
        super().__init__()
        self.dense, self.norm = nn.Linear(d_model, embedding.embedding_dim), nn.LayerNorm(embedding.embedding_dim)
        self.embedding = embedding  # shared with the encoder's input, not a copy
        self.bias = nn.Parameter(torch.zeros(embedding.num_embeddings))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., V)
        # p(x_i \mid \tilde x) = \mathrm{softmax}(E_{tok}\, \mathrm{LN}(\mathrm{GELU}(W h_i + b)) + b_V)
        return F.linear(self.norm(F.gelu(self.dense(h))), self.embedding.weight, self.bias)


def _init_bert(model: nn.Module) -> None:
    """BERT's initialisation, N(0, 0.02) weights and zero biases, with two changes for small widths.

    0.02 suits d = 768; at d ~ 100 it makes every q.k tiny, so attention stays uniform and masked-LM
    sits at the unigram loss for hundreds of steps until it finds its neighbours. So the attention
    projections keep their Xavier initialisation, and the learned positions start from the sinusoid
    table scaled to the same 0.02, which lets attention find relative offsets early (measured here on
    Shakespeare characters: masked-LM loss 2.90 instead of 3.07 after 400 steps)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) or (isinstance(module, nn.Linear) and "attn.in_proj" not in name):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    pos = model.pos.weight
    with torch.no_grad():
        table = sinusoidal_positions(pos.shape[0], pos.shape[1] + pos.shape[1] % 2)[:, :pos.shape[1]]
        pos.copy_(table * 0.02 / table.std())


class Classifier(nn.Module):
    """A pre-trained (or fresh) encoder with a linear head: ids (B, T) -> logits (B, C). The head reads
    the pooled [CLS] state (pooling="cls", BERT's way) or the mean of the states of the real tokens
    (pooling="mean")."""

    def __init__(self, encoder: nn.Module, n_classes: int, dropout: float = 0.1, pooling: str = "cls"):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be cls or mean, got {pooling!r}")
        self.encoder, self.drop, self.pooling = encoder, nn.Dropout(dropout), pooling
        self.head = nn.Linear(encoder.pooler.out_features, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.encoder.encode(ids)  # (B, T, d)
        if self.pooling == "cls":
            return self.head(self.drop(self.encoder.pool(h)))
        real = (ids != PAD).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        return self.head(self.drop((h * real).sum(1) / real.sum(1)))


def _example():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(N_SPECIAL, 40, (2, 12), generator=g)
    ids[:, 0] = CLS
    ids[1, 9:] = PAD
    return ids, torch.tensor([[0] * 6 + [1] * 6, [0] * 5 + [1] * 7])


@register_model("bert_char", card="bert", example=_example)
def bert_char(**kw) -> BERT:
    """A small character-level BERT: 2 post-LN layers, 4 heads, 64 wide, 64 positions."""
    return BERT(**{"vocab_size": 40, "max_len": 64, "n_layer": 2, "n_head": 4, "d_model": 64, **kw})


# --- masking: the 80/10/10 rule --------------------------------------------------------------------

def mask_tokens(ids: torch.Tensor, vocab_size: int, generator: torch.Generator, p: float = 0.15,
                n_special: int = N_SPECIAL) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of ids (B, T): each ordinary token (id >= n_special) is selected with
    probability p; a selected token becomes [MASK] with probability 0.8, a uniformly random
    ordinary token with 0.1, and stays itself with 0.1. Returns (inputs, labels): labels hold the
    original id where selected and IGNORE elsewhere, so that the loss is taken only there."""
    if not 0 < p < 1:
        raise ValueError(f"the masking probability must be in (0, 1), got {p}")
    u = torch.rand(ids.shape, generator=generator).to(ids.device)  # selection
    r = torch.rand(ids.shape, generator=generator).to(ids.device)  # what a selected token becomes
    rand_tok = torch.randint(n_special, vocab_size, ids.shape, generator=generator).to(ids.device)
    selected = (u < p) & (ids >= n_special)
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE))
    inputs = torch.where(selected & (r < 0.8), torch.full_like(ids, MASK), ids)
    inputs = torch.where(selected & (r >= 0.8) & (r < 0.9), rand_tok, inputs)
    return inputs, labels


def mlm_loss(model: BERT, ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over the selected positions only (the read-out runs only there).
    Returns (loss, accuracy) on those positions."""
    h = model.encode(ids)  # (B, T, d)
    chosen = labels != IGNORE  # (B, T)
    logits = model.mlm(h[chosen])  # (M, V) for the M selected positions
    target = labels[chosen]
    # \mathcal L = -\frac{1}{|\mathcal M|} \sum_{i \in \mathcal M} \log p(x_i \mid \tilde x)
    return F.cross_entropy(logits, target), (logits.argmax(-1) == target).float().mean()


# --- parameter counts ------------------------------------------------------------------------------

def bert_param_count(vocab_size: int, max_len: int, n_layer: int, d_model: int, d_ff: int | None = None,
                     n_segments: int = 2, mlm_head: bool = False) -> int:
    """Parameters of `BERT` in closed form: embeddings (V + T + S) d and their LayerNorm 2 d; per layer
    4 d^2 + 4 d (attention) + 2 d f + f + d (FFN) + 4 d (two LayerNorms); the pooler d^2 + d; and, with
    mlm_head, the head's d^2 + d + 2 d + V (its read-out is the tied embedding)."""
    d, f = d_model, d_ff or 4 * d_model
    layer = (4 * d * d + 4 * d) + (2 * d * f + f + d) + 4 * d
    n = (vocab_size + max_len + n_segments) * d + 2 * d + n_layer * layer + d * d + d
    return n + (d * d + 3 * d + vocab_size if mlm_head else 0)


def count_params(model: nn.Module, mlm_head: bool = False) -> int:
    """Unique parameters, without the MLM head unless asked (the usual way BERT sizes are quoted)."""
    skip = set() if mlm_head else {id(p) for n, p in model.named_parameters() if n.startswith("mlm.")}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


# Published configurations (WordPiece vocabulary 30,522; 512 positions; 2 segments) and stated sizes.
PUBLISHED = {
    "base": {"vocab_size": 30522, "max_len": 512, "n_layer": 12, "d_model": 768, "n_head": 12, "stated": 110e6},
    "large": {"vocab_size": 30522, "max_len": 512, "n_layer": 24, "d_model": 1024, "n_head": 16, "stated": 340e6},
}


# --- the data: Shakespeare's characters; lines of the held-out plays, some with shuffled spelling -----

TAIL_PLAYS = ("Macbeth", "Othello", "Romeo and Juliet", "Timon of Athens")  # the last plays, sorted by file name
HELD_OUT = 0.1  # the trailing fraction of the corpus that pre-training never sees
_SPEAKER = re.compile(r"[A-Z][A-Za-z .'\-,]*[A-Za-z]:")


def play_lines(text: str, titles: tuple[str, ...], start: int, min_chars: int = 10) -> tuple[list[str], list[int]]:
    """The spoken lines (at least min_chars long) of the plays `titles`, which must be the last
    plays of `text` in that order, from character `start` on; and each line's play index."""
    bounds = []
    for title in titles:
        at = ("\n" + text).find(f"\n{title}\n\nACT I\n")  # where the title line starts in text
        if at < 0:
            raise ValueError(f"no play titled {title!r} in the corpus; it is not the expected Shakespeare text")
        bounds.append(at)
    bounds = [max(b, start) for b in bounds] + [len(text)]
    lines, labels = [], []
    for k in range(len(titles)):
        speaking = False
        for line in text[bounds[k]:bounds[k + 1]].split("\n"):
            if _SPEAKER.fullmatch(line):
                speaking = True  # the lines after "NAME:" are a speech, until a blank line
            elif not line.strip():
                speaking = False
            elif speaking and len(line) >= min_chars:
                lines.append(line)
                labels.append(k)
    return lines, labels


def scramble_line(line: str, generator: torch.Generator, keep_ends: bool = False) -> str:
    """Shuffle the letters of every word: with keep_ends, only the inner letters of words of four or
    more letters, keeping the first and last ("Cmabrigde" reading); otherwise all the letters of every
    word. The characters a line is made of stay the same, its spelling does not."""
    out, word = [], []
    lo = 1 if keep_ends else 0
    for ch in line + " ":
        if ch.isalpha():
            word.append(ch)
            continue
        if len(word) - 2 * lo >= 2:
            middle = [word[lo + int(i)] for i in torch.randperm(len(word) - 2 * lo, generator=generator)]
            word = word[:lo] + middle + word[len(word) - lo:]
        out += word + [ch]
        word = []
    return "".join(out[:-1])


def scrambled_task(lines: list[str], generator: torch.Generator,
                   keep_ends: bool = False) -> tuple[list[str], torch.Tensor]:
    """Each line kept as it is (label 0) or scrambled (label 1), half and half at random. Lines that
    no scrambling can change (no word with two different inner letters) are left out."""
    texts, labels = [], []
    for line in lines:
        changed = scramble_line(line, generator, keep_ends)
        tries = 0
        while changed == line and tries < 5:
            changed = scramble_line(line, generator, keep_ends)
            tries += 1
        if changed == line:
            continue
        flip = bool(torch.rand((), generator=generator) < 0.5)
        texts.append(changed if flip else line)
        labels.append(int(flip))
    return texts, torch.tensor(labels)


def letter_task(text: str, start: int, n: int, keep_ends: bool = False) -> tuple[list[str], torch.Tensor]:
    """n spoken lines of the held-out plays (from character `start` on), half of them with the letters
    of their words shuffled, and the labels (1: shuffled). The same lines for every run seed."""
    lines, _ = play_lines(text, TAIL_PLAYS, start)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(lines), generator=g).tolist()
    # a few lines cannot be scrambled (no word with two different letters to swap): draw twice as many
    texts, y = scrambled_task([lines[i] for i in order[:2 * n]], g, keep_ends)
    if len(texts) < n:
        raise ValueError(f"only {len(texts)} usable lines of the held-out plays; {n} were asked for")
    return texts[:n], y[:n]


def encode_lines(lines: list[str], vocab: CharVocab, max_len: int) -> torch.Tensor:
    """[CLS] + the line's characters (cut to max_len - 1) + [PAD]s: (N, max_len) ids."""
    ids = torch.full((len(lines), max_len), PAD, dtype=torch.int64)
    ids[:, 0] = CLS
    for i, line in enumerate(lines):
        chars = vocab.encode(line[:max_len - 1]) + N_SPECIAL
        ids[i, 1:1 + len(chars)] = chars
    return ids


def windows(ids: torch.Tensor, batch_size: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Random windows of `length` character ids from ids (N,), each behind [CLS]: (B, length + 1)."""
    start = torch.randint(0, len(ids) - length, (batch_size,), generator=generator)
    x = ids[start[:, None] + torch.arange(length)]
    return torch.cat([torch.full((batch_size, 1), CLS), x], 1)


def pretrain_mlm(run, model: BERT, ids: torch.Tensor, steps: int, batch_size: int, lr: float,
                 generator: torch.Generator, name: str = "mlm", bf16: bool = False) -> list[float]:
    """Masked-LM pre-training on random windows of ids (N,), in bfloat16 autocast if asked; returns the
    loss every step."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = WarmupCosine(opt, max(1, steps // 10), steps + 1, eta_min=lr / 10)
    vocab_size = model.tok.num_embeddings
    losses = []
    model.train()
    for step in run.progress(range(steps), desc=f"{name} pre-training"):
        x = windows(ids, batch_size, model.max_len - 1, generator).to(run.device)
        inputs, labels = mask_tokens(x, vocab_size, generator)
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = mlm_loss(model, inputs, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(loss.detach())
        if step % 50 == 0 or step == steps - 1:
            run.log(step, **{f"{name}_loss": loss})
    return [v.item() for v in losses]


@torch.no_grad()
def mlm_accuracy(model: BERT, ids: torch.Tensor, seed: int = 1234) -> float:
    """Accuracy of the masked-token predictions on ids (N, T) under one fixed 80/10/10 masking."""
    model.eval()
    inputs, labels = mask_tokens(ids, model.tok.num_embeddings, torch.Generator().manual_seed(seed))
    hits, total = 0, 0
    for i in range(0, len(ids), 256):
        _, acc = mlm_loss(model, inputs[i:i + 256], labels[i:i + 256])
        n = (labels[i:i + 256] != IGNORE).sum().item()
        hits, total = hits + acc.item() * n, total + n
    return hits / total


def trim(ids: torch.Tensor) -> torch.Tensor:
    """Drop the columns that are padding in every row: (B, T) -> (B, longest)."""
    return ids[:, :int((ids != PAD).sum(1).max())]


def finetune(run, clf: Classifier, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float,
             generator: torch.Generator, name: str, bf16: bool = False) -> None:
    """Fine-tune the whole classifier (encoder and head) with cross-entropy on (x (N, T), y (N,))."""
    steps = epochs * max(1, len(x) // batch_size)
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=0.01)
    schedule = WarmupCosine(opt, max(1, steps // 10), steps + 1)
    clf.train()
    step = 0
    for _ in run.progress(range(epochs), desc=f"fine-tuning {name}"):
        order = torch.randperm(len(x), generator=generator)
        for i in range(max(1, len(x) // batch_size)):
            idx = order[i * batch_size:(i + 1) * batch_size]
            with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = clf(trim(x[idx]).to(run.device))
            loss = F.cross_entropy(logits.float(), y[idx].to(run.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            if step % 25 == 0:
                run.log(step, **{f"{name}_loss": loss})
            step += 1


@torch.no_grad()
def predict(clf: Classifier, x: torch.Tensor, device) -> torch.Tensor:
    clf.eval()
    return torch.cat([clf(trim(x[i:i + 256]).to(device)).argmax(-1).cpu() for i in range(0, len(x), 256)])


def bag_of_characters(lines: list[str], vocab: CharVocab):
    """Each line as its character frequencies (N, |vocab|), a numpy array for scikit-learn."""
    counts = torch.zeros(len(lines), len(vocab))
    for i, line in enumerate(lines):
        counts[i].index_add_(0, vocab.encode(line), torch.ones(len(line)))
    return (counts / counts.sum(1, keepdim=True)).numpy()


def logistic_baseline(x_train, y_train, x_test, y_test, Cs=(0.1, 1.0, 10.0, 100.0)) -> float:
    """Test accuracy of multinomial logistic regression, its inverse regularisation C picked from Cs by
    3-fold cross-validation on the training set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    best = max(Cs, key=lambda C: cross_val_score(LogisticRegression(C=C, max_iter=2000), x_train, y_train,
                                                 cv=3).mean())
    return float(LogisticRegression(C=best, max_iter=2000).fit(x_train, y_train).score(x_test, y_test))


# --- bert/mlm: pre-train on Shakespeare, then spot the lines whose words are misspelled --------------
#
# The downstream task is one a bag of characters cannot do at all: half of the held-out lines have the
# letters of every word shuffled, which keeps the line's characters and only changes its spelling. (On
# which of 4 held-out plays a line comes from, a bag of characters is the stronger model at this scale:
# character names and topics give the play away without any reading.)

@dataclass
class MlmConfig:
    d_model: int = 96
    n_layer: int = 3
    n_head: int = 4
    max_len: int = 72  # [CLS] + up to 71 characters
    pretrain_steps: int = 700
    batch_size: int = 32
    lr: float = 2e-3  # AdamW, warm-up then cosine
    n_labels: int = 2000  # labelled lines for fine-tuning
    n_test: int = 1000
    keep_ends: bool = False  # shuffle only the inner letters of words of four or more letters
    pooling: str = "mean"  # what the classifier reads: "cls" or "mean" (see Classifier)
    finetune_epochs: int = 2
    finetune_batch: int = 32
    finetune_lr: float = 1e-3
    bf16: str = "auto"  # bfloat16 autocast where the hardware has it (see gpt.use_bf16)
    scratch: bool = True  # also fine-tune the same encoder from random weights


@lab(
    "bert/mlm",
    card="bert",
    config=MlmConfig,
    scales={
        "quick": {"d_model": 32, "n_layer": 1, "max_len": 48, "pretrain_steps": 20, "finetune_epochs": 1,
                  "n_labels": 200, "n_test": 100},
        "default": {},
        "full": {"d_model": 256, "n_layer": 6, "n_head": 8, "pretrain_steps": 20_000, "batch_size": 64,
                 "finetune_epochs": 4},
    },
    goals=[Goal("gain_over_baseline", ">", 0.1)],
    claims=[
        Check(
            "bert-masked-lm-bidirectional",
            lambda m: m["bert_acc"] > m["baseline_acc"] and m["bert_acc"] > m["scratch_acc"],
            "a {n_layer}-layer character BERT pre-trained by masked-LM for {pretrain_steps} steps on the first "
            "90% of the plays recovers {mlm_acc:.3f} of masked characters in held-out lines (most frequent "
            "character: {unigram_acc:.3f}); fine-tuned on {n_train} lines of 4 held-out plays to spot those whose "
            "words have their letters shuffled, it reaches {bert_acc:.3f} test accuracy, against {scratch_acc:.3f} "
            "for the same encoder fine-tuned from random weights and {baseline_acc:.3f} for bag-of-characters "
            "logistic regression (chance 0.5)",
        ),
    ],
    budget_s=150,
    threads=1,
)
def mlm(run, cfg: MlmConfig) -> dict:
    """Masked-LM pre-training on Shakespeare, then spotting letter-shuffled lines of held-out plays."""
    t0 = time.perf_counter()
    bf16 = use_bf16(cfg.bf16, run.device)
    text = shakespeare_text().text
    vocab = CharVocab(text)
    V = len(vocab) + N_SPECIAL
    cut = int(len(text) * (1 - HELD_OUT))
    train_ids = vocab.encode(text[:cut]) + N_SPECIAL  # (N,) pre-training text
    texts, y = letter_task(text, cut, cfg.n_test + cfg.n_labels, cfg.keep_ends)
    x = encode_lines(texts, vocab, cfg.max_len)
    x_test, y_test, x_train, y_train = x[:cfg.n_test], y[:cfg.n_test], x[cfg.n_test:], y[cfg.n_test:]

    g = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)

    def fresh() -> BERT:
        return BERT(V, cfg.max_len, cfg.n_layer, cfg.n_head, cfg.d_model).to(run.device)

    bert = fresh()
    curve = pretrain_mlm(run, bert, train_ids, cfg.pretrain_steps, cfg.batch_size, cfg.lr, g, bf16=bf16)
    real = x_test[y_test == 0]  # the held-out lines as they were written
    mlm_acc = mlm_accuracy(bert, real.to(run.device))
    unigram_acc = (real[real >= N_SPECIAL] == train_ids.mode().values).float().mean().item()

    acc = {}
    for name, encoder in [("bert", bert), ("scratch", fresh() if cfg.scratch else None)]:
        if encoder is None:
            continue
        clf = Classifier(encoder, 2, pooling=cfg.pooling).to(run.device)
        finetune(run, clf, x_train, y_train, cfg.finetune_epochs, cfg.finetune_batch, cfg.finetune_lr, g, name,
                 bf16)
        acc[name] = (predict(clf, x_test, run.device) == y_test).float().mean().item()
    bag = bag_of_characters(texts, vocab)
    baseline_acc = logistic_baseline(bag[cfg.n_test:], y_train.numpy(), bag[:cfg.n_test], y_test.numpy())

    _plot_mlm(run, curve, acc, baseline_acc)
    return {
        "mlm_acc": mlm_acc, "unigram_acc": unigram_acc, "final_mlm_loss": sum(curve[-20:]) / len(curve[-20:]),
        "bert_acc": acc["bert"], "gain_over_baseline": acc["bert"] - baseline_acc,
        "scratch_acc": acc.get("scratch", float("nan")), "baseline_acc": baseline_acc,
        "n_train": len(y_train), "n_test": len(y_test), "n_params": count_params(bert), "n_layer": cfg.n_layer,
        "pretrain_steps": cfg.pretrain_steps, "bf16": int(bf16), "seconds": time.perf_counter() - t0,
    }


def _plot_mlm(run, curve, acc, baseline_acc) -> None:
    with run.figure("bert_mlm", ncols=2) as (fig, (ax_loss, ax_acc)):
        ax_loss.plot(curve, lw=0.8)
        ax_loss.set(xlabel="step", ylabel="masked-LM cross-entropy", title="pre-training on Shakespeare")
        names = [{"bert": "pre-trained", "scratch": "from scratch"}[k] for k in acc] + ["bag of chars"]
        ax_acc.bar(names, [*acc.values(), baseline_acc], color=["#1f77b4", "#ff7f0e", "#7f7f7f"][:len(names)])
        ax_acc.axhline(0.5, color="k", ls="--", lw=1, label="chance")
        ax_acc.set(ylabel="test accuracy", title="letters shuffled or not?", ylim=(0, 1))
        ax_acc.legend()


# --- bert/param-count: BERT-base and BERT-large from their configurations ---------------------------

@dataclass
class BertCountConfig:
    tolerance: float = 0.05  # |counted / stated - 1| within which a stated size is "about" right


@lab(
    "bert/param-count",
    card="bert",
    config=BertCountConfig,
    scales={"quick": {}, "default": {}, "full": {}},
    goals=[Goal("formula_matches_model", "==", 1)],
    claims=[
        Check(
            "bert-large-340m",
            lambda m: abs(m["large_rel_err"]) <= m["tolerance"],
            "24 layers, H=1024, 16 heads, 30,522 WordPiece tokens, 512 positions: {large_params:,.0f} parameters "
            "with the pooler ({large_with_mlm:,.0f} with the MLM head), {large_rel_err:+.2%} from the stated 340M "
            "(tolerance {tolerance:.0%}); BERT-base by the same count: {base_params:,.0f} "
            "({base_rel_err:+.2%} from 110M)",
        ),
    ],
    budget_s=20,
    threads=1,
)
def param_count(run, cfg: BertCountConfig) -> dict:
    """BERT-base and BERT-large sizes counted from their configurations by this file's BERT."""
    metrics: dict = {"tolerance": cfg.tolerance}
    matches = True
    for name, c in PUBLISHED.items():
        with torch.device("meta"):
            model = BERT(c["vocab_size"], c["max_len"], c["n_layer"], c["n_head"], c["d_model"])
        shape = {k: c[k] for k in ("vocab_size", "max_len", "n_layer", "d_model")}
        built, formula = count_params(model), bert_param_count(**shape)
        matches &= built == formula and count_params(model, mlm_head=True) == bert_param_count(**shape, mlm_head=True)
        metrics[f"{name}_params"] = built
        metrics[f"{name}_with_mlm"] = count_params(model, mlm_head=True)
        metrics[f"{name}_rel_err"] = built / c["stated"] - 1
        d = c["d_model"]
        metrics[f"{name}_embeddings"] = (c["vocab_size"] + c["max_len"] + 2) * d + 2 * d
    metrics["formula_matches_model"] = int(matches)
    with run.figure("bert_param_count") as (fig, ax):
        names = list(PUBLISHED)
        emb = [metrics[f"{n}_embeddings"] for n in names]
        rest = [metrics[f"{n}_params"] - e for n, e in zip(names, emb)]
        ax.bar(names, rest, label="encoder layers and pooler")
        ax.bar(names, emb, bottom=rest, label="embeddings")
        ax.scatter(names, [PUBLISHED[n]["stated"] for n in names], color="k", marker="_", s=400, zorder=3,
                   label="stated size")
        ax.set(ylabel="parameters", title="BERT sizes from the configurations")
        ax.legend()
    return metrics
