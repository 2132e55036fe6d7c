"""Causal data: random DAGs, structural equation models sampled on them, and a pendulum scene.

Every generator is a pure function of its arguments and `seed` (its own torch.Generator, never
the global RNG). Graphs follow the convention of NOTEARS: B[i, j] = 1 means the edge i -> j, and a
linear SEM reads X = X W + Z row by row, i.e. x_j = sum_i W_ij x_i + z_j.

- `er_dag`: an Erdos-Renyi DAG with about `edges_per_node * d` edges (ER2 for the default 2).
- `edge_weights`: weights drawn uniformly from +-[0.5, 2], as in the NOTEARS experiments.
- `linear_sem`: linear-Gaussian (or other noise) samples, X = Z (I - W)^{-1}.
- `nonlinear_sem`: x_j = f_j(parents) + z_j with random MLP mechanisms ("mlp", the NOTEARS-MLP
  paper's) or the DAG-GNN paper's x = A^T cos(x + 1) + z ("cos").
- `pendulum_scene`: small images of a light, a pendulum and its shadow whose four factors follow an
  SCM (light angle and pendulum angle cause the shadow's position and length), for CausalVAE.
"""

from __future__ import annotations

import torch


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def topological_order(B: torch.Tensor) -> list[int]:
    """The nodes of the DAG B (d, d) in an order where every parent comes before its children."""
    adj = (B != 0).to(torch.int64)
    indegree = adj.sum(0).tolist()
    ready = [j for j in range(len(indegree)) if indegree[j] == 0]
    order = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for j in adj[i].nonzero().flatten().tolist():
            indegree[j] -= 1
            if indegree[j] == 0:
                ready.append(j)
    if len(order) != len(indegree):
        raise ValueError("the graph has a directed cycle, so it has no topological order")
    return order


def er_dag(d: int, edges_per_node: float = 2.0, seed: int = 0) -> torch.Tensor:
    """A random DAG (d, d) of 0/1 (float64): each pair is an edge with probability p, oriented along
    a random order of the nodes; p = 2 k / (d - 1) gives k d edges in expectation (ER-k)."""
    if d < 2:
        raise ValueError(f"a DAG to learn needs at least 2 nodes, got d={d}")
    if not 0 < edges_per_node <= (d - 1) / 2:
        raise ValueError(f"edges_per_node must be in (0, (d-1)/2] = (0, {(d - 1) / 2}], got {edges_per_node}")
    g = _generator(seed)
    p = 2 * edges_per_node / (d - 1)
    upper = torch.triu((torch.rand(d, d, generator=g) < p).double(), diagonal=1)  # edges i -> j for i < j
    perm = torch.randperm(d, generator=g)
    return upper[perm][:, perm]  # relabel the nodes so the order is hidden


def edge_weights(B: torch.Tensor, seed: int = 0, low: float = 0.5, high: float = 2.0) -> torch.Tensor:
    """W (d, d): on each edge of B a weight of magnitude U(low, high) and random sign, 0 elsewhere."""
    return B.double() * _signed_uniform(B.shape, _generator(seed), low, high)


def _signed_uniform(shape, g: torch.Generator, low: float = 0.5, high: float = 2.0) -> torch.Tensor:
    """Magnitudes U(low, high) with a random sign."""
    magnitude = low + (high - low) * torch.rand(shape, generator=g, dtype=torch.float64)
    return torch.where(torch.rand(shape, generator=g) < 0.5, -magnitude, magnitude)


def _noise(n: int, d: int, g: torch.Generator, kind: str, scale) -> torch.Tensor:
    scale = torch.as_tensor(scale, dtype=torch.float64)
    if kind == "gaussian":
        z = torch.randn(n, d, generator=g, dtype=torch.float64)
    elif kind == "exponential":
        z = -torch.rand(n, d, generator=g, dtype=torch.float64).log()
    elif kind == "gumbel":
        z = -(-torch.rand(n, d, generator=g, dtype=torch.float64).log()).log()
    else:
        raise ValueError(f"unknown noise {kind!r}; choose gaussian, exponential or gumbel")
    return z * scale


def linear_sem(W: torch.Tensor, n: int, seed: int = 0, noise: str = "gaussian",
               noise_scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """n samples (n, d) of the linear SEM x = x W + z, z with independent entries."""
    topological_order(W)  # raises on a cycle: (I - W) would still invert, but it is no SEM
    d = W.shape[0]
    z = _noise(n, d, _generator(seed), noise, noise_scale)  # (n, d)
    # X = X W + Z  \iff  X = Z (I - W)^{-1}
    return torch.linalg.solve((torch.eye(d, dtype=torch.float64) - W.double()).T, z.T).T


def nonlinear_sem(B: torch.Tensor, n: int, seed: int = 0, kind: str = "mlp", hidden: int = 100,
                  noise_scale: float = 1.0) -> torch.Tensor:
    """n samples (n, d) of x_j = f_j(x_pa(j)) + z_j, z ~ N(0, noise_scale^2), nodes in topological order.

    kind "mlp": f_j = sigmoid(x_pa W1) W2 with W1, W2 ~ +-U(0.5, 2) (NOTEARS-MLP's simulation);
    kind "cos": f_j = sum_i W_ij cos(x_i + 1) with W the edge weights of B (DAG-GNN's)."""
    if kind not in ("mlp", "cos"):
        raise ValueError(f"unknown nonlinear SEM {kind!r}; choose mlp or cos")
    g = _generator(seed)
    d = B.shape[0]
    x = torch.zeros(n, d, dtype=torch.float64)
    z = noise_scale * torch.randn(n, d, generator=g, dtype=torch.float64)
    W = B.double() * _signed_uniform(B.shape, g)
    for j in topological_order(B):
        parents = B[:, j].nonzero().flatten()
        if len(parents) == 0:
            x[:, j] = z[:, j]
            continue
        if kind == "mlp":
            W1, W2 = _signed_uniform((len(parents), hidden), g), _signed_uniform(hidden, g)
            f = torch.sigmoid(x[:, parents] @ W1) @ W2
        else:
            f = torch.cos(x[:, parents] + 1) @ W[parents, j]
        x[:, j] = f + z[:, j]
    return x


# --- a pendulum, a light and a shadow ------------------------------------------------------------

PENDULUM_FACTORS = ("light", "angle", "shadow_pos", "shadow_len")
PENDULUM_GRAPH = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float64)
PIVOT, ARM, GROUND = (0.5, 0.25), 0.3, 0.92  # in the unit square, y pointing down


def pendulum_shadow(light: torch.Tensor, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The shadow on the ground of the arm pivot -> bob under parallel light at `light` radians from
    vertical: a point p falls at p_x + (ground - p_y) tan(light). Returns its centre and length."""
    bob_x, bob_y = PIVOT[0] + ARM * torch.sin(angle), PIVOT[1] + ARM * torch.cos(angle)
    s_pivot = PIVOT[0] + (GROUND - PIVOT[1]) * torch.tan(light)
    s_bob = bob_x + (GROUND - bob_y) * torch.tan(light)
    return (s_pivot + s_bob) / 2, (s_bob - s_pivot).abs()


def render_pendulum(light: torch.Tensor, angle: torch.Tensor, shadow_pos: torch.Tensor,
                    shadow_len: torch.Tensor, size: int = 20) -> torch.Tensor:
    """Images (n, 1, size, size) in [0, 1]: a sun at the top whose x encodes `light`, the arm and bob,
    and the shadow as a bar on the ground. The shadow is drawn from its own factors, so an image of
    an intervened scene shows whatever shadow the (possibly intervened) factors say."""
    c = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    py, px = torch.meshgrid(c, c, indexing="ij")  # (size, size)
    px, py = px[None], py[None]  # (1, size, size)
    col = lambda t: t.double().reshape(-1, 1, 1)  # noqa: E731
    width = 1.0 / size
    sun_x = 0.5 + 0.8 * col(light)
    sun = torch.exp(-((px - sun_x) ** 2 + (py - 0.07) ** 2) / (2 * (1.2 * width) ** 2))
    bob_x, bob_y = PIVOT[0] + ARM * torch.sin(col(angle)), PIVOT[1] + ARM * torch.cos(col(angle))
    # distance of each pixel to the segment pivot -> bob
    ax, ay = bob_x - PIVOT[0], bob_y - PIVOT[1]
    t = (((px - PIVOT[0]) * ax + (py - PIVOT[1]) * ay) / (ax ** 2 + ay ** 2)).clamp(0, 1)
    dist = ((px - PIVOT[0] - t * ax) ** 2 + (py - PIVOT[1] - t * ay) ** 2).sqrt()
    arm = torch.exp(-dist ** 2 / (2 * (0.6 * width) ** 2))
    bob = torch.exp(-((px - bob_x) ** 2 + (py - bob_y) ** 2) / (2 * (1.5 * width) ** 2))
    half = col(shadow_len) / 2 + 0.5 * width
    inside = torch.sigmoid((half - (px - col(shadow_pos)).abs()) / (0.3 * width))
    shadow = inside * torch.exp(-(py - GROUND) ** 2 / (2 * (0.8 * width) ** 2))
    return (sun + arm + bob + shadow).clamp(0, 1)[:, None].float()


def pendulum_scene(n: int = 1000, seed: int = 0, size: int = 20,
                   noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n scenes: images (n, 1, size, size) and factors (n, 4) in the order of PENDULUM_FACTORS.

    The SCM: light ~ U(-0.45, 0.45), angle ~ U(-0.8, 0.8) (radians, independent roots);
    (shadow_pos, shadow_len) = pendulum_shadow(light, angle) + noise * N(0, I)."""
    g = _generator(seed)
    light = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 0.9
    angle = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 1.6
    pos, length = pendulum_shadow(light, angle)
    pos = pos + noise * torch.randn(n, generator=g, dtype=torch.float64)
    length = (length + noise * torch.randn(n, generator=g, dtype=torch.float64)).clamp(min=0)
    factors = torch.stack([light, angle, pos, length], 1)  # (n, 4)
    return render_pendulum(light, angle, pos, length, size), factors.float()


__all__ = ["er_dag", "edge_weights", "linear_sem", "nonlinear_sem", "topological_order", "pendulum_scene",
           "pendulum_shadow", "render_pendulum", "PENDULUM_FACTORS", "PENDULUM_GRAPH"]
