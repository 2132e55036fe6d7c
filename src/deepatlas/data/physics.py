"""Trajectories of ideal conservative systems with known energy: the mass-spring and the pendulum.

Both are separable Hamiltonians H(q, p) = p^2 / (2 m) + V(q), integrated with the Stormer-Verlet
(leapfrog) scheme, which is symplectic: its energy error stays bounded, O(dt^2), for all time
instead of drifting. Samples carry the exact time derivatives from Hamilton's equations,
(dq/dt, dp/dt) = (dH/dp, -dH/dq), the targets that Hamiltonian and Lagrangian networks learn from.

    mass-spring: H = p^2/2 + q^2/2              (m = k = 1)
    pendulum:    H = p^2/2 + g (1 - cos q)      (m = l = 1, g = 3 as in Greydanus et al. 2019)

States are (q, p) pairs; with m = l = 1 the momentum equals the velocity, p = dq/dt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SYSTEMS = ("mass_spring", "pendulum")
GRAVITY = 3.0


def _check(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")


def potential_grad(system: str, q: torch.Tensor) -> torch.Tensor:
    """dV/dq: q for the spring, g sin q for the pendulum."""
    _check(system)
    return q if system == "mass_spring" else GRAVITY * torch.sin(q)


def energy(system: str, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The true Hamiltonian H(q, p), elementwise."""
    _check(system)
    v = 0.5 * q**2 if system == "mass_spring" else GRAVITY * (1 - torch.cos(q))
    # H = p^2 / 2 + V(q)
    return 0.5 * p**2 + v


def vector_field(system: str, q: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hamilton's equations: dq/dt = dH/dp = p, dp/dt = -dH/dq = -V'(q)."""
    return p, -potential_grad(system, q)


def leapfrog(system: str, q: torch.Tensor, p: torch.Tensor, dt: float | torch.Tensor, n_steps: int):
    """Stormer-Verlet: n_steps of size dt (a float, or a tensor broadcasting with q) from (q, p); returns (q, p) of shape (n_steps + 1, *q.shape)."""
    qs, ps = [q], [p]
    for _ in range(n_steps):
        # p_{n+1/2} = p_n - \frac{dt}{2} V'(q_n)
        p_half = p - 0.5 * dt * potential_grad(system, q)
        # q_{n+1} = q_n + dt\, p_{n+1/2}
        q = q + dt * p_half
        # p_{n+1} = p_{n+1/2} - \frac{dt}{2} V'(q_{n+1})
        p = p_half - 0.5 * dt * potential_grad(system, q)
        qs.append(q)
        ps.append(p)
    return torch.stack(qs), torch.stack(ps)


def random_states(system: str, n: int, generator: torch.Generator, energy_range=(0.3, 1.5),
                  dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """n states (q, p) of energy uniform in energy_range, at a uniform random phase of the level set.

    The energy range keeps the pendulum below the separatrix (H < 2 g), i.e. swinging, not rotating."""
    _check(system)
    lo, hi = energy_range
    if not 0 < lo < hi or (system == "pendulum" and hi >= 2 * GRAVITY):
        raise ValueError(f"energy_range must satisfy 0 < lo < hi (< {2 * GRAVITY} for the pendulum), got {energy_range}")
    e = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=dtype)
    # start at the bottom with all energy kinetic, then run a random time longer than every period here
    q0, p0 = torch.zeros(n, dtype=dtype), torch.sqrt(2 * e)
    t = 8.0 * torch.rand(n, generator=generator, dtype=dtype)
    n_steps = 800
    q, p = leapfrog(system, q0, p0, t / n_steps, n_steps)  # a step per sample, ending at its own time
    return q[-1], p[-1]


@dataclass
class Trajectories:
    """n trajectories of T + 1 states, with exact derivatives; tensors of shape (n, T + 1)."""

    t: torch.Tensor  # (T + 1,)
    q: torch.Tensor
    p: torch.Tensor
    dq: torch.Tensor
    dp: torch.Tensor
    system: str

    def energy(self) -> torch.Tensor:  # (n, T + 1)
        return energy(self.system, self.q, self.p)


def trajectories(system: str, n: int, seed: int, t_end: float = 10.0, dt: float = 0.1, substeps: int = 10,
                 energy_range=(0.3, 1.5), noise: float = 0.0) -> Trajectories:
    """n trajectories from random states, sampled every dt (leapfrog with dt / substeps inside).

    `noise` adds Gaussian noise of that standard deviation to the observed q, p (not the derivatives,
    which stay exact at the noiseless state)."""
    g = torch.Generator().manual_seed(seed)
    q0, p0 = random_states(system, n, g, energy_range)
    n_out = int(round(t_end / dt))
    q, p = leapfrog(system, q0, p0, dt / substeps, n_out * substeps)
    q, p = q[::substeps].T.contiguous(), p[::substeps].T.contiguous()  # (n, T + 1)
    dq, dp = vector_field(system, q, p)
    if noise > 0:
        q = q + noise * torch.randn(q.shape, generator=g, dtype=q.dtype)
        p = p + noise * torch.randn(p.shape, generator=g, dtype=p.dtype)
    t = dt * torch.arange(n_out + 1, dtype=q.dtype)
    return Trajectories(t, q, p, dq, dp, system)
