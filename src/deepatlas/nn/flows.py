"""Normalising-flow plumbing: invertible layers, their composition, the base density and its training loop.

Every layer maps data towards the base space with `forward(x) -> (y, log|det dy/dx|)` and back with
`inverse(y) -> x`. A `Flow` chains them and adds the standard-normal base density, so that by the
change of variables

    \\log p_X(x) = \\log \\mathcal{N}(f(x); 0, I) + \\sum_k \\log|\\det \\partial z_k / \\partial z_{k-1}|.

Here live the pieces several flows share: the flow container, fixed permutations, the affine
coupling (RealNVP, reused by Glow and as Flow++'s baseline), the logit transform for data in a box,
the MLP that conditions a coupling, and the maximum-likelihood loop. The model-specific layers
(additive coupling, actnorm and 1x1 convolutions, logistic-mixture coupling) live in their zoo files.

Rezende & Mohamed, "Variational Inference with Normalizing Flows", ICML 2015;
Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.nn.linear import Linear
from deepatlas.optim.optimizers import Adam

LOG_2PI = math.log(2 * math.pi)


def _flat_sum(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(len(t), -1).sum(1)  # (B, ...) -> (B,)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """\\log \\mathcal{N}(z; 0, I) summed over all but the batch dimension: (B, ...) -> (B,)."""
    # \log \mathcal{N}(z) = -\tfrac12 \sum_d (z_d^2 + \log 2\pi)
    return -0.5 * _flat_sum(z.square() + LOG_2PI)


class Flow(nn.Module):
    """A chain of invertible layers on top of a standard-normal base over `shape` (one sample's shape)."""

    def __init__(self, layers: list[nn.Module], shape: tuple[int, ...]):
        super().__init__()
        if not layers:
            raise ValueError("a flow needs at least one layer")
        self.layers = nn.ModuleList(layers)
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, *shape) -> z, (B,)
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"flow over samples of shape {self.shape} got a batch of shape {tuple(x.shape)}")
        log_det = x.new_zeros(len(x))
        for layer in self.layers:
            x, ld = layer(x)
            # \sum_k \log|\det J_k|
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:  # (B, *shape) -> (B,)
        z, log_det = self(x)
        # \log p_X(x) = \log p_Z(f(x)) + \log|\det \partial f / \partial x|
        return standard_normal_log_prob(z) + log_det

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One parallel pass: z ~ N(0, I), x = f^{-1}(z)."""
        p = next(self.parameters(), None)
        dtype, device = (p.dtype, p.device) if p is not None else (torch.get_default_dtype(), "cpu")
        z = torch.randn(n, *self.shape, generator=generator, dtype=dtype).to(device)
        return self.inverse(z)


class Permute(nn.Module):
    """A fixed permutation of the last dimension: volume-preserving, log-det 0."""

    def __init__(self, perm: torch.Tensor):
        super().__init__()
        self.register_buffer("perm", perm.long())
        self.register_buffer("inv", torch.argsort(perm.long()))

    @classmethod
    def reverse(cls, dim: int) -> Permute:
        return cls(torch.arange(dim - 1, -1, -1))

    @classmethod
    def shuffle(cls, dim: int, generator: torch.Generator | None = None) -> Permute:
        return cls(torch.randperm(dim, generator=generator))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, D)
        return x[:, self.perm], x.new_zeros(len(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, self.inv]


def conditioner(n_in: int, n_out: int, hidden: int = 64, depth: int = 2,
                generator: torch.Generator | None = None) -> nn.Sequential:
    """The MLP inside a coupling: `depth` hidden ReLU layers; the last layer starts near zero (weights
    times 0.01, bias 0) so that the coupling starts close to the identity, yet every weight gets a gradient."""
    sizes = [n_in, *[hidden] * depth]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Linear(a, b, generator=generator), nn.ReLU()]
    last = Linear(sizes[-1], n_out, generator=generator)
    with torch.no_grad():
        last.weight.mul_(1e-2)
        last.bias.zero_()
    return nn.Sequential(*layers, last)


def alternating_masks(dim: int, n: int) -> list[torch.Tensor]:
    """Binary masks b (1 = kept, conditions the rest) that alternate parity of the index: even, odd, ..."""
    parity = torch.arange(dim) % 2
    return [(parity == (k % 2)).float() for k in range(n)]


class AffineCoupling(nn.Module):
    """RealNVP's masked affine coupling on (B, D) with mask b (1 = kept):

        y = b \\odot x + (1 - b) \\odot (x \\odot \\exp(s(b \\odot x)) + t(b \\odot x)).

    The log-scale is soft-bounded, s = scale \\cdot \\tanh(\\cdot), to keep early training stable.
    `context` (B, C), if given, is appended to the conditioner's input (a conditional flow)."""

    def __init__(self, mask: torch.Tensor, hidden: int = 64, depth: int = 2, context: int = 0,
                 generator: torch.Generator | None = None):
        super().__init__()
        dim = len(mask)
        self.register_buffer("mask", mask.float())
        self.net = conditioner(dim + context, 2 * dim, hidden, depth, generator)
        self.scale = nn.Parameter(torch.ones(dim))

    def _s_t(self, kept: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = kept if context is None else torch.cat([kept, context], 1)
        s, t = self.net(h).chunk(2, dim=1)  # (B, D) each
        free = 1 - self.mask
        return free * self.scale * torch.tanh(s), free * t

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._s_t(self.mask * x, context)
        # y = b \odot x + (1 - b) \odot (x \odot e^{s} + t)   (s, t vanish on the kept part)
        y = x * torch.exp(s) + t
        # \log|\det J| = \sum_j s_j
        return y, s.sum(1)

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        s, t = self._s_t(self.mask * y, context)
        # x = (y - t) \odot e^{-s}
        return (y - t) * torch.exp(-s)


class Logit(nn.Module):
    """Data in the box [0, K)^D to the real line: y = logit(\\alpha + (1 - 2\\alpha) x / K).

    The boundary margin \\alpha keeps the logit finite at 0 (RealNVP uses \\alpha = 0.05)."""

    def __init__(self, k: float, alpha: float = 0.05):
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
        self.k, self.alpha = float(k), alpha

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = (1 - 2 * self.alpha) / self.k
        p = self.alpha + c * x
        y = torch.log(p) - torch.log1p(-p)
        # \log|dy/dx| = \log c - \log p - \log(1 - p)
        return y, _flat_sum(math.log(c) - torch.log(p) - torch.log1p(-p))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(y) - self.alpha) * self.k / (1 - 2 * self.alpha)


def fit_density(run, name: str, model: nn.Module, x: torch.Tensor, steps: int, lr: float,
                batch_size: int, generator: torch.Generator, nll=None) -> list[float]:
    """Maximum likelihood by Adam on minibatches: minimise -\\frac1B \\sum_n \\log p(x_n).

    `nll(model, batch)` overrides the loss (e.g. a dequantisation bound); logged as `<name>_nll`."""
    nll = nll or (lambda m, xb: -m.log_prob(xb).mean())
    opt = Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch_size,), generator=generator).to(x.device)
        loss = nll(model, x[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            run.log(step, **{f"{name}_nll": losses[-1]})
    return losses
