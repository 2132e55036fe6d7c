"""Positional encoding: self-attention cannot tell the order of its inputs, so each token's embedding
gets a vector that depends only on its position.

The Transformer's encoding is a bank of sinusoids whose wavelengths grow geometrically from 2 pi to
10000 * 2 pi, a sine and a cosine per frequency. Shifting the position by k turns each (sin, cos)
pair by the angle omega_i k, whatever the position: PE(pos + k) = M_k PE(pos) with one rotation
matrix M_k, so attention can pick out relative offsets with a linear map. The alternative is a
learned table with one trained vector per position, which knows nothing of positions it never saw.

    PE_{(pos, 2i)} = \\sin(pos\\, \\omega_i),\\quad PE_{(pos, 2i+1)} = \\cos(pos\\, \\omega_i),
    \\omega_i = 10000^{-2i/d_{model}}

Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (arXiv 1706.03762), section 3.5. The
encoding itself is deepatlas.nn.transformer.sinusoidal_positions; the Transformer's choice between
sinusoidal and learned positions is deepatlas.zoo.sequence.transformer.Positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepatlas.data.sequences import PAD, seq_split
from deepatlas.labs import Check, lab
from deepatlas.nn.attention import MultiHeadAttention
from deepatlas.nn.transformer import EncoderLayer, sinusoidal_positions
from deepatlas.zoo.sequence.transformer import Transformer, teacher_forcing


def shift_matrix(k: int, d_model: int, dtype=torch.float64) -> torch.Tensor:
    """M_k (d_model, d_model), block-diagonal with one 2x2 rotation per frequency, so that
    PE(pos + k) = M_k PE(pos) for every pos."""
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=dtype) / d_model)  # (d/2,)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    M = torch.zeros(d_model, d_model, dtype=dtype)
    # \begin{pmatrix} \sin \omega(p+k) \\ \cos \omega(p+k) \end{pmatrix}
    #   = \begin{pmatrix} \cos \omega k & \sin \omega k \\ -\sin \omega k & \cos \omega k \end{pmatrix}
    #     \begin{pmatrix} \sin \omega p \\ \cos \omega p \end{pmatrix}
    M[0::2, 0::2], M[0::2, 1::2] = torch.diag(c), torch.diag(s)
    M[1::2, 0::2], M[1::2, 1::2] = torch.diag(-s), torch.diag(c)
    return M


def best_linear_shift(pe: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    """The single matrix M that best maps every row pe[pos] to pe[pos + k] (least squares), and the
    relative residual ||pe[k:] - pe[:-k] M^T|| / ||pe[k:]||: zero iff one linear map serves every position."""
    A, Y = pe[:-k], pe[k:]  # (T-k, d)
    M = torch.linalg.lstsq(A, Y).solution.T  # (d, d)
    return M, ((Y - A @ M.T).norm() / Y.norm()).item()


# --- positional-encoding/properties: attention is order-blind; sinusoids shift by rotation --------------------

@dataclass
class PropertiesConfig:
    d_model: int = 64
    n_heads: int = 4
    length: int = 50  # tokens permuted in the order test
    batch_size: int = 8
    n_positions: int = 512  # positions in the shift test (more than d_model, so a fit is not trivial)
    max_offset: int = 128  # shifts k = 1, 2, 4, ..., max_offset


@lab(
    "positional-encoding/properties",
    card="positional-encoding",
    config=PropertiesConfig,
    scales={"quick": {"n_positions": 200, "length": 20, "max_offset": 16}, "default": {},
            "full": {"n_positions": 4096}},
    claims=[
        Check(
            "positional-encoding-order-blind-attention",
            lambda m: m["perm_err_attention"] <= 1e-12 and m["perm_err_layer"] <= 1e-12
            and m["perm_err_with_positions"] >= 1e-2,
            "permuting the {length} inputs of self-attention (float64) permutes its output to within "
            "{perm_err_attention:.1e} (a whole encoder layer: {perm_err_layer:.1e}), so nothing in it depends "
            "on order; with sinusoidal positions added the permuted output differs by {perm_err_with_positions:.2f} "
            "(rule: supported if equivariance holds to 1e-12 without positions and fails by >= 0.01 with them)",
        ),
        Check(
            "positional-encoding-relative-offsets",
            lambda m: m["shift_err"] <= 1e-3 and m["fit_residual_sinusoidal"] <= 1e-3,
            "over {n_positions} positions (d_model {d_model}) and shifts k = 1, 2, 4, ..., {max_offset}, the rotation "
            "M_k maps PE(pos) to PE(pos+k) with a largest error of {shift_err:.1e} (float32 encodings); the best "
            "single linear map fitted to all positions leaves a relative residual of {fit_residual_sinusoidal:.1e}, "
            "against {fit_residual_learned:.2f} for a table of random (untrained learned) position vectors "
            "(rule: supported if both are <= 1e-3)",
        ),
    ],
    budget_s=20,
    threads=1,
)
def properties(run, cfg: PropertiesConfig) -> dict:
    """Attention without positions is permutation-equivariant; PE(pos+k) is one rotation of PE(pos)."""
    torch.manual_seed(run.seed)
    g = torch.Generator().manual_seed(run.seed)
    D, T = cfg.d_model, cfg.length
    attn = MultiHeadAttention(D, cfg.n_heads).double()
    layer = EncoderLayer(D, cfg.n_heads, 4 * D).double()
    x = torch.randn(cfg.batch_size, T, D, generator=g, dtype=torch.float64)  # (B, T, D)
    perm = torch.randperm(T, generator=g)
    pe = sinusoidal_positions(T, D).double()  # (T, D)

    def perm_err(f, add_positions: bool = False) -> float:
        # \max | f(P x) - P f(x) |, positions (if any) fixed to the slots, not to the tokens
        with torch.no_grad():
            out = f(x + pe if add_positions else x)[:, perm]
            out_of_permuted = f(x[:, perm] + pe if add_positions else x[:, perm])
        return (out - out_of_permuted).abs().max().item()

    metrics: dict = {"length": T, "d_model": D, "n_positions": cfg.n_positions,
                     "perm_err_attention": perm_err(lambda z: attn(z)[0]), "perm_err_layer": perm_err(layer),
                     "perm_err_with_positions": perm_err(layer, add_positions=True)}

    offsets = [2**i for i in range(cfg.max_offset.bit_length()) if 2**i <= cfg.max_offset]
    metrics["max_offset"] = offsets[-1]
    table = sinusoidal_positions(cfg.n_positions, D).double()  # (P, D)
    learned = 0.02 * torch.randn(cfg.n_positions, D, generator=g, dtype=torch.float64)  # Positions' learned init
    errors, fit_sin, fit_learned = [], [], []
    for k in offsets:
        M = shift_matrix(k, D)
        # PE(pos + k) - M_k PE(pos), for every pos
        errors.append((table[k:] - table[:-k] @ M.T).abs().max().item())
        fit_sin.append(best_linear_shift(table, k)[1])
        fit_learned.append(best_linear_shift(learned, k)[1])
        run.log(k, shift_err=errors[-1], fit_sin=fit_sin[-1], fit_learned=fit_learned[-1])
    metrics.update(shift_err=max(errors), fit_residual_sinusoidal=max(fit_sin),
                   fit_residual_learned=min(fit_learned))

    with run.figure("positions", ncols=2, size=(10, 3.8)) as (fig, (ax_pe, ax_fit)):
        ax_pe.imshow(table[:100].T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
        ax_pe.set(xlabel="position", ylabel="dimension", title="sinusoidal PE")
        ax_fit.semilogy(offsets, fit_sin, "o-", label="sinusoidal")
        ax_fit.semilogy(offsets, fit_learned, "s-", label="random table (learned init)")
        ax_fit.semilogy(offsets, errors, "^--", label="sinusoidal, rotation M_k (max abs error)")
        ax_fit.set(xlabel="shift k", ylabel="residual of PE(pos+k) ~ M PE(pos)")
        ax_fit.set_xscale("log", base=2)
        ax_fit.set_xticks(offsets, [str(k) for k in offsets])
        ax_fit.minorticks_off()
        ax_fit.legend(fontsize=8)
    return metrics


# --- positional-encoding/extrapolation: train short, test long -------------------------------------------------

@dataclass
class ExtrapolationConfig:
    min_len: int = 5  # training lengths min_len .. max_len
    max_len: int = 12
    test_max_len: int = 20  # tested on lengths max_len+1 .. test_max_len, never seen in training
    vocab: int = 8
    n_train: int = 2000  # per training length
    n_test: int = 100  # per tested length
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 128
    n_layers: int = 2
    steps: int = 500
    batch_size: int = 64
    lr: float = 2e-3  # Adam, cosine-annealed to 0


def padded(seqs: list[torch.Tensor], width: int) -> torch.Tensor:
    """Sequences of different lengths, right-padded with PAD into one (N, width) tensor."""
    return torch.cat([F.pad(s, (0, width - s.shape[1]), value=PAD) for s in seqs])


@lab(
    "positional-encoding/extrapolation",
    card="positional-encoding",
    config=ExtrapolationConfig,
    scales={"quick": {"max_len": 7, "test_max_len": 9, "n_train": 300, "n_test": 20, "steps": 20, "d_model": 32,
                      "d_ff": 64, "n_layers": 1},
            "default": {},
            "full": {"max_len": 20, "test_max_len": 40, "steps": 3000, "n_train": 10_000}},
    claims=[
        Check(
            "positional-encoding-extrapolation",
            lambda m: m["sinusoidal_long_exact"] >= 0.9 * m["sinusoidal_short_exact"],
            "trained to copy sequences of length {min_len}-{max_len}, the Transformer with sinusoidal positions "
            "copies {sinusoidal_short_exact:.3f} of unseen sequences of those lengths exactly, but only "
            "{sinusoidal_long_exact:.3f} of lengths {max_len_plus_1}-{test_max_len} ({sinusoidal_long_token:.3f} "
            "of their tokens, {sinusoidal_next_exact:.3f} exact at length {max_len_plus_1}); with learned "
            "positions: {learned_short_exact:.3f} and {learned_long_exact:.3f} ({learned_long_token:.3f} of "
            "tokens) (rule: supported if the sinusoidal model keeps at least 90% of its in-range exact match "
            "on the longer lengths)",
        ),
    ],
    budget_s=90,
    threads=1,
)
def extrapolation(run, cfg: ExtrapolationConfig) -> dict:
    """Sinusoidal vs learned positions: train on copies of length <= L, test on longer ones."""
    train, tests = [], {}
    for length in range(cfg.min_len, cfg.test_max_len + 1):
        split = seq_split("copy", cfg.n_train, cfg.n_test, seed=run.seed, length=length, vocab=cfg.vocab)
        if length <= cfg.max_len:  # longer sequences are only ever tested
            train.append(split.x_train)
        tests[length] = split.x_test.to(run.device)
    x = padded(train, cfg.max_len).to(run.device)  # (N, max_len); copy: the target is the input
    tokens = cfg.vocab + 2
    g = torch.Generator().manual_seed(run.seed)
    results, metrics = {}, {"min_len": cfg.min_len, "max_len": cfg.max_len, "max_len_plus_1": cfg.max_len + 1,
                            "test_max_len": cfg.test_max_len}
    for kind in ("sinusoidal", "learned"):
        torch.manual_seed(run.seed)
        model = Transformer(tokens, tokens, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers, positions=kind,
                            max_len=cfg.test_max_len).to(run.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
        for step in run.progress(range(cfg.steps), desc=kind):
            xb = x[torch.randint(0, len(x), (cfg.batch_size,), generator=g).to(run.device)]  # (B, max_len)
            # the loss skips the padding: \mathcal{L} = -\frac{1}{N} \sum_{t < len} \log p(x_t \mid x_{<t}, x)
            loss = F.cross_entropy(model(xb, teacher_forcing(xb)).flatten(0, 1), xb.flatten(), ignore_index=PAD)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            if step % 20 == 0:
                run.log(step, **{f"{kind}_loss": loss.item()})
        model.eval()
        exact, token = {}, {}
        for length, xt in tests.items():
            right = model.greedy(xt, length) == xt  # (n_test, length)
            exact[length], token[length] = right.all(1).float().mean().item(), right.float().mean().item()
        results[kind] = exact
        short = [n for n in tests if n <= cfg.max_len]
        long = [n for n in tests if n > cfg.max_len]
        metrics[f"{kind}_short_exact"] = sum(exact[n] for n in short) / len(short)
        metrics[f"{kind}_long_exact"] = sum(exact[n] for n in long) / len(long)
        metrics[f"{kind}_long_token"] = sum(token[n] for n in long) / len(long)
        metrics[f"{kind}_next_exact"] = exact[cfg.max_len + 1]

    with run.figure("extrapolation") as (fig, ax):
        for kind, exact in results.items():
            ax.plot(list(exact), list(exact.values()), "o-", label=f"{kind} positions")
        ax.axvspan(cfg.min_len - 0.5, cfg.max_len + 0.5, color="grey", alpha=0.15, label="training lengths")
        ax.set(xlabel="sequence length", ylabel="exact match (greedy copy)", ylim=(-0.02, 1.02),
               title="copy: train short, test long")
        ax.legend()
    return metrics
