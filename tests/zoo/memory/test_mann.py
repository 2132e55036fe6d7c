"""MANN: least recently used access and the one-shot episodes it is trained on."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.nn.recurrent import LSTMCell
from deepatlas.zoo.memory.mann import MANN, draw, episodes, glyph_classes, least_used, lrua_write


def test_least_used_marks_the_smallest_usages():
    usage = torch.tensor([[0.5, 0.1, 0.9, 0.2], [0.0, 3.0, 2.0, 1.0]])
    assert least_used(usage, 1).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]
    assert least_used(usage, 2).tolist() == [[0, 1, 0, 1], [1, 0, 0, 1]]


def test_lrua_writes_to_the_least_used_row_or_the_row_read_last():
    memory = torch.ones(1, 4, 2)
    w_read = F.one_hot(torch.tensor([[2]]), 4).float()  # (1, 1, 4): row 2 was read last
    w_lu = F.one_hot(torch.tensor([0]), 4).float()  # (1, 4): row 0 is least used
    key = torch.tensor([[[3.0, 4.0]]])
    fresh, w = lrua_write(memory, w_read, w_lu, torch.tensor([[[-50.0]]]), key)  # sigma(alpha) ~ 0
    assert w[0, 0].tolist() == pytest.approx([1, 0, 0, 0])
    assert fresh[0].tolist() == [[3, 4], [1, 1], [1, 1], [1, 1]]  # row 0 cleared, then the key written
    update, w = lrua_write(memory, w_read, w_lu, torch.tensor([[[50.0]]]), key)  # sigma(alpha) ~ 1
    assert w[0, 0].tolist() == pytest.approx([0, 0, 1, 0])
    assert update[0].tolist() == [[0, 0], [1, 1], [4, 5], [1, 1]]  # row 0 still cleared; key added to row 2


def test_mann_forward_shapes_and_controller():
    torch.manual_seed(0)
    net = MANN(105, 5, hidden=16, n_slots=8, slot_size=6, n_reads=2)
    assert isinstance(net.controller, LSTMCell)
    assert net(torch.rand(3, 7, 105)).shape == (3, 7, 5)
    with pytest.raises(ValueError, match="smaller than n_slots"):
        MANN(10, 5, n_slots=2, n_reads=2)


def test_episodes_give_each_label_one_step_late():
    g = torch.Generator().manual_seed(0)
    x, y, shown = episodes(4, 5, 30, g)
    assert x.shape == (4, 30, 105) and y.shape == shown.shape == (4, 30)
    labels = x[..., 100:]
    assert labels[:, 0].eq(0).all()
    torch.testing.assert_close(labels[:, 1:], F.one_hot(y[:, :-1], 5).float())
    for b in range(4):
        for t in range(30):
            assert shown[b, t] == (y[b, :t + 1] == y[b, t]).sum()


def test_glyph_instances_resemble_their_class_more_than_other_classes():
    g = torch.Generator().manual_seed(0)
    classes = glyph_classes(100, g)
    a, b = draw(classes, g), draw(classes, g)
    assert set(a.unique().tolist()) <= {0.0, 1.0} and a.shape == (100, 100)
    cos = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    same, other = cos.diag().mean(), (cos.sum() - cos.diag().sum()) / (100 * 99)
    assert same > other + 0.2
    assert not torch.equal(a, b)
