"""VQ-VAE: nearest-codeword quantisation, the straight-through gradient, which loss moves what,
and the sharpness measures."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.generative.vq_vae import VQVAE, VectorQuantizer, extreme_share, gradient_energy


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.integers(1, 5), st.integers(0, 10_000))
def test_nearest_codeword_is_the_brute_force_argmin(k, d, seed):
    g = torch.Generator().manual_seed(seed)
    vq = VectorQuantizer(k, d, generator=g).double()
    z = torch.randn(7, 3, d, generator=g, dtype=torch.float64)
    brute = torch.cdist(z.reshape(-1, d), vq.codebook.detach()).argmin(1).view(7, 3)
    assert torch.equal(vq.nearest(z), brute)
    z_q, idx, _, _ = vq(z)
    torch.testing.assert_close(z_q, vq.codebook[idx].detach())


def test_straight_through_gradient_and_which_loss_moves_what():
    g = torch.Generator().manual_seed(0)
    vq = VectorQuantizer(4, 3, generator=g).double()
    z_e = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    z_q, idx, codebook_loss, commitment_loss = vq(z_e)
    w = torch.randn(5, 3, generator=g, dtype=torch.float64)
    (d_ze,) = torch.autograd.grad((z_q * w).sum(), z_e, retain_graph=True)
    torch.testing.assert_close(d_ze, w)  # the decoder's gradient at z_q, copied onto z_e
    d_ze, d_cb = torch.autograd.grad(codebook_loss, (z_e, vq.codebook), retain_graph=True, allow_unused=True)
    assert d_ze is None and d_cb.abs().sum() > 0  # the codebook loss moves only the codebook
    d_ze, d_cb = torch.autograd.grad(commitment_loss, (z_e, vq.codebook), allow_unused=True)
    assert d_cb is None  # the commitment loss moves only the encoder
    torch.testing.assert_close(d_ze, 2 * (z_e - vq.codebook[idx]).detach() / 5)


def test_vq_vae_shapes_and_budget():
    model = VQVAE(num_slots=4, num_codes=16, code_dim=3, hidden=(20,), generator=torch.Generator().manual_seed(0))
    logits, k, _, _ = model(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 1, 28, 28) and k.shape == (2, 4) and k.max() < 16
    assert model.code_bits == 4 * math.log2(16)
    with pytest.raises(ValueError, match="at least 2 codes"):
        VectorQuantizer(1, 3)


def test_sharpness_measures_prefer_crisp_images():
    crisp = torch.zeros(1, 1, 28, 28)
    crisp[..., 8:20, 12:16] = 1
    blurred = torch.nn.functional.avg_pool2d(crisp, 5, stride=1, padding=2, count_include_pad=False)
    assert gradient_energy(crisp) > gradient_energy(blurred) > 0
    assert extreme_share(crisp) == 1 and extreme_share(blurred) < 1
    # a vertical edge of height 12 contributes 2 * 12 unit jumps along x, a horizontal one 2 * 4 along y
    assert math.isclose(gradient_energy(crisp).item(), 24 / (28 * 27) + 8 / (27 * 28), rel_tol=1e-6)
