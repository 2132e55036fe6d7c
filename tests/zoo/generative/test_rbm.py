"""RBM: free energy, conditionals and log Z against brute-force enumeration and scikit-learn; CD-k against the
exact gradient on a tiny RBM."""

import pytest
import torch
from sklearn.neural_network import BernoulliRBM

from deepatlas.zoo.generative.rbm import RBM, PersistentChains, all_states, cd_loss, contrastive_divergence, gibbs


def _tiny(n_v=4, n_h=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_v, n_h).double()
    with torch.no_grad():
        rbm.W.copy_(torch.randn(n_v, n_h, generator=g, dtype=torch.float64))
        rbm.a.copy_(torch.randn(n_v, generator=g, dtype=torch.float64))
        rbm.b.copy_(torch.randn(n_h, generator=g, dtype=torch.float64))
    return rbm


def _joint(rbm):
    """Every (v, h) and its probability, by brute force over all 2^(n_v + n_h) states."""
    n_v, n_h = rbm.W.shape
    s = all_states(n_v + n_h, torch.float64)
    v, h = s[:, :n_v], s[:, n_v:]
    log_w = -rbm.energy(v, h)
    return v, h, log_w, torch.logsumexp(log_w, 0)


def test_all_states():
    s = all_states(3)
    assert s.shape == (8, 3) and len({tuple(r.tolist()) for r in s}) == 8


@pytest.mark.parametrize("n_v, n_h", [(4, 3), (3, 5)])  # enumerate the hidden, then the visible layer
def test_free_energy_log_z_and_likelihood_by_enumeration(n_v, n_h):
    rbm = _tiny(n_v, n_h)
    v, h, log_w, log_z = _joint(rbm)
    assert torch.allclose(rbm.log_partition(), log_z)
    for vis in all_states(n_v, torch.float64):
        rows = (v == vis).all(1)
        # F(v) = -\log \sum_h e^{-E(v, h)}
        assert torch.allclose(rbm.free_energy(vis[None])[0], -torch.logsumexp(log_w[rows], 0))
    p_v = rbm.log_likelihood(all_states(n_v, torch.float64)).exp()
    assert torch.allclose(p_v.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_conditionals_by_enumeration():
    rbm = _tiny()
    v, h, log_w, _ = _joint(rbm)
    vis = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    rows = (v == vis).all(1)
    post = (log_w[rows] - torch.logsumexp(log_w[rows], 0)).exp()  # p(h | v) over the 8 hidden states
    assert torch.allclose(rbm.p_h(vis[None])[0], (post[:, None] * h[rows]).sum(0))
    hid = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    rows = (h == hid).all(1)
    post = (log_w[rows] - torch.logsumexp(log_w[rows], 0)).exp()
    assert torch.allclose(rbm.p_v(hid[None])[0], (post[:, None] * v[rows]).sum(0))


def test_free_energy_and_hidden_probabilities_match_scikit_learn():
    rbm = _tiny(6, 4, seed=3)
    ref = BernoulliRBM(n_components=4)
    ref.components_ = rbm.W.detach().T.numpy()
    ref.intercept_hidden_ = rbm.b.detach().numpy()
    ref.intercept_visible_ = rbm.a.detach().numpy()
    v = all_states(6, torch.float64)
    assert torch.allclose(rbm.free_energy(v), torch.from_numpy(ref._free_energy(v.numpy())))
    assert torch.allclose(rbm.p_h(v), torch.from_numpy(ref.transform(v.numpy())))


def test_cd_loss_gradient_with_exact_negatives_is_the_exact_gradient():
    """With v_model drawn from the model itself (here: exactly weighted over all states), the CD surrogate's
    gradient equals -grad log p(v); CD-k with long chains approaches it, CD-1 from the data is biased."""
    rbm = _tiny()
    data = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0], [1, 0, 1, 0]], dtype=torch.float64)
    nll = -rbm.log_likelihood(data).mean()
    exact = torch.autograd.grad(nll, rbm.W)[0]
    states = all_states(4, torch.float64)
    p_model = rbm.log_likelihood(states).exp().detach()
    surrogate = rbm.free_energy(data).mean() - (p_model * rbm.free_energy(states)).sum()
    assert torch.allclose(torch.autograd.grad(surrogate, rbm.W)[0], exact)

    g = torch.Generator().manual_seed(0)
    big = data.repeat(2000, 1)  # 8,000 chains started at the data
    grads = {}
    for k in (1, 20):
        neg = contrastive_divergence(rbm, big, k, g)
        grads[k] = torch.autograd.grad(cd_loss(rbm, big, neg), rbm.W)[0]
    err20, err1 = (grads[20] - exact).abs().max(), (grads[1] - exact).abs().max()
    assert err20 < 0.015, err20  # Monte-Carlo error of 8,000 chains: about 0.007
    assert err1 > 0.02, err1  # CD-1 is biased (about 0.03 here) beyond that error


def test_gibbs_samples_follow_the_model():
    rbm = _tiny()
    g = torch.Generator().manual_seed(1)
    chains = PersistentChains(torch.zeros(8000, 4, dtype=torch.float64))
    chains.negatives(rbm, 20, g)
    v = chains.negatives(rbm, 1, g)
    states = all_states(4, torch.float64)
    p = rbm.log_likelihood(states).exp().detach()
    freq = (v[:, None, :] == states[None]).all(-1).double().mean(0)
    assert (freq - p).abs().max() < 0.02
    assert torch.equal(gibbs(rbm, v[:3], 0), v[:3])  # zero steps leave the state alone


def test_bad_sizes():
    with pytest.raises(ValueError, match="at least one"):
        RBM(0, 3)
    with pytest.raises(ValueError, match="enumerates"):
        RBM(30, 30).log_partition()
