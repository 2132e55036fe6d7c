"""BERT: the 80/10/10 masking rule, bidirectional attention, padding, tying and parameter counts."""

import pytest
import torch

from deepatlas.registry import create_model
from deepatlas.data.real import CharVocab
from deepatlas.zoo.sequence.bert import (BERT, CLS, IGNORE, MASK, N_SPECIAL, PAD, PUBLISHED, Classifier,
                                         bert_param_count, count_params, encode_lines, mask_tokens, mlm_loss)


def small(**kw) -> BERT:
    torch.manual_seed(0)
    return BERT(**{"vocab_size": 30, "max_len": 16, "n_layer": 2, "n_head": 2, "d_model": 16, **kw})


def test_masking_rule_statistics():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(N_SPECIAL, 50, (400, 500), generator=g)
    ids[:, 0] = CLS
    ids[:, -20:] = PAD
    inputs, labels = mask_tokens(ids, 50, g)
    selected = labels != IGNORE
    ordinary = ids >= N_SPECIAL
    assert not (selected & ~ordinary).any(), "special tokens must never be selected"
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])  # unselected tokens are untouched
    rate = selected.sum() / ordinary.sum()
    assert abs(rate.item() - 0.15) < 0.004  # ~5 standard errors
    n = selected.sum().item()
    masked = (inputs[selected] == MASK).sum().item() / n
    kept = (inputs[selected] == ids[selected]).sum().item() / n
    randomised = 1 - masked - kept
    assert abs(masked - 0.8) < 0.01  # ~4 standard errors of ~29,000 draws
    # a random replacement equals the original 1 time in 46 here: kept = 0.1 + 0.1 / 46
    assert abs(kept - (0.1 + 0.1 / 46)) < 0.008 and abs(randomised - 0.1 * 45 / 46) < 0.008
    assert (inputs[selected & (inputs != MASK)] >= N_SPECIAL).all()  # random tokens are ordinary tokens


def test_masking_is_reproducible_and_checks_p():
    ids = torch.randint(N_SPECIAL, 20, (4, 30))
    a = mask_tokens(ids, 20, torch.Generator().manual_seed(3))
    b = mask_tokens(ids, 20, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="masking probability"):
        mask_tokens(ids, 20, torch.Generator(), p=1.5)


def test_every_position_sees_both_sides():
    """Bidirectional: the state at position t depends on tokens left and right of it."""
    model = small().double()
    ids = torch.randint(N_SPECIAL, 30, (1, 10))
    emb = model.tok(ids).detach().requires_grad_(True)

    def states(e):
        x = model.emb_norm(e + model.seg(torch.zeros_like(ids)) + model.pos.weight[:10])
        for layer in model.layers:
            x = layer(x)
        return x

    torch.testing.assert_close(states(emb), model.encode(ids))
    w = torch.randn(16, dtype=torch.float64)  # a plain sum of a LayerNorm output is constant
    (g,) = torch.autograd.grad(states(emb)[0, 4] @ w, emb)
    assert (g[0].norm(dim=-1) > 0).all()


def test_padding_changes_nothing():
    model = small().eval()
    ids = torch.randint(N_SPECIAL, 30, (1, 7))
    padded = torch.cat([ids, torch.full((1, 5), PAD)], 1)
    torch.testing.assert_close(model.encode(padded)[:, :7], model.encode(ids))


def test_segments_change_the_states():
    model = small()
    ids = torch.randint(N_SPECIAL, 30, (1, 6))
    assert not torch.allclose(model.encode(ids), model.encode(ids, torch.ones_like(ids)))


def test_mlm_head_is_tied_and_loss_uses_selected_only():
    model = small()
    assert model.mlm.embedding.weight is model.tok.weight
    ids = torch.randint(N_SPECIAL, 30, (3, 12))
    labels = torch.full_like(ids, IGNORE)
    labels[0, 3], labels[2, 7] = ids[0, 3], ids[2, 7]
    loss, acc = mlm_loss(model, ids, labels)
    logits, _ = model(ids)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    torch.testing.assert_close(loss, expected)
    assert 0 <= acc <= 1


@pytest.mark.parametrize("kw", [dict(), dict(n_layer=3, d_model=24, n_head=3, d_ff=40), dict(n_segments=3)])
def test_param_count_closed_form(kw):
    model = small(**kw)
    cfg = {"vocab_size": 30, "max_len": 16, "n_layer": 2, "d_model": 16, **kw}
    cfg.pop("n_head", None)
    assert count_params(model) == bert_param_count(**cfg)
    assert count_params(model, mlm_head=True) == bert_param_count(**cfg, mlm_head=True)
    assert count_params(model, mlm_head=True) == sum(p.numel() for p in model.parameters())


def test_published_counts():
    base, large = (bert_param_count(**{k: v for k, v in PUBLISHED[s].items() if k not in ("n_head", "stated")})
                   for s in ("base", "large"))
    assert base == 109_482_240  # the size of Hugging Face's bert-base-uncased BertModel
    assert large == 335_141_888


def test_classifier_and_errors():
    clf = Classifier(small(), 3)
    assert clf(torch.randint(N_SPECIAL, 30, (5, 9))).shape == (5, 3)
    mean = Classifier(small(), 3, pooling="mean").eval()
    ids = torch.randint(N_SPECIAL, 30, (2, 6))
    padded = torch.cat([ids, torch.full((2, 4), PAD)], 1)
    torch.testing.assert_close(mean(padded), mean(ids))  # the mean runs over real tokens only
    with pytest.raises(ValueError, match="pooling"):
        Classifier(small(), 3, pooling="max")
    with pytest.raises(ValueError, match="max_len=16"):
        small().encode(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        small(n_head=3)


def test_initialisation():
    model = BERT(30, 16, 2, 2, 32)
    assert abs(model.tok.weight.std().item() - 0.02) < 0.005
    assert abs(model.pos.weight.std().item() - 0.02) < 1e-4  # the sinusoid table, rescaled
    assert model.layers[0].attn.in_proj.weight.std() > 0.1  # Xavier: std sqrt(2 / (d + 3 d)) = 0.125
    assert (model.layers[0].ffn.w1.bias == 0).all()


def test_registered_variant():
    assert isinstance(create_model("bert_char"), BERT)


def test_encoding_puts_cls_first_cuts_and_pads():
    vocab = CharVocab("ab123\n")
    ids = encode_lines(["a1\na2", "b"], vocab, 4)
    assert ids[:, 0].tolist() == [CLS, CLS] and ids[1, 2:].tolist() == [PAD, PAD]
    assert vocab.decode(ids[0, 1:] - N_SPECIAL) == "a1\n"  # cut to max_len - 1 characters
