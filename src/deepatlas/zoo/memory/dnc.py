"""Differentiable neural computer: the NTM's controller and memory with better bookkeeping.

The DNC keeps the NTM's content lookup but drops its shift-based location addressing. Instead,
a usage vector records which rows hold something still needed; the write head can write to the
least used row (dynamic allocation) or to a row found by content, and free gates let read heads
release rows they have finished with. A temporal link matrix L[i, j] records that row i was
written right after row j, so a read head can walk through memory in the order it was written,
forwards or backwards, wherever those rows lie.

    u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} \\odot w^w_{t-1}) \\odot \\psi_t,
    a_t[\\phi_j] = (1 - u_t[\\phi_j]) \\prod_{i<j} u_t[\\phi_i],
    L_t[i, j] = (1 - w^w_t[i] - w^w_t[j]) L_{t-1}[i, j] + w^w_t[i] p_{t-1}[j],
    w^r_t = \\pi[1] L_t^\\top w^r_{t-1} + \\pi[2] c^r_t + \\pi[3] L_t w^r_{t-1}

Graves, Wayne, Reynolds, Harley, Danihelka et al., "Hybrid computing using a neural network with
dynamic external memory", Nature 538, 471-476, 2016. Its lab is the NTM's copy task, ntm/copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.nn.recurrent import LSTMCell
from deepatlas.registry import register_model
from deepatlas.zoo.memory.ntm import content_weights


def oneplus(x: torch.Tensor) -> torch.Tensor:
    # \mathrm{oneplus}(x) = 1 + \log(1 + e^x) \in [1, \infty)
    return 1 + F.softplus(x)


def usage(u_prev: torch.Tensor, w_write_prev: torch.Tensor, w_read_prev: torch.Tensor,
          free: torch.Tensor) -> torch.Tensor:
    """Usage after the last write and this step's frees: u (B, N), w^w (B, N), w^r (B, R, N), f (B, R)."""
    # \psi_t = \prod_i (1 - f^i_t w^{r,i}_{t-1})   how much of each row the read heads retain
    psi = torch.prod(1 - free[..., None] * w_read_prev, dim=1)  # (B, N)
    # u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} \odot w^w_{t-1}) \odot \psi_t
    return (u_prev + w_write_prev - u_prev * w_write_prev) * psi


def allocation(u: torch.Tensor) -> torch.Tensor:
    """Allocation weighting: u (B, N) in [0, 1] -> a (B, N), most weight on the least used row."""
    u = 1e-6 + (1 - 1e-6) * u  # keeps the products below away from exact zeros, as DeepMind's code does
    u_sorted, phi = torch.sort(u, dim=-1)  # \phi: rows in ascending order of usage
    # \prod_{i<j} u_t[\phi_i]   (an exclusive cumulative product)
    before = torch.cumprod(torch.cat([torch.ones_like(u[:, :1]), u_sorted[:, :-1]], 1), dim=1)
    # a_t[\phi_j] = (1 - u_t[\phi_j]) \prod_{i<j} u_t[\phi_i]
    return torch.zeros_like(u).scatter(1, phi, (1 - u_sorted) * before)


def update_links(link: torch.Tensor, precedence: torch.Tensor, w_write: torch.Tensor):
    """Temporal links after a write: L (B, N, N), p (B, N), w^w (B, N) -> (L_t, p_t)."""
    # L_t[i, j] = (1 - w^w[i] - w^w[j]) L_{t-1}[i, j] + w^w[i] p_{t-1}[j]
    link = (1 - w_write[:, :, None] - w_write[:, None, :]) * link + w_write[:, :, None] * precedence[:, None, :]
    link = link * (1 - torch.eye(link.shape[-1], dtype=link.dtype, device=link.device))  # L_t[i, i] = 0
    # p_t = (1 - \sum_i w^w_t[i]) p_{t-1} + w^w_t
    precedence = (1 - w_write.sum(1, keepdim=True)) * precedence + w_write
    return link, precedence


class DNC(nn.Module):
    """An LSTM controller, R read heads and one write head over an N x W memory.

    forward(x (B, T, input_size)) -> logits (B, T, output_size). `self.trace` keeps the write
    weighting, the first read head's weighting and its read modes of the last call:
    (B, T, N), (B, T, N), (B, T, 3)."""

    def __init__(self, input_size: int, output_size: int, hidden: int = 100, n_slots: int = 32,
                 slot_size: int = 16, n_reads: int = 1):
        super().__init__()
        if min(input_size, output_size, hidden, n_slots, slot_size, n_reads) < 1:
            raise ValueError("DNC sizes must be positive")
        self.N, self.W, self.R = n_slots, slot_size, n_reads
        self.controller = LSTMCell(input_size + n_reads * slot_size, hidden)
        # interface vector: R read keys and strengths, write key and strength, erase, write vector,
        # R free gates, allocation gate, write gate, 3 read modes per read head
        self.sizes = [n_reads * slot_size, n_reads, slot_size, 1, slot_size, slot_size, n_reads, 1, 1, 3 * n_reads]
        self.interface = nn.Linear(hidden, sum(self.sizes))
        self.out = nn.Linear(hidden + n_reads * slot_size, output_size)
        self.trace: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, O)
        B, T, _ = x.shape
        N, W, R = self.N, self.W, self.R
        memory = x.new_zeros(B, N, W)
        u, w_write, precedence = x.new_zeros(B, N), x.new_zeros(B, N), x.new_zeros(B, N)
        link = x.new_zeros(B, N, N)
        w_read, r = x.new_zeros(B, R, N), x.new_zeros(B, R, W)
        state = None
        hs, rs, trace = [], [], {"write": [], "read": [], "modes": []}
        for t in range(T):
            state = self.controller(torch.cat([x[:, t], r.flatten(1)], 1), state)
            k_r, beta_r, k_w, beta_w, erase, v, free, g_a, g_w, modes = self.interface(state[0]).split(self.sizes, 1)
            # -- write: allocate or look up by content, then erase and add
            u = usage(u, w_write, w_read, torch.sigmoid(free))
            c_w = content_weights(memory, k_w[:, None], oneplus(beta_w)[:, None])[:, 0]  # (B, N)
            g_a, g_w = torch.sigmoid(g_a), torch.sigmoid(g_w)
            # w^w_t = g^w_t [g^a_t a_t + (1 - g^a_t) c^w_t]
            w_write = g_w * (g_a * allocation(u) + (1 - g_a) * c_w)
            # M_t = M_{t-1} \odot (E - w^w e^\top) + w^w v^\top
            memory = memory * (1 - w_write[:, :, None] * torch.sigmoid(erase)[:, None, :]) \
                + w_write[:, :, None] * v[:, None, :]
            link, precedence = update_links(link, precedence, w_write)
            # -- read: backward, content and forward modes mixed by \pi
            forward_w = torch.einsum("bij,brj->bri", link, w_read)  # L_t w^r_{t-1}   (B, R, N)
            backward_w = torch.einsum("bji,brj->bri", link, w_read)  # L_t^\top w^r_{t-1}
            c_r = content_weights(memory, k_r.view(B, R, W), oneplus(beta_r)[..., None])  # (B, R, N)
            pi = torch.softmax(modes.view(B, R, 3), -1)  # (B, R, 3)
            # w^r = \pi[1] b + \pi[2] c + \pi[3] f
            w_read = pi[..., :1] * backward_w + pi[..., 1:2] * c_r + pi[..., 2:] * forward_w
            r = torch.einsum("brn,bnw->brw", w_read, memory)  # r = M_t^\top w^r   (B, R, W)
            hs.append(state[0])
            rs.append(r.flatten(1))
            for name, value in (("write", w_write), ("read", w_read[:, 0]), ("modes", pi[:, 0])):
                trace[name].append(value.detach())
        self.trace = {name: torch.stack(values, 1) for name, values in trace.items()}
        return self.out(torch.cat([torch.stack(hs, 1), torch.stack(rs, 1)], 2))


@register_model("dnc", card="dnc", example=lambda: (torch.rand(2, 5, 9),))
def dnc(input_size: int = 9, output_size: int = 8, **kw) -> DNC:
    return DNC(input_size, output_size, **kw)
