"""ALBERT: shared layers really are one layer, the factorised embedding, and the parameter counts."""

import pytest
import torch

from deepatlas.registry import create_model
from deepatlas.zoo.sequence.albert import ALBERT, albert_param_count, encoder_flops
from deepatlas.zoo.sequence.bert import BERT, N_SPECIAL, bert_param_count, count_params


def small(**kw) -> ALBERT:
    torch.manual_seed(0)
    return ALBERT(**{"vocab_size": 30, "max_len": 12, "n_layer": 3, "n_head": 2, "d_model": 16,
                     "embedding_size": 6, **kw})


def test_shared_model_applies_one_layer_n_times():
    model = small().eval()
    assert len(model.layers) == 1
    ids = torch.randint(N_SPECIAL, 30, (2, 8))
    x = model.project(model.emb_norm(model.tok(ids) + model.seg(torch.zeros_like(ids)) + model.pos.weight[:8]))
    for _ in range(3):
        x = model.layers[0](x, key_padding_mask=ids == 0)
    torch.testing.assert_close(model.encode(ids), x)


def test_shared_gradient_accumulates_over_depth():
    """One weight used at every depth gets the sum of the gradients of its uses: deeper gives a different grad."""
    ids = torch.randint(N_SPECIAL, 30, (2, 8))
    grads = []
    for depth in (1, 3):
        model = small(n_layer=depth)
        model.encode(ids).square().sum().backward()
        grads.append(model.layers[0].ffn.w1.weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])


def test_unshared_has_separate_layers_and_outputs():
    model = small(share=False)
    assert len(model.layers) == 3
    mlm, pooled = model(torch.randint(N_SPECIAL, 30, (2, 5)))
    assert mlm.shape == (2, 5, 30) and pooled.shape == (2, 16)


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("kw", [dict(), dict(d_ff=20, n_segments=3), dict(embedding_size=16)])
def test_param_count_closed_form(kw, share):
    model = small(share=share, **kw)
    cfg = {"vocab_size": 30, "max_len": 12, "n_layer": 3, "d_model": 16, "embedding_size": 6, **kw}
    assert count_params(model) == albert_param_count(**cfg, share=share)


def test_factorised_embedding_shapes_and_tying():
    model = small()
    assert model.tok.weight.shape == (30, 6) and model.project.weight.shape == (16, 6)
    assert model.mlm.embedding.weight is model.tok.weight


def test_albert_large_is_18m_and_bert_large_334m():
    assert albert_param_count(30000, 512, 24, 1024, 128) == 17_683_968
    assert bert_param_count(30000, 512, 24, 1024) == 334_607_360


def test_sharing_keeps_the_compute():
    albert = small()
    with torch.device("meta"):
        bert = BERT(30, 12, 3, 2, 16)
    # the same matmuls per layer; ALBERT adds only the E -> H projection
    assert encoder_flops(albert, 8) - encoder_flops(bert, 8) == 2 * 8 * 6 * 16


def test_registered_variant():
    assert isinstance(create_model("albert_char"), ALBERT)
