import pytest
import torch

from deepatlas.zoo.generative.dit import DiT, DiTBlock, sincos_2d


def test_adaln_zero_blocks_start_as_the_identity():
    block = DiTBlock(16, 4)
    x, c = torch.randn(2, 9, 16), torch.randn(2, 16)
    torch.testing.assert_close(block(x, c), x)
    net = DiT(side=14, patch=2, d=16, depth=2, n_heads=2)
    assert net(torch.randn(3, 1, 14, 14), torch.tensor([0, 5, 999])).abs().max() == 0  # zero final layer


def test_patchify_unpatchify_roundtrip_and_tokens():
    net = DiT(side=14, patch=7, d=16, depth=1, n_heads=2)
    x = torch.randn(2, 1, 14, 14)
    p = 7
    tokens = x.reshape(2, 1, 2, p, 2, p).permute(0, 2, 4, 3, 5, 1).reshape(2, 4, p * p)  # row-major patches
    torch.testing.assert_close(net.unpatchify(tokens), x)
    assert net.embed(x).flatten(2).shape[-1] == (14 // p) ** 2


def test_patch_tokens_are_local_until_attention():
    """With depth 0 the prediction for a patch depends only on that patch: a gradient test of the tokenisation."""
    torch.manual_seed(0)
    net = DiT(side=8, patch=4, d=16, depth=0, n_heads=2).double()
    for layer in (net.ada[1], net.out):
        torch.nn.init.normal_(layer.weight)
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    net(x, torch.tensor([10]))[0, 0, :4, :4].sum().backward()
    assert x.grad[0, 0, :4, :4].abs().sum() > 0
    assert x.grad[0, 0, 4:, :].abs().sum() == 0 and x.grad[0, 0, :, 4:].abs().sum() == 0


def test_position_code_and_errors():
    pe = sincos_2d(3, 8)
    assert pe.shape == (9, 8)
    assert len({tuple(r.tolist()) for r in pe}) == 9  # every position distinct
    with pytest.raises(ValueError, match="multiple of the patch"):
        DiT(side=14, patch=3)
