"""Sinusoidal positions: the shift by k is one rotation for every position; attention without positions
is permutation-equivariant; learned positions are a table."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.nn.attention import MultiHeadAttention
from deepatlas.zoo.sequence.positional_encoding import best_linear_shift, padded, shift_matrix
from deepatlas.zoo.sequence.transformer import Positions


def exact_pe(T: int, d: int) -> torch.Tensor:
    """The paper's formula in float64, written independently of the shared block."""
    pe = torch.empty(T, d, dtype=torch.float64)
    for pos in range(T):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            pe[pos, 2 * i], pe[pos, 2 * i + 1] = math.sin(angle), math.cos(angle)
    return pe


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 60), d=st.sampled_from([2, 8, 16]))
def test_shift_is_the_same_rotation_at_every_position(k, d):
    pe = exact_pe(80, d)
    M = shift_matrix(k, d)
    torch.testing.assert_close(pe[k:], pe[:-k] @ M.T, atol=1e-10, rtol=0)
    torch.testing.assert_close(M @ M.T, torch.eye(d, dtype=torch.float64))  # a rotation: orthogonal


def test_shifts_compose():
    torch.testing.assert_close(shift_matrix(3, 8) @ shift_matrix(4, 8), shift_matrix(7, 8))


def test_shared_sinusoids_follow_the_formula():
    torch.testing.assert_close(Positions(16, "sinusoidal", 50)(50).double(), exact_pe(50, 16), atol=1e-5, rtol=0)


def test_best_linear_shift_separates_sinusoids_from_random_vectors():
    pe = exact_pe(200, 16)
    M, residual = best_linear_shift(pe, 5)
    assert residual < 1e-8
    torch.testing.assert_close(pe[5:], pe[:-5] @ M.T, atol=1e-8, rtol=0)
    random = torch.randn(200, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert best_linear_shift(random, 5)[1] > 0.5


def test_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2).double()
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    perm = torch.randperm(7)
    out = attn(x)[0]
    torch.testing.assert_close(attn(x[:, perm])[0], out[:, perm])
    pe = exact_pe(7, 8)
    assert (attn(x[:, perm] + pe)[0] - attn(x + pe)[0][:, perm]).abs().max() > 1e-3


def test_learned_positions_are_a_table():
    pos = Positions(6, "learned", 10)
    assert pos.table.shape == (10, 6) and torch.equal(pos(4), pos.table[:4])


def test_padded():
    a, b = torch.tensor([[2, 3]]), torch.tensor([[4, 5, 6]])
    assert torch.equal(padded([a, b], 4), torch.tensor([[2, 3, 0, 0], [4, 5, 6, 0]]))
