"""DBN: the up-pass is the RBMs' conditionals in turn, the classifier starts from their weights, and greedy
pre-training trains each layer on the layer below's hidden probabilities."""

import pytest
import torch

from deepatlas.zoo.generative.dbn import DBN, pretrain, sigmoid_mlp


def test_up_pass_and_classifier_share_the_rbm_weights():
    g = torch.Generator().manual_seed(0)
    dbn = DBN((6, 5, 3), g)
    v = torch.rand(4, 6)
    h1 = torch.sigmoid(v @ dbn.rbms[0].W + dbn.rbms[0].b)
    top, recon = dbn(v)
    assert torch.allclose(top, torch.sigmoid(h1 @ dbn.rbms[1].W + dbn.rbms[1].b))
    assert torch.allclose(recon, dbn.rbms[0].p_v(dbn.rbms[1].p_v(top)))  # back down the directed layers
    mlp = dbn.classifier(2)
    assert torch.allclose(mlp[:-1](v), top)  # the hidden layers are the up-pass, the read-out is new
    assert [m.weight.shape for m in mlp if isinstance(m, torch.nn.Linear)] == \
        [m.weight.shape for m in sigmoid_mlp((6, 5, 3), 2) if isinstance(m, torch.nn.Linear)]


def test_greedy_pretraining_lowers_each_layers_reconstruction_error(quiet_run):
    g = torch.Generator().manual_seed(0)
    # data with structure: two prototypes and bit flips
    proto = torch.tensor([[1.0] * 6 + [0.0] * 6, [0.0] * 6 + [1.0] * 6])
    x = proto[torch.randint(0, 2, (256,), generator=g)]
    x = (x + (torch.rand(x.shape, generator=g) < 0.05)) % 2
    dbn = DBN((12, 8, 4), g)
    with torch.no_grad():
        before = (dbn.rbms[0].reconstruct(x) - x).square().mean().item()
    errors = pretrain(quiet_run, dbn, x, epochs=20, lr=0.1, batch_size=32, k=1, g=g)
    assert len(errors) == 2 and errors[0] < before / 2
    # the second RBM was trained on the first one's hidden probabilities, not on the pixels
    h = dbn.rbms[0].p_h(x).detach()
    assert abs((dbn.rbms[1].reconstruct(h) - h).square().mean().item() - errors[1]) < 1e-6


def test_bad_sizes():
    with pytest.raises(ValueError, match="at least"):
        DBN((5,))
