"""Prototypical networks: prototypes, distances (and the linear-classifier identity), episodes."""

import torch
from torch import nn

from deepatlas.zoo.meta.protonet import ProtoNet, episode_loss, pixel_prototypes, prototypes, squared_distances


def test_prototypes_and_logits():
    torch.manual_seed(0)
    support, query = torch.randn(2, 3, 4, 5, dtype=torch.float64), torch.randn(2, 6, 5, dtype=torch.float64)
    net = ProtoNet(nn.Identity())
    c = support.mean(2)  # (B, N, D)
    expected = -torch.cdist(query, c).square()
    torch.testing.assert_close(net(support, query), expected)
    torch.testing.assert_close(prototypes(support), c)
    # -\|f - c_k\|^2 = 2 c_k^T f - \|c_k\|^2 - \|f\|^2: a linear classifier up to a term shared by all classes
    linear = 2 * query @ c.transpose(1, 2) - c.square().sum(-1)[:, None]
    torch.testing.assert_close(net(support, query) + query.square().sum(-1, keepdim=True), linear)


def test_pixel_prototypes_is_protonet_with_identity_embedding():
    support, query = torch.rand(2, 3, 2, 1, 4, 4), torch.rand(2, 5, 1, 4, 4)
    torch.testing.assert_close(pixel_prototypes(support, query), ProtoNet(nn.Flatten())(support, query))


def test_episode_loss_labels_queries_class_by_class():
    logits = torch.full((1, 6, 3), -10.0)
    for i, k in enumerate([0, 0, 1, 1, 2, 2]):
        logits[0, i, k] = 10.0
    loss, acc = episode_loss(logits, n_query=2)
    assert acc.item() == 1.0 and loss.item() < 1e-6
    assert squared_distances(torch.zeros(1, 1, 2), torch.ones(1, 1, 2)).item() == 2.0
