"""DNC memory management: allocation, usage and the temporal link matrix."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.nn.recurrent import LSTMCell
from deepatlas.zoo.memory.dnc import DNC, allocation, update_links, usage


def test_allocation_on_a_hand_worked_usage_vector():
    u = torch.tensor([[0.4, 0.1, 0.8, 0.5]], dtype=torch.float64)
    # free list by usage: rows 1 (0.1), 0 (0.4), 3 (0.5), 2 (0.8)
    # a[1] = 0.9; a[0] = 0.6 * 0.1; a[3] = 0.5 * 0.1 * 0.4; a[2] = 0.2 * 0.1 * 0.4 * 0.5
    expected = torch.tensor([[0.06, 0.9, 0.004, 0.02]], dtype=torch.float64)
    torch.testing.assert_close(allocation(u), expected, atol=1e-5, rtol=0)
    # all of it sums to 1 - prod(u): what is not yet used
    assert allocation(u).sum().item() == pytest.approx(1 - 0.4 * 0.1 * 0.8 * 0.5, abs=1e-5)


def test_allocation_picks_a_free_row_and_nothing_when_full():
    a = allocation(torch.tensor([[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    assert a[0].argmax().item() == 2 and a[0, 2].item() == pytest.approx(1.0, abs=1e-5)
    assert a[1].sum().item() < 1e-5


def test_usage_grows_with_writes_and_frees_rows_that_were_read():
    u = torch.tensor([[0.0, 0.5, 1.0]])
    w_write = torch.tensor([[1.0, 0.0, 0.0]])
    w_read = torch.tensor([[[0.0, 0.0, 1.0]]])  # one read head on row 2
    kept = usage(u, w_write, w_read, free=torch.tensor([[0.0]]))
    torch.testing.assert_close(kept, torch.tensor([[1.0, 0.5, 1.0]]))
    freed = usage(u, w_write, w_read, free=torch.tensor([[1.0]]))
    torch.testing.assert_close(freed, torch.tensor([[1.0, 0.5, 0.0]]))


def test_links_follow_the_order_of_writes():
    N = 6
    link, precedence = torch.zeros(1, N, N), torch.zeros(1, N)
    for row in (2, 5, 1):
        link, precedence = update_links(link, precedence, F.one_hot(torch.tensor([row]), N).float())
    assert link[0, 5, 2] == 1 and link[0, 1, 5] == 1 and link.sum() == 2
    w = F.one_hot(torch.tensor([5]), N).float()
    assert (link[0] @ w[0]).argmax().item() == 1  # forward from the second write: the third
    assert (link[0].T @ w[0]).argmax().item() == 2  # backward: the first


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 12))
def test_link_matrix_properties(seed, steps):
    g = torch.Generator().manual_seed(seed)
    N = 5
    link, precedence = torch.zeros(2, N, N, dtype=torch.float64), torch.zeros(2, N, dtype=torch.float64)
    for _ in range(steps):
        # a write weighting: non-negative, sums to at most 1
        w = torch.softmax(3 * torch.randn(2, N + 1, generator=g, dtype=torch.float64), -1)[:, :N]
        link, precedence = update_links(link, precedence, w)
        assert torch.diagonal(link, dim1=1, dim2=2).eq(0).all()
        assert link.min() >= 0 and link.max() <= 1
        assert (link.sum(2) <= 1 + 1e-9).all() and (link.sum(1) <= 1 + 1e-9).all()
        assert precedence.min() >= 0 and (precedence.sum(1) <= 1 + 1e-9).all()


def test_dnc_forward_shapes_and_weightings():
    torch.manual_seed(0)
    net = DNC(9, 8, hidden=20, n_slots=6, slot_size=4, n_reads=2)
    assert isinstance(net.controller, LSTMCell)
    out = net(torch.rand(3, 7, 9))
    assert out.shape == (3, 7, 8)
    assert net.trace["write"].shape == net.trace["read"].shape == (3, 7, 6)
    assert (net.trace["write"].sum(-1) <= 1 + 1e-6).all() and (net.trace["read"].sum(-1) <= 1 + 1e-6).all()
    torch.testing.assert_close(net.trace["modes"].sum(-1), torch.ones(3, 7))
    with pytest.raises(ValueError, match="positive"):
        DNC(9, 8, n_reads=0)
