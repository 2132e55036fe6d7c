"""Linear-chain CRF against brute-force enumeration of label sequences and against pytorch-crf."""

import importlib
import itertools

import pytest
import torch

from deepatlas.zoo.neurosymbolic.deep_crf import CRF, BiLSTMTagger


def _crf(K=3, seed=0):
    torch.manual_seed(seed)
    crf = CRF(K).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def _all_paths(T, K):
    return torch.tensor(list(itertools.product(range(K), repeat=T)))  # (K^T, T)


@pytest.mark.parametrize("T, K", [(1, 3), (4, 3), (5, 4)])
def test_forward_algorithm_and_viterbi_match_enumeration(T, K):
    crf = _crf(K)
    P = torch.randn(2, T, K, dtype=torch.float64)
    paths = _all_paths(T, K)
    for b in range(2):
        scores = crf.score(P[b:b + 1].expand(len(paths), T, K), paths)  # (K^T,)
        assert torch.allclose(crf.log_partition(P[b:b + 1])[0], torch.logsumexp(scores, 0), atol=1e-12)
        assert torch.equal(crf.viterbi(P[b:b + 1])[0], paths[scores.argmax()])


@pytest.mark.filterwarnings("ignore:where received a uint8")
def test_matches_pytorch_crf_values_gradients_and_decoding():
    torchcrf = importlib.import_module("torchcrf")
    ours = _crf(5)
    ref = torchcrf.CRF(5, batch_first=True).double()
    ref.load_state_dict(ours.state_dict())
    P = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    tags = torch.randint(0, 5, (3, 7))
    ll_ref = ref(P, tags, reduction="sum")
    ll_ours = -(ours.nll(P, tags) * 3)
    assert torch.allclose(ll_ours, ll_ref, atol=1e-10)
    g_ours = torch.autograd.grad(ll_ours, [P, *ours.parameters()])
    g_ref = torch.autograd.grad(ll_ref, [P, *ref.parameters()])
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, atol=1e-10)
    assert ours.viterbi(P.detach()).tolist() == ref.decode(P.detach())


def test_log_partition_gradcheck_and_marginals():
    crf = _crf(3)
    P = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: crf.log_partition(e), (P,))
    # \partial \log Z / \partial P_{t,k} = p(y_t = k | x): each position's marginals sum to 1
    (g,) = torch.autograd.grad(crf.log_partition(P).sum(), P)
    assert torch.allclose(g.sum(-1), torch.ones(1, 4, dtype=torch.float64))


def test_tagger_and_errors():
    model = BiLSTMTagger(10, 5, embed=4, hidden=6)
    x = torch.randint(0, 10, (2, 6))
    out = model(x)
    assert out["emissions"].shape == (2, 6, 5) and out["log_z"].shape == (2,)
    assert model.decode(x).shape == (2, 6)
    assert "log_z" not in BiLSTMTagger(10, 5, crf=False)(x)
    with pytest.raises(ValueError, match="emissions must be"):
        CRF(3).log_partition(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="tags must be"):
        CRF(3).score(torch.randn(2, 4, 3), torch.zeros(2, 5, dtype=torch.long))
