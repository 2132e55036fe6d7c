"""ImageGPT: the logits for pixel i change with no pixel >= i; the likelihood is the chain rule's."""

import pytest
import torch

from deepatlas.zoo.generative.imagegpt import ImageGPT


def test_pixel_i_is_predicted_from_pixels_before_it_only():
    torch.manual_seed(0)
    net = ImageGPT(n_colors=3, n_pixels=12, n_layer=2, n_embd=16).eval()
    x = torch.randint(0, 3, (1, 12))
    base = net(x)
    for j in range(12):
        y = x.clone()
        y[0, j] = (y[0, j] + 1) % 3
        changed = (net(y) - base).abs().amax(-1)[0] > 1e-6  # (12,) which positions' logits moved
        assert not changed[:j + 1].any(), f"changing pixel {j} moved the prediction of a pixel <= {j}"
        if j < 11:
            assert changed[j + 1:].any()


def test_nll_is_the_sum_of_the_conditionals_and_probabilities_sum_to_one():
    torch.manual_seed(0)
    net = ImageGPT(n_colors=2, n_pixels=4, n_layer=1, n_embd=16).double().eval()
    states = ((torch.arange(16)[:, None] >> torch.arange(4)) & 1)  # all 2^4 binary images
    with torch.no_grad():
        log_p = torch.stack([-net.nll(s[None]) for s in states])
    assert torch.allclose(log_p.exp().sum(), torch.tensor(1.0, dtype=torch.float64))


def test_sample_shape_and_errors():
    net = ImageGPT(n_colors=2, n_pixels=9, n_layer=1, n_embd=16)
    s = net.sample(3, torch.Generator().manual_seed(0))
    assert s.shape == (3, 9) and set(s.unique().tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="pixels"):
        net(torch.zeros(1, 10, dtype=torch.long))
    with pytest.raises(ValueError, match="colours"):
        ImageGPT(n_colors=1)
