"""Autoregressive modelling: the chain rule turns a joint distribution into next-element predictions.

Any distribution over sequences factorises, in a fixed order, into conditionals of each element
given the ones before it. A causal network computes every conditional of a known sequence in one
parallel pass, which makes training and scoring (exact likelihood) fast; drawing a new sequence
cannot be parallelised, because each element must be sampled before the next conditional exists, so
generation costs one network pass per element. A temperature rescales the logits before sampling:
below 1 it sharpens the conditionals towards their most likely element, above 1 it flattens them.

    p(\\mathbf{x}) = \\prod_{t=1}^{n} p(x_t \\mid x_{<t}),
    \\mathcal{L}(\\theta) = -\\sum_t \\log p_\\theta(x_t \\mid x_{<t}),
    p_\\tau(x_t = i \\mid x_{<t}) = \\frac{\\exp(z_i / \\tau)}{\\sum_j \\exp(z_j / \\tau)}

Larochelle & Murray, "The Neural Autoregressive Distribution Estimator", AISTATS 2011. The networks here
are the character GPT of zoo/sequence/gpt.py; this file holds the algorithm around any causal network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepatlas.data.real import char_dataset, shakespeare_text
from deepatlas.labs import Check, Goal, lab
from deepatlas.zoo.sequence.gpt import GPT, apply_temperature


def score(net, x: torch.Tensor) -> torch.Tensor:
    """Exact log-likelihood of sequences x (B, T) after their first element, in one parallel pass: (B,).
    \\log p(x_{2..T} \\mid x_1) = \\sum_{t \\ge 2} \\log p(x_t \\mid x_{<t})."""
    logp = net(x[:, :-1]).log_softmax(-1)  # (B, T - 1, V)
    return logp.gather(-1, x[:, 1:, None])[..., 0].sum(1)


@torch.no_grad()
def sample_sequences(net, prompt: torch.Tensor, n_new: int, temperature: float,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Extend prompt (B, T0) by n_new elements, one network pass each; also return, per step, whether the
    sampled element was the most likely one (B, n_new)."""
    x, top = prompt, []
    for _ in range(n_new):
        logits = net(x[:, -net.block_size:])[:, -1]  # (B, V): p(x_t | x_{<t})
        nxt = torch.multinomial(apply_temperature(logits, temperature).softmax(-1), 1, generator=generator)
        top.append(nxt[:, 0] == logits.argmax(-1))
        x = torch.cat([x, nxt], dim=1)
    return x, torch.stack(top, 1)


def distinct_ngrams(seqs: torch.Tensor, n: int) -> float:
    """Distinct n-grams over all n-grams of the sequences (B, T): 1 when nothing repeats."""
    grams = seqs.unfold(1, n, 1).reshape(-1, n)  # (B (T - n + 1), n)
    return len(torch.unique(grams, dim=0)) / len(grams)


def unigram_entropy(seqs: torch.Tensor, vocab_size: int) -> float:
    """Entropy (nats) of the symbol frequencies of the sequences."""
    p = torch.bincount(seqs.flatten(), minlength=vocab_size).double()
    p = p[p > 0] / p.sum()
    return -(p * p.log()).sum().item()


# --- autoregressive-model/sampling-cost --------------------------------------------------------------

@dataclass
class SamplingCostConfig:
    lengths: str = "8,16,32,64,128"  # sequence lengths, comma-separated
    n_sequences: int = 16
    n_layer: int = 2
    n_embd: int = 64
    vocab_size: int = 65
    repeats: int = 3  # each time is the fastest of this many
    slow_factor: float = 10.0  # sampling counts as slow when it costs this many scoring passes


def _fastest(fn, repeats: int, clock) -> tuple[float, object]:
    """The shortest of `repeats` timings of fn(), and the result of that run."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = clock()
        result = fn()
        if clock() - start < best:
            best, out = clock() - start, result
    return best, out


@lab(
    "autoregressive-model/sampling-cost",
    card="autoregressive-model",
    config=SamplingCostConfig,
    scales={"quick": {"lengths": "4,8,16", "repeats": 1}, "default": {}, "full": {"lengths": "16,64,256,1024"}},
    goals=[Goal("ratio_growth", ">", 1.0)],
    claims=[
        Check("autoregressive-model-slow-sampling",
              lambda m: m["ratio_longest"] >= m["slow_factor"] and m["ratio_growth"] > 1,
              "{n_sequences} sequences from a {n_layer}-layer causal Transformer: sampling {shortest} elements "
              "step by step took {ratio_shortest:.1f}x the CPU time of scoring them in one parallel pass, "
              "{longest} elements {ratio_longest:.1f}x ({sample_s_longest:.3f} s vs {score_s_longest:.4f} s); "
              "the ratio grew {ratio_growth:.1f}-fold with the length ('slow' read as at least {slow_factor:.0f}x)"),
    ],
    budget_s=60,
    threads=1,
)
def sampling_cost(run, cfg: SamplingCostConfig) -> dict:
    """Sampling step by step against scoring in one pass, for growing sequence lengths."""
    lengths = sorted(int(t) for t in cfg.lengths.split(","))
    torch.manual_seed(run.seed)
    g = torch.Generator().manual_seed(run.seed)
    # untrained weights: the time of a forward pass does not depend on their values
    net = GPT(cfg.vocab_size, lengths[-1], cfg.n_layer, 4, cfg.n_embd).to(run.device).eval()
    metrics: dict = {"n_sequences": cfg.n_sequences, "n_layer": cfg.n_layer, "slow_factor": cfg.slow_factor,
                     "shortest": lengths[0], "longest": lengths[-1]}
    # on the CPU, this process's CPU time: the wall time of a shared machine also counts other programs' work
    clock = time.process_time if run.device.type == "cpu" else time.perf_counter
    ratios = []
    for T in run.progress(lengths, desc="lengths"):
        prompt = torch.randint(0, cfg.vocab_size, (cfg.n_sequences, 1), generator=g).to(run.device)
        sample_s, (seqs, _) = _fastest(lambda: sample_sequences(net, prompt, T - 1, 1.0, g), cfg.repeats, clock)
        with torch.no_grad():
            score_s, _ = _fastest(lambda: score(net, seqs), 5 * cfg.repeats, clock)
        ratios.append(sample_s / score_s)
        metrics[f"sample_s_{T}"], metrics[f"score_s_{T}"], metrics[f"ratio_{T}"] = sample_s, score_s, ratios[-1]
        run.log(T, ratio=ratios[-1])
    metrics |= {"ratio_shortest": ratios[0], "ratio_longest": ratios[-1], "ratio_growth": ratios[-1] / ratios[0],
                "sample_s_longest": metrics[f"sample_s_{lengths[-1]}"],
                "score_s_longest": metrics[f"score_s_{lengths[-1]}"]}
    with run.figure("sampling_cost", ncols=2) as (fig, (ax_t, ax_r)):
        ax_t.plot(lengths, [metrics[f"sample_s_{T}"] for T in lengths], "o-", label="sample step by step")
        ax_t.plot(lengths, [metrics[f"score_s_{T}"] for T in lengths], "s-", label="score in one pass")
        ax_t.set(xscale="log", yscale="log", xlabel="sequence length", ylabel="seconds",
                 title=f"{cfg.n_sequences} sequences")
        ax_t.legend()
        ax_r.plot(lengths, ratios, "o-", color="C3")
        ax_r.set(xscale="log", yscale="log", xlabel="sequence length", ylabel="sampling / scoring time")
    return metrics


# --- autoregressive-model/temperature ------------------------------------------------------------------

@dataclass
class TemperatureConfig:
    temperatures: str = "0.5,1,1.5"
    n_layer: int = 2
    n_embd: int = 64
    block_size: int = 64
    batch_size: int = 32
    steps: int = 600
    lr: float = 3e-3  # AdamW, cosine decay
    corpus_chars: int = 1_000_000  # the first million characters of the plays
    n_samples: int = 16
    sample_len: int = 200
    n: int = 3  # n-gram order of the diversity measure


def _key(tau: float) -> str:
    """A metric-name suffix for a temperature: 0.5 -> t05, 1 -> t1, 1.5 -> t15."""
    return "t" + f"{tau:g}".replace(".", "")


@lab(
    "autoregressive-model/temperature",
    card="autoregressive-model",
    config=TemperatureConfig,
    scales={"quick": {"n_layer": 1, "n_embd": 32, "steps": 20, "corpus_chars": 50_000, "n_samples": 4,
                      "sample_len": 40},
            "default": {}, "full": {"n_layer": 4, "n_embd": 128, "steps": 3000, "corpus_chars": 5_000_000}},
    goals=[Goal("diversity_spread", ">", 0.0), Goal("determinism_spread", ">", 0.0)],
    claims=[
        Check("autoregressive-model-temperature",
              lambda m: m["monotone_diversity"] == 1 and m["monotone_determinism"] == 1,
              "character GPT on Shakespeare ({val_loss:.3f} nats/char held out), {n_samples} samples of "
              "{sample_len} characters per temperature: distinct {n}-grams {distinct_t05:.3f} / {distinct_t1:.3f} / "
              "{distinct_t15:.3f} at tau = 0.5 / 1 / 1.5 (held-out text {distinct_real:.3f}); share of steps that "
              "picked the most likely character {top_t05:.3f} / {top_t1:.3f} / {top_t15:.3f}"),
    ],
    budget_s=90,
    threads=1,
)
def temperature(run, cfg: TemperatureConfig) -> dict:
    """Samples of a character model at temperatures 0.5, 1, 1.5: diversity against determinism."""
    taus = [float(t) for t in cfg.temperatures.split(",")]
    data = char_dataset(shakespeare_text().text[:cfg.corpus_chars], cfg.block_size)
    V = len(data.vocab)
    torch.manual_seed(run.seed)
    g = torch.Generator().manual_seed(run.seed)
    net = GPT(V, cfg.block_size, cfg.n_layer, 4, cfg.n_embd).to(run.device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    for step in run.progress(range(1, cfg.steps + 1), desc="char model"):
        x, y = data.batch("train", cfg.batch_size, g)
        loss = F.cross_entropy(net(x.to(run.device)).flatten(0, 1), y.flatten().to(run.device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            run.log(step, loss=loss)
    net.eval()
    with torch.no_grad():
        vx, vy = data.batch("test", 256, torch.Generator().manual_seed(0))
        val_loss = F.cross_entropy(net(vx.to(run.device)).flatten(0, 1), vy.flatten().to(run.device)).item()

    prompt = data.test[:1].expand(cfg.n_samples, 1).to(run.device)  # every sample starts from the same character
    metrics: dict = {"val_loss": val_loss, "n_samples": cfg.n_samples, "sample_len": cfg.sample_len, "n": cfg.n}
    texts = {}
    for tau in taus:
        seqs, top = sample_sequences(net, prompt, cfg.sample_len, tau, g)
        seqs = seqs[:, 1:].cpu()
        key = _key(tau)
        metrics[f"distinct_{key}"] = distinct_ngrams(seqs, cfg.n)
        metrics[f"entropy_{key}"] = unigram_entropy(seqs, V)
        metrics[f"top_{key}"] = top.float().mean().item()
        texts[key] = data.vocab.decode(seqs[0])
    real = data.test[:cfg.n_samples * cfg.sample_len].view(cfg.n_samples, cfg.sample_len)
    metrics["distinct_real"] = distinct_ngrams(real, cfg.n)
    distinct = [metrics[f"distinct_{_key(t)}"] for t in taus]
    top = [metrics[f"top_{_key(t)}"] for t in taus]
    metrics["monotone_diversity"] = int(all(a < b for a, b in zip(distinct, distinct[1:])))
    metrics["monotone_determinism"] = int(all(a > b for a, b in zip(top, top[1:])))
    metrics["diversity_spread"] = distinct[-1] - distinct[0]
    metrics["determinism_spread"] = top[0] - top[-1]

    with run.figure("temperature", ncols=2, size=(12, 4.5)) as (fig, (ax_m, ax_t)):
        ax_m.plot(taus, distinct, "o-", label=f"distinct {cfg.n}-grams (diversity)")
        ax_m.plot(taus, top, "s-", label="picked the most likely (determinism)")
        ax_m.axhline(metrics["distinct_real"], color="C0", ls=":", label="held-out text, distinct")
        ax_m.set(xlabel="temperature", ylim=(0, 1.02))
        ax_m.legend(fontsize=8)
        ax_t.axis("off")
        shown = "\n\n".join(f"tau = {tau:g}:\n{texts[_key(tau)][:120]!r}" for tau in taus)
        ax_t.text(0, 1, shown, va="top", family="monospace", fontsize=7, wrap=True)
    return metrics
