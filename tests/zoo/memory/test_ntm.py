"""NTM addressing, step by step against the paper's equations, and the copy task's data."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.nn.recurrent import LSTMCell
from deepatlas.zoo.memory.ntm import (NTM, address, bit_errors, content_weights, copy_batch, read, sharpen,
                                      shift, write)


def test_content_weights_are_a_softmax_of_cosine_similarity():
    g = torch.Generator().manual_seed(0)
    memory = torch.randn(2, 7, 5, generator=g, dtype=torch.float64)
    key = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    beta = torch.rand(2, 3, 1, generator=g, dtype=torch.float64) * 5
    cos = F.cosine_similarity(key[:, :, None, :], memory[:, None, :, :], dim=-1)  # (2, 3, 7)
    torch.testing.assert_close(content_weights(memory, key, beta), torch.softmax(beta * cos, -1))


def test_shift_moves_the_focus_circularly():
    w = F.one_hot(torch.tensor([[0, 4]]), 5).double()  # (1, 2, 5): heads on rows 0 and 4
    forward = torch.tensor([[[0.0, 0.0, 1.0]] * 2], dtype=torch.float64)  # all mass on offset +1
    backward = torch.tensor([[[1.0, 0.0, 0.0]] * 2], dtype=torch.float64)  # offset -1
    assert shift(w, forward).argmax(-1).tolist() == [[1, 0]]  # row 4 + 1 wraps to row 0
    assert shift(w, backward).argmax(-1).tolist() == [[4, 3]]
    s = torch.tensor([[[0.2, 0.5, 0.3]] * 2], dtype=torch.float64)
    blurred = shift(w, s)
    # \tilde w(i) = \sum_j w(j) s(i - j): row 0's mass spreads to rows 4, 0, 1 as 0.2, 0.5, 0.3
    torch.testing.assert_close(blurred[0, 0], torch.tensor([0.5, 0.3, 0, 0, 0.2], dtype=torch.float64))


def test_sharpen():
    w = torch.tensor([[[0.1, 0.2, 0.7]]], dtype=torch.float64)
    torch.testing.assert_close(sharpen(w, torch.ones(1, 1, 1, dtype=torch.float64)), w, atol=1e-7, rtol=0)
    sharp = sharpen(w, torch.full((1, 1, 1), 3.0, dtype=torch.float64))
    torch.testing.assert_close(sharp, w ** 3 / (w ** 3).sum(), atol=1e-7, rtol=0)
    assert sharp[0, 0, 2] > w[0, 0, 2]


def test_write_erases_then_adds_row_by_row():
    memory = torch.ones(1, 3, 2, dtype=torch.float64)
    w = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.5, 0.5]]], dtype=torch.float64)  # two heads
    erase = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]], dtype=torch.float64)
    add = torch.tensor([[[2.0, 3.0], [4.0, 4.0]]], dtype=torch.float64)
    new = write(memory, w, erase, add)[0]
    # row 1: erased by head 1 in column 0, halved by head 2; then + 1*(2, 3) + 0.5*(4, 4)
    expected = torch.tensor([[1.0, 1.0], [0.0 + 2 + 2, 0.5 + 3 + 2], [0.5 + 2, 0.5 + 2]], dtype=torch.float64)
    torch.testing.assert_close(new, expected)
    torch.testing.assert_close(read(new[None], w[:, :1])[0, 0], expected[1])


def test_addressing_has_correct_gradients():
    g = torch.Generator().manual_seed(1)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64).requires_grad_()

    memory, key, beta = rand(1, 5, 3), rand(1, 2, 3), rand(1, 2, 1)
    w_prev = torch.softmax(rand(1, 2, 5), -1).detach().requires_grad_()
    gate, s = rand(1, 2, 1), torch.softmax(rand(1, 2, 3), -1).detach().requires_grad_()
    gamma = (1 + rand(1, 2, 1)).detach().requires_grad_()
    assert torch.autograd.gradcheck(address, (memory, w_prev, key, beta, gate, s, gamma))


def test_ntm_forward_shapes_and_weightings():
    torch.manual_seed(0)
    net = NTM(9, 8, hidden=20, n_slots=6, slot_size=4, n_reads=2)
    assert isinstance(net.controller, LSTMCell)
    out = net(torch.rand(3, 7, 9))
    assert out.shape == (3, 7, 8)
    for name in ("read", "write"):
        assert net.trace[name].shape == (3, 7, 6)
        torch.testing.assert_close(net.trace[name].sum(-1), torch.ones(3, 7))
    with pytest.raises(ValueError, match="positive"):
        NTM(9, 8, n_slots=0)


def test_copy_batch_and_bit_errors():
    g = torch.Generator().manual_seed(0)
    x, y = copy_batch(4, 3, 6, g)
    assert x.shape == (4, 7, 7) and y.shape == (4, 3, 6)
    torch.testing.assert_close(x[:, :3, :6], y)
    assert x[:, 3, 6].eq(1).all() and x[:, 4:].eq(0).all() and x[:, :3, 6].eq(0).all()

    class Oracle(torch.nn.Module):  # answers with the bits it was shown, as logits of +-1
        def forward(self, x):
            L = (x.shape[1] - 1) // 2
            return torch.cat([x[:, :L + 1, :6], x[:, :L, :6]], 1) * 2 - 1

    assert bit_errors(Oracle(), x, y).eq(0).all()
    assert bit_errors(lambda x: -Oracle()(x), x, y).eq(18).all()
