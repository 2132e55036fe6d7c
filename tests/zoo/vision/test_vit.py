"""ViT: patches, the patch embedding as a strided convolution, parameters, and why positions are needed."""

import pytest
import torch

from deepatlas.zoo.vision.vit import ViT, patchify, vit_tiny


def test_patchify_raster_order():
    x = torch.randn(2, 3, 8, 12)
    p = patchify(x, 4)  # (2, 6, 48)
    assert p.shape == (2, 6, 4 * 4 * 3)
    row, col = 1, 2  # the patch in the second row, third column is number 1 * 3 + 2
    expected = x[:, :, 4 * row:4 * row + 4, 4 * col:4 * col + 4].permute(0, 2, 3, 1).reshape(2, -1)
    assert torch.equal(p[:, row * 3 + col], expected)
    with pytest.raises(ValueError, match="divisible"):
        patchify(x, 5)


def test_patch_embedding_equals_a_strided_convolution():
    """x_p E over flattened patches is a P x P convolution with stride P (the form most code uses)."""
    P, C, D = 4, 2, 5
    embed = torch.nn.Linear(P * P * C, D).double()
    conv = torch.nn.Conv2d(C, D, P, stride=P).double()
    with torch.no_grad():
        conv.weight.copy_(embed.weight.view(D, P, P, C).permute(0, 3, 1, 2))  # (row, col, channel) -> (C, P, P)
        conv.bias.copy_(embed.bias)
    x = torch.randn(3, C, 12, 8, dtype=torch.float64)
    expected = conv(x).flatten(2).transpose(1, 2)  # (B, N, D)
    assert torch.allclose(embed(patchify(x, P)), expected)


def test_shapes_and_parameter_count():
    d, depth, d_ff, P, K = 16, 2, 24, 7, 10
    net = ViT(d_model=d, depth=depth, n_heads=2, d_ff=d_ff, patch_size=P, num_classes=K)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, K)
    n = (28 // P) ** 2
    per_layer = (4 * d * d + 4 * d) + (2 * d * d_ff + d_ff + d) + 2 * 2 * d  # attention, MLP, two LayerNorms
    expected = (P * P * d + d) + d + (n + 1) * d + depth * per_layer + 2 * d + (d * K + K)
    assert sum(p.numel() for p in net.parameters()) == expected
    assert vit_tiny()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_without_position_embeddings_the_patch_order_does_not_matter():
    """Self-attention is permutation-equivariant and the [class] token reads it out, so without
    E_pos a shuffled image (patches permuted) gets the same logits; with E_pos it does not."""
    torch.manual_seed(0)
    net = ViT(d_model=16, depth=2, n_heads=2, d_ff=32, patch_size=7).double().eval()
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    blocks = x.unfold(2, 7, 7).unfold(3, 7, 7)  # (2, 1, 4, 4, 7, 7)
    perm = torch.randperm(16)
    shuffled = blocks.reshape(2, 1, 16, 7, 7)[:, :, perm].reshape(2, 1, 4, 4, 7, 7)
    shuffled = shuffled.permute(0, 1, 2, 4, 3, 5).reshape(2, 1, 28, 28)
    assert torch.equal(patchify(shuffled, 7), patchify(x, 7)[:, perm])
    assert not torch.allclose(net(shuffled), net(x))
    with torch.no_grad():
        net.pos.zero_()
    assert torch.allclose(net(shuffled), net(x))


def test_attention_weights_are_kept():
    net = ViT(d_model=16, depth=2, n_heads=4, d_ff=32, patch_size=4).eval()
    net(torch.randn(3, 1, 28, 28), need_weights=True)
    w = net.layers[-1].last_weights  # (B, H, T, T)
    assert w.shape == (3, 4, 50, 50)
    assert torch.allclose(w.sum(-1), torch.ones(3, 4, 50))


def test_bad_arguments():
    with pytest.raises(ValueError, match="patch_size"):
        ViT(patch_size=5)
    with pytest.raises(ValueError, match="n_heads"):
        ViT(d_model=30, n_heads=4)
