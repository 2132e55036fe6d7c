"""The FFN ablation: the linear FFN keeps the parameters and loses the non-linearity, the removed FFN
leaves the residual stream untouched, and the task's labels are what the docstring says."""

import pytest
import torch

from deepatlas.zoo.sequence.feed_forward_network import ValueTagger, n_params, sawtooth_parity

D, F, L = 16, 32, 2


def test_linear_ffn_has_the_same_parameters_and_is_affine():
    relu, linear = ValueTagger(2, D, 4, F, L, ffn="relu"), ValueTagger(2, D, 4, F, L, ffn="linear")
    assert n_params(relu) == n_params(linear)
    a, b = torch.randn(5, D), torch.randn(5, D)
    zero = torch.zeros(5, D)
    ffn = linear.encoder.layers[0].ffn
    # an affine map f satisfies f(a + b) + f(0) = f(a) + f(b)
    torch.testing.assert_close(ffn(a + b) + ffn(zero), ffn(a) + ffn(b))
    ffn = relu.encoder.layers[0].ffn
    assert not torch.allclose(ffn(a + b) + ffn(zero), ffn(a) + ffn(b))


def test_removed_ffn_leaves_the_residual_stream():
    relu, none = ValueTagger(2, D, 4, F, L), ValueTagger(2, D, 4, F, L, ffn="none")
    assert n_params(relu) - n_params(none) == L * (2 * D * F + F + D)
    layer = none.encoder.layers[0]
    x = torch.randn(2, 5, D)
    attn_only = x + layer.attn(layer.norm1(x))[0]  # pre-LN: x + MHA(LN(x)), then x + 0
    torch.testing.assert_close(layer(x), attn_only)


def test_tagger_shape_and_bad_variant():
    assert ValueTagger(3, D, 4, F, L)(torch.rand(2, 7)).shape == (2, 7, 3)
    with pytest.raises(ValueError, match="unknown FFN variant"):
        ValueTagger(ffn="gelu")


def test_sawtooth_parity_labels():
    x, y = sawtooth_parity(50, 9, pieces=4, seed=0)
    assert x.shape == y.shape == (50, 9) and x.min() >= -1 and x.max() < 1
    # four intervals of width 0.5 alternate 0, 1, 0, 1
    expected = ((x >= -0.5) & (x < 0)) | (x >= 0.5)
    assert torch.equal(y.bool(), expected)
    assert torch.equal(sawtooth_parity(50, 9, 4, seed=0)[0], x)
