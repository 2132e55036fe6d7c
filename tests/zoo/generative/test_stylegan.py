"""Modulated convolution against the per-sample kernels it stands for; style mixing;
the R1 penalty and the stroke-thickness statistic in closed form."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.zoo.generative.stylegan import (
    StyleGenerator,
    mix_styles,
    mixed_styles,
    modulated_conv2d,
    pixel_norm,
    r1_penalty,
    stroke_thickness,
)


def _per_sample_reference(x, weight, s, demodulate, eps=1e-8):
    """StyleGAN2's fused form: build each sample's kernel w'' = d_j s_i w_ijk and convolve with it."""
    outs = []
    for n in range(len(x)):
        w = weight * s[n][None, :, None, None]  # (C_out, C_in, k, k)
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=(1, 2, 3), keepdim=True) + eps)
        outs.append(F.conv2d(x[n:n + 1], w, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("k", [1, 3])
def test_modulated_conv_matches_per_sample_kernels_in_value_and_gradient(demodulate, k):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 4, k, k, generator=g, dtype=torch.float64, requires_grad=True)
    s = (torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.5).requires_grad_(True)
    ours = modulated_conv2d(x, weight, s, demodulate)
    ref = _per_sample_reference(x, weight, s, demodulate)
    torch.testing.assert_close(ours, ref)
    probe = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad((ours * probe).sum(), (x, weight, s)),
                               torch.autograd.grad((ref * probe).sum(), (x, weight, s)))


def test_demodulation_undoes_any_rescaling_of_the_styles():
    x, weight, s = torch.randn(2, 3, 4, 4).double(), torch.randn(5, 3, 3, 3).double(), torch.rand(2, 3).double() + 0.1
    torch.testing.assert_close(modulated_conv2d(x, weight, 7.0 * s), modulated_conv2d(x, weight, s))


def test_pixel_norm_gives_unit_mean_square():
    z = pixel_norm(torch.randn(10, 32) * 5)
    torch.testing.assert_close(z.square().mean(1), torch.ones(10), atol=1e-5, rtol=0)


def test_forward_is_synthesis_with_one_w_in_every_layer():
    torch.manual_seed(0)
    G = StyleGenerator()
    z = torch.randn(4, 32)
    noise = G.noise(4, torch.Generator().manual_seed(1))
    w = G.mapping(z)
    torch.manual_seed(5)
    out = G.synthesis(mix_styles(w, w, slice(0, 3), G.num_ws), noise)
    assert out.shape == (4, 1, 14, 14)
    torch.testing.assert_close(out, G.synthesis(w[:, None].expand(-1, G.num_ws, -1), noise))


def test_mix_styles_reads_w_b_only_at_the_chosen_layers():
    w_a, w_b = torch.zeros(2, 8), torch.ones(2, 8)
    ws = mix_styles(w_a, w_b, slice(3, 6), num_ws=6)
    assert ws.shape == (2, 6, 8)
    assert (ws[:, :3] == 0).all() and (ws[:, 3:] == 1).all()


def test_each_layer_reads_its_own_style():
    """Swapping only the first layer's w changes the image: the layers do not all read one shared w."""
    torch.manual_seed(0)
    G = StyleGenerator()
    noise = G.noise(2)
    w_a, w_b = G.mapping(torch.randn(2, 32)), G.mapping(torch.randn(2, 32))
    a = G.synthesis(mix_styles(w_a, w_a, slice(0, 1), G.num_ws), noise)
    coarse = G.synthesis(mix_styles(w_a, w_b, slice(0, 1), G.num_ws), noise)
    assert (coarse - a).abs().max() > 1e-4  # the first layer's style matters


def test_synthesis_rejects_a_wrong_number_of_styles():
    G = StyleGenerator()
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(torch.randn(2, 3, 32))


def test_mixing_at_no_layers_gives_w_a_and_at_all_layers_gives_w_b():
    G = StyleGenerator(generator=torch.Generator().manual_seed(0))
    noise = G.noise(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        w_a, w_b = G.mapping(torch.randn(3, 32)), G.mapping(torch.randn(3, 32))
        image_a = G.synthesis(w_a[:, None].expand(-1, G.num_ws, -1), noise)
        image_b = G.synthesis(w_b[:, None].expand(-1, G.num_ws, -1), noise)
        torch.testing.assert_close(G.synthesis(mix_styles(w_a, w_b, slice(0, 0), G.num_ws), noise), image_a)
        torch.testing.assert_close(G.synthesis(mix_styles(w_a, w_b, slice(0, G.num_ws), G.num_ws), noise), image_b)
        coarse_a_fine_b = G.synthesis(mix_styles(w_a, w_b, G.fine, G.num_ws), noise)
    assert (coarse_a_fine_b - image_a).abs().max() > 1e-4 and (coarse_a_fine_b - image_b).abs().max() > 1e-4


def test_coarse_and_fine_split_the_styles_by_resolution():
    G = StyleGenerator()
    layers = list(range(G.num_ws))
    assert sorted(layers[G.coarse] + layers[G.fine]) == layers
    assert [G.resolutions[i] for i in layers[G.coarse]] == [4, 7, 7]
    assert [(G.resolutions + (14,))[i] for i in layers[G.fine]] == [14, 14, 14]  # the last is ToImage


def test_parameters_are_drawn_from_the_given_generator():
    a = StyleGenerator(generator=torch.Generator().manual_seed(3))
    b = StyleGenerator(generator=torch.Generator().manual_seed(3))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_mixed_styles_switch_once_from_w1_to_w2(prob):
    G = StyleGenerator(generator=torch.Generator().manual_seed(0))
    ws = mixed_styles(G, 64, prob, torch.Generator().manual_seed(1)).detach()  # (B, num_ws, w_dim)
    same_as_first = (ws == ws[:, :1]).all(-1)  # (B, num_ws)
    if prob == 0.0:
        assert same_as_first.all()
    else:
        cut = same_as_first.int().argmin(1)  # the first layer that reads w_2
        assert (cut >= 1).all() and len(cut.unique()) > 1
        for row, c in zip(ws, cut):
            assert (row[c:] == row[c]).all() and not (row[c] == row[0]).all()


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
    a = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    x = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    D = lambda x: (x * a).flatten(1).sum(1)  # noqa: E731 -- D(x) = <a, x>, gradient a everywhere
    torch.testing.assert_close(r1_penalty(D, x), a.square().sum())


def test_stroke_thickness_of_a_bar_is_its_width():
    for width in (1, 2, 3):
        x = torch.zeros(1, 1, 14, 14, dtype=torch.float64)
        x[..., 2:12, 5:5 + width] = 1.0  # a bar 10 long and `width` wide: ink 10 w, outline 2 (10 + w)
        torch.testing.assert_close(stroke_thickness(x), torch.tensor([2 * 10 * width / (2 * (10 + width))],
                                                                     dtype=torch.float64))
