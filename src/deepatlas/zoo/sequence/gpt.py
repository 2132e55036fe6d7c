"""GPT: a decoder-only Transformer trained to predict the next token, then sampled from.

Token and learned position embeddings go through a stack of pre-LN blocks whose self-attention
is causally masked (position t sees positions <= t), a final LayerNorm, and a linear read-out
that shares its weights with the token embedding. Training maximises the likelihood of every
next token at once; generation feeds the model's own samples back in, one token at a time,
choosing each greedily or by sampling with a temperature, top-k or nucleus (top-p) filter.

    h_0 = U W_e + W_p,   h_l = \\mathrm{block}(h_{l-1}),   P(u) = \\mathrm{softmax}(\\mathrm{LN}(h_L) W_e^\\top)
    L_1(\\mathcal U) = \\sum_i \\log P(u_i \\mid u_{i-k}, \\dots, u_{i-1}; \\Theta)

Radford, Narasimhan, Salimans & Sutskever, "Improving Language Understanding by Generative
Pre-Training", OpenAI 2018; Radford et al., "Language Models are Unsupervised Multitask Learners",
OpenAI 2019 (GPT-2: pre-LN, final LayerNorm); Brown et al., "Language Models are Few-Shot
Learners", NeurIPS 2020 (GPT-3); Holtzman et al., "The Curious Case of Neural Text
Degeneration", ICLR 2020 (nucleus sampling).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import char_dataset, shakespeare_text
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.attention import causal_mask
from deepatlas.nn.transformer import EncoderLayer
from deepatlas.optim.schedules import WarmupCosine
from deepatlas.registry import register_model


class GPT(nn.Module):
    """Decoder-only Transformer: idx (B, T) token ids -> logits (B, T, vocab_size) for the next token.

    Each block is an EncoderLayer in its pre-LN form under a causal mask: with no encoder to
    attend to, a GPT block is self-attention plus the FFN, x + MHA(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, vocab_size: int = 65, block_size: int = 64, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 128, dropout: float = 0.0, d_ff: int | None = None):
        super().__init__()
        if min(vocab_size, block_size, n_layer, n_head, n_embd) < 1:
            raise ValueError("vocab_size, block_size, n_layer, n_head and n_embd must all be positive")
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)  # W_e
        self.wpe = nn.Embedding(block_size, n_embd)  # W_p, learned
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderLayer(n_embd, n_head, d_ff or 4 * n_embd, dropout, norm_first=True, activation="gelu")
            for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.wte.weight  # weight tying: read-out W_e^T
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
            # GPT-2: residual projections scaled by 1/sqrt(2 n_layer), so the residual stream's
            # variance does not grow with depth
            if name.endswith(("out_proj.weight", "w2.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size={self.block_size}")
        # h_0 = U W_e + W_p
        x = self.drop(self.wte(idx) + self.wpe.weight[:T])  # (B, T, C)
        mask = causal_mask(T, idx.device)  # (T, T) True on and below the diagonal
        for block in self.blocks:
            x = block(x, attn_mask=mask)  # (B, T, C)
        return self.head(self.ln_f(x))  # (B, T, V)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, *, greedy: bool = False,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend idx (B, T0) by max_new_tokens tokens -> (B, T0 + max_new_tokens). The context is
        cropped to the last block_size tokens; each new token is chosen by `next_token`."""
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.block_size:])[:, -1]  # (B, V): the last position's prediction
            nxt = next_token(logits, greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p,
                             generator=generator)
            idx = torch.cat([idx, nxt[:, None]], dim=1)
        return idx


# --- decoding: each rule a small function on the logits (B, V) of the next token ------------------

def greedy_token(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token: argmax_v logits (B, V) -> (B,)."""
    return logits.argmax(-1)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """p_v \\propto \\exp(z_v / \\tau): tau < 1 sharpens the distribution, tau > 1 flattens it."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy decoding for tau -> 0), got {temperature}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row, set the rest to -inf (ties at the k-th value are kept)."""
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    k = min(k, logits.shape[-1])
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (B, 1) the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probabilities sum to >= p."""
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(-1)
    # a token stays if the tokens more likely than it sum to less than p (the most likely always stays)
    before = probs.cumsum(-1) - probs
    drop_sorted = before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token(logits: torch.Tensor, *, greedy: bool = False, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """One decoding step: logits (B, V) -> token ids (B,). Greedy, or a sample after temperature,
    then top-k, then top-p filtering."""
    if greedy:
        return greedy_token(logits)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


@register_model("gpt_char", card="gpt", example=lambda: (torch.randint(0, 65, (2, 16)),))
def gpt_char(**kw) -> GPT:
    """nanoGPT's small character-level model: 4 layers, 4 heads, 128 wide, 64 characters of context."""
    return GPT(**{"vocab_size": 65, "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, **kw})


# --- parameter counts ------------------------------------------------------------------------------

def gpt_param_count(vocab_size: int, block_size: int, n_layer: int, n_embd: int, d_ff: int | None = None) -> int:
    """Parameters of `GPT` in closed form (the heads only split d, so their number does not enter).

    N = V d + T d + L (4 d^2 + 4 d + 2 d f + f + d + 4 d) + 2 d,  with f = 4 d: N = (V + T) d + L (12 d^2 + 13 d) + 2 d
    (token and position embeddings; per block Q, K, V and output projections with biases, the
    FFN's two layers with biases, two LayerNorms; the final LayerNorm; the read-out is tied)."""
    d, f = n_embd, d_ff or 4 * n_embd
    block = (4 * d * d + 4 * d) + (2 * d * f + f + d) + 2 * (2 * d)
    return (vocab_size + block_size) * d + n_layer * block + 2 * d


def meta_param_count(vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int) -> int:
    """Build the real `GPT` on the meta device (shapes, no memory) and count its parameters."""
    with torch.device("meta"):
        model = GPT(vocab_size, block_size, n_layer, n_head, n_embd)
    return sum(p.numel() for p in model.parameters())


# Published configurations: vocabulary (BPE), context, layers, width, heads, and the size the paper states.
PUBLISHED = {
    "gpt1": {"vocab_size": 40478, "block_size": 512, "n_layer": 12, "n_embd": 768, "n_head": 12, "stated": 117e6},
    "gpt2_xl": {"vocab_size": 50257, "block_size": 1024, "n_layer": 48, "n_embd": 1600, "n_head": 25,
                "stated": 1.5e9},
    "gpt3": {"vocab_size": 50257, "block_size": 2048, "n_layer": 96, "n_embd": 12288, "n_head": 96,
             "stated": 175e9},
}


# --- gpt/shakespeare-char: nanoGPT's character-level recipe, tuned for a small CPU ----------------

def matmul_peak_flops(n: int = 1024, seconds: float = 1.0, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> float:
    """This machine's matmul throughput in `dtype` on the current threads: (n x n) @ (n x n) repeated.
    FLOPs per second of CPU time used (process time, which other processes on a shared machine do not
    inflate), or per wall-clock second on CUDA."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    clock = time.perf_counter if a.is_cuda else time.process_time
    a @ b  # warm-up
    count, start = 0, clock()
    while clock() - start < seconds:
        a @ b
        count += 1
        if a.is_cuda:
            torch.cuda.synchronize()
    return 2 * n**3 * count / (clock() - start)


def training_flops_per_token(model: GPT, T: int) -> float:
    """~6 FLOPs per weight a token passes through (2 forward, 4 backward), plus attention's
    q k^T and alpha v: 6 N_matmul + 12 L T d (the PaLM appendix's count; embeddings are lookups)."""
    d = model.wte.embedding_dim
    n_matmul = sum(p.numel() for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2)
    n_matmul += model.head.weight.numel()  # the tied read-out is a real matmul
    return 6 * n_matmul + 12 * len(model.blocks) * T * d


def bigram_model(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """log P(next | current) from add-one-smoothed counts of the character pairs in ids (N,): (V, V)."""
    counts = torch.bincount(ids[:-1] * vocab_size + ids[1:], minlength=vocab_size**2).view(vocab_size, vocab_size)
    return (counts + 1.0).log() - (counts + 1.0).sum(1, keepdim=True).log()


def real_word_fraction(text: str, words: set[str]) -> float:
    """Fraction of the alphabetic words of `text` (lower-cased) that occur in `words`."""
    found = [w for w in "".join(c.lower() if c.isalpha() else " " for c in text).split()]
    return sum(w in words for w in found) / max(1, len(found))


@dataclass
class ShakespeareConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    batch_size: int = 32
    steps: int = 1000
    lr: float = 2e-3  # AdamW peak rate: linear warm-up, then cosine to lr / 10
    warmup: int = 50
    weight_decay: float = 0.1  # on the matrices only
    bf16: str = "auto"  # bfloat16 autocast: "auto" where the CPU computes it natively (AVX512-BF16/AMX) or on CUDA
    eval_every: int = 100
    eval_windows: int = 1024  # fixed validation windows of block_size characters (a quarter for the curve)
    sample_chars: int = 600  # per decoding rule; the real-word fraction needs about a hundred words
    peak_seconds: float = 1.0  # how long to time the matmul peak


def use_bf16(setting: str, device: torch.device) -> bool:
    """Whether to autocast to bfloat16: "true", "false", or "auto" (CUDA, or a CPU with native bf16 matmuls,
    where it was measured 1.7x faster for this model; elsewhere bf16 is emulated and slower)."""
    if setting not in ("auto", "true", "false"):
        raise ValueError(f"bf16 must be auto, true or false, got {setting!r}")
    if setting != "auto":
        return setting == "true"
    if device.type == "cuda":
        return True
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return native or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()


@lab(
    "gpt/shakespeare-char",
    card="gpt",
    config=ShakespeareConfig,
    scales={
        "quick": {"n_layer": 1, "n_embd": 32, "n_head": 2, "steps": 30, "warmup": 5, "eval_every": 15,
                  "eval_windows": 64, "sample_chars": 40, "peak_seconds": 0.2},
        "default": {},
        "full": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "batch_size": 64, "steps": 5000,
                 "lr": 1e-3, "warmup": 100, "eval_every": 250},
    },
    goals=[Goal("val_loss", "<=", 1.88)],
    claims=[
        Check(
            "gpt-next-token-generation",
            lambda m: m["val_loss"] < m["bigram_val_loss"] and m["sample_word_frac"] > m["bigram_word_frac"],
            "a {n_layer}-layer, {n_embd}-wide GPT trained only on next-character prediction ({tokens:.3g} "
            "characters of Shakespeare) reaches {val_loss:.3f} nats/char on held-out plays (character bigram "
            "model: {bigram_val_loss:.3f}); {sample_word_frac:.2f} of the words in its samples are real words of "
            "the corpus, against {bigram_word_frac:.2f} for bigram samples (both sampled at temperature 1)",
        ),
    ],
    budget_s=150,
    threads=1,
)
def shakespeare_char(run, cfg: ShakespeareConfig) -> dict:
    """A character-level GPT on Shakespeare: validation loss at most 1.88 nats/char, and samples."""
    bf16 = use_bf16(cfg.bf16, run.device)
    peak = matmul_peak_flops(seconds=cfg.peak_seconds, dtype=torch.bfloat16 if bf16 else torch.float32,
                             device=run.device)
    corpus = shakespeare_text()
    data = char_dataset(corpus.text, cfg.block_size)
    V = len(data.vocab)
    g = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)
    model = GPT(V, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd).to(run.device)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": matrices, "weight_decay": cfg.weight_decay},
                             {"params": others, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))
    schedule = WarmupCosine(opt, cfg.warmup, cfg.steps, eta_min=cfg.lr / 10)
    val_x, val_y = data.batch("test", cfg.eval_windows, torch.Generator().manual_seed(0))  # fixed, for every seed

    @torch.no_grad()
    def val_loss(n: int) -> float:
        """Mean cross-entropy (nats/char) over the first n validation windows, in float32."""
        model.eval()
        total = sum(F.cross_entropy(model(val_x[i:i + 64].to(run.device)).flatten(0, 1),
                                    val_y[i:i + 64].flatten().to(run.device), reduction="sum").item()
                    for i in range(0, n, 64))
        model.train()
        return total / val_y[:n].numel()

    curve = {"step": [], "train": [], "val": []}
    train_seconds, cpu_seconds, recent = 0.0, 0.0, []
    for step in run.progress(range(cfg.steps), desc="GPT on Shakespeare"):
        t, c = time.perf_counter(), time.process_time()
        x, y = data.batch("train", cfg.batch_size, g)
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x.to(run.device))  # (B, T, V)
        # \mathcal L = -\frac{1}{BT} \sum_{b,t} \log P(u_{t+1} \mid u_{\le t})
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten().to(run.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        recent.append(loss.detach())
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - t
        cpu_seconds += time.process_time() - c
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            train = torch.stack(recent).mean().item()
            recent = []
            curve["step"].append(step + 1)
            curve["train"].append(train)
            curve["val"].append(val_loss(max(64, cfg.eval_windows // 4)))
            run.log(step + 1, loss=train, val_loss=curve["val"][-1])

    final_val = val_loss(cfg.eval_windows)
    tokens = cfg.steps * cfg.batch_size * cfg.block_size
    flops = training_flops_per_token(model, cfg.block_size) * tokens
    busy = train_seconds if run.device.type == "cuda" else cpu_seconds  # the clock the peak was timed with
    log_p = bigram_model(data.train, V)
    bigram_val = -log_p[data.test[:-1], data.test[1:]].mean().item()
    samples, bigram_samples = _samples(model, log_p, data, cfg, run)
    words = set("".join(c.lower() if c.isalpha() else " " for c in corpus.text[:len(data.train)]).split())
    _plot_shakespeare(run, curve, samples, bigram_val)
    return {
        "val_loss": final_val, "train_loss": curve["train"][-1],
        "bigram_val_loss": bigram_val,
        "sample_word_frac": real_word_fraction(samples["sampling"], words),
        "bigram_word_frac": real_word_fraction(bigram_samples, words),
        "tokens": tokens, "tokens_per_s": tokens / train_seconds, "train_seconds": train_seconds,
        "cpu_seconds": cpu_seconds, "tokens_per_cpu_s": tokens / busy, "model_gflops_per_s": flops / busy / 1e9,
        "peak_gflops_per_s": peak / 1e9, "mfu": flops / busy / peak, "bf16": int(bf16),
        "n_params": sum(p.numel() for p in model.parameters()), "vocab_size": V, "corpus_chars": corpus.n_chars,
        "n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "steps": cfg.steps,
    }


def _samples(model: GPT, log_p: torch.Tensor, data, cfg: ShakespeareConfig, run) -> tuple[dict, str]:
    """Text from the trained model under four decoding rules (plain sampling at temperature 1 is the
    one to compare with the bigram model's samples), and from the bigram model; all seeded by the
    run's seed and started from a newline."""
    g = torch.Generator(device=run.device).manual_seed(run.seed)
    start = data.vocab.encode("\n")[None].to(run.device)  # (1, 1)
    model.eval()
    rules = {"sampling": {}, "greedy": dict(greedy=True),
             "temperature 0.8, top-k 20": dict(temperature=0.8, top_k=20), "nucleus p = 0.9": dict(top_p=0.9)}
    samples = {name: data.vocab.decode(model.generate(start, cfg.sample_chars, generator=g, **kw)[0, 1:])
               for name, kw in rules.items()}
    ids = [int(start)]
    cpu = torch.Generator().manual_seed(run.seed)
    for _ in range(cfg.sample_chars):
        ids.append(int(torch.multinomial(log_p[ids[-1]].exp(), 1, generator=cpu)))
    return samples, data.vocab.decode(ids[1:])


def _plot_shakespeare(run, curve: dict, samples: dict, bigram_val: float) -> None:
    with run.figure("shakespeare_char", ncols=2, size=(13, 5.5)) as (fig, (ax, ax_text)):
        ax.plot(curve["step"], curve["train"], "o-", label="train")
        ax.plot(curve["step"], curve["val"], "s-", label="validation (held-out plays)")
        ax.axhline(1.88, color="grey", ls="--", lw=1, label="goal 1.88")
        ax.axhline(bigram_val, color="k", ls=":", lw=1, label="character bigram")
        ax.set(xlabel="step", ylabel="cross-entropy (nats/char)", title="character-level GPT")
        ax.legend()
        ax_text.axis("off")
        clipped = {name: "\n".join(line[:90] for line in text.strip()[:250].split("\n"))
                   for name, text in samples.items()}
        body = "\n\n".join(f"[{name}]\n{text}" for name, text in clipped.items())
        ax_text.text(0, 1, body, va="top", ha="left", family="monospace", fontsize=6.5, wrap=True)
        ax_text.set_title("samples")


# --- gpt/param-count: the published sizes from the published configurations ----------------------

@dataclass
class ParamCountConfig:
    tolerance: float = 0.05  # |counted / stated - 1| within which a stated size is "about" right


@lab(
    "gpt/param-count",
    card="gpt",
    config=ParamCountConfig,
    scales={"quick": {}, "default": {}, "full": {}},
    goals=[Goal("formula_matches_model", "==", 1)],
    claims=[
        Check(
            "gpt-117m",
            lambda m: abs(m["gpt1_rel_err"]) <= m["tolerance"],
            "12 layers, d=768, 40,478 BPE tokens, 512 positions: {gpt1_params:,.0f} parameters, "
            "{gpt1_rel_err:+.2%} from the stated 117M (tolerance {tolerance:.0%}; this pre-LN model has a final "
            "LayerNorm that the post-LN GPT-1 lacks, 1,536 parameters)",
        ),
        Check(
            "gpt-2-1-5b",
            lambda m: abs(m["gpt2_xl_rel_err"]) <= m["tolerance"],
            "48 layers, d=1600, 50,257 tokens, 1,024 positions: {gpt2_xl_params:,.0f} parameters, "
            "{gpt2_xl_rel_err:+.2%} from the stated 1.5B (the GPT-2 paper's table says 1,542M; tolerance "
            "{tolerance:.0%})",
        ),
        Check(
            "gpt-3-175b",
            lambda m: abs(m["gpt3_rel_err"]) <= m["tolerance"],
            "96 layers, d=12,288, 50,257 tokens, 2,048 positions: {gpt3_params:,.0f} parameters, "
            "{gpt3_rel_err:+.2%} from the stated 175B (tolerance {tolerance:.0%}); 12 L d^2 alone gives "
            "{gpt3_12ld2:,.0f}",
        ),
    ],
    budget_s=20,
    threads=1,
)
def param_count(run, cfg: ParamCountConfig) -> dict:
    """GPT-1, GPT-2 XL and GPT-3 sizes counted from their configurations by this file's GPT."""
    metrics: dict = {"tolerance": cfg.tolerance}
    matches = True
    rows = []
    for name, c in PUBLISHED.items():
        built = meta_param_count(c["vocab_size"], c["block_size"], c["n_layer"], c["n_head"], c["n_embd"])
        formula = gpt_param_count(c["vocab_size"], c["block_size"], c["n_layer"], c["n_embd"])
        matches &= built == formula
        embeddings = (c["vocab_size"] + c["block_size"]) * c["n_embd"]
        metrics[f"{name}_params"] = built
        metrics[f"{name}_rel_err"] = built / c["stated"] - 1
        rows.append((name, embeddings, built - embeddings, c["stated"]))
    metrics["gpt3_12ld2"] = 12 * PUBLISHED["gpt3"]["n_layer"] * PUBLISHED["gpt3"]["n_embd"] ** 2
    metrics["formula_matches_model"] = int(matches)
    with run.figure("gpt_param_count") as (fig, ax):
        labels = {"gpt1": "GPT-1", "gpt2_xl": "GPT-2 XL", "gpt3": "GPT-3"}
        xs = range(len(rows))
        ax.bar(xs, [r[2] for r in rows], color="#1f77b4", label="Transformer blocks")
        ax.bar(xs, [r[1] for r in rows], bottom=[r[2] for r in rows], color="#ff7f0e", label="embeddings")
        ax.scatter(xs, [r[3] for r in rows], color="k", marker="_", s=400, zorder=3, label="stated size")
        ax.set(xticks=list(xs), xticklabels=[labels[r[0]] for r in rows], yscale="log", ylabel="parameters",
               title="parameters counted from the configurations")
        ax.legend()
    return metrics
