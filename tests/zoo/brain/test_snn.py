"""Spiking network: LIF dynamics against snnTorch's Leaky neuron (values and surrogate gradients) and a
hand-worked spike train; rate coding; errors."""

import pytest
import snntorch
import torch
from snntorch import surrogate

from deepatlas.zoo.brain import snn as S


def test_lif_matches_snntorch_leaky_in_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    current = (1.5 * torch.randn(12, 3, 5, generator=g, dtype=torch.float64)).requires_grad_()
    ours_s, ours_u = S.LIF(beta=0.75, threshold=1.0, slope=25.0)(current)

    ref_current = current.detach().clone().requires_grad_()
    leaky = snntorch.Leaky(beta=0.75, threshold=1.0, spike_grad=surrogate.fast_sigmoid(slope=25),
                           reset_mechanism="subtract")
    mem = torch.zeros(3, 5, dtype=torch.float64)
    ref_s, ref_u = [], []
    for i_t in ref_current:
        s, mem = leaky(i_t, mem)
        ref_s.append(s)
        ref_u.append(mem)
    ref_s, ref_u = torch.stack(ref_s), torch.stack(ref_u)
    assert torch.equal(ours_s, ref_s)
    torch.testing.assert_close(ours_u, ref_u, rtol=0, atol=1e-12)

    w = torch.randn(12, 3, 5, generator=g, dtype=torch.float64)
    (gr,) = torch.autograd.grad((ours_s * w).sum(), current)
    (gr_ref,) = torch.autograd.grad((ref_s * w).sum(), ref_current)
    torch.testing.assert_close(gr, gr_ref, rtol=1e-5, atol=1e-7)  # snnTorch keeps its surrogate constants in float32


def test_a_constant_current_gives_the_hand_worked_spike_train():
    # beta = 0.5, theta = 1, I = 0.8:  U = 0.8;  0.4 + 0.8 = 1.2 (spike);  0.6 + 0.8 - 1 = 0.4;
    # 0.2 + 0.8 = 1.0 (not above the threshold);  0.5 + 0.8 = 1.3 (spike)
    s, u = S.LIF(beta=0.5, threshold=1.0)(torch.full((5, 1, 1), 0.8, dtype=torch.float64))
    torch.testing.assert_close(u.flatten(), torch.tensor([0.8, 1.2, 0.4, 1.0, 1.3], dtype=torch.float64))
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]


def test_surrogate_gradient_is_the_fast_sigmoid():
    v = torch.tensor([-0.2, 0.0, 0.1], requires_grad=True)
    out = S.spike(v, slope=10.0)
    assert out.tolist() == [0.0, 0.0, 1.0]
    (grad,) = torch.autograd.grad(out.sum(), v)
    torch.testing.assert_close(grad, 1 / (1 + 10 * v.detach().abs()) ** 2)


def test_rate_code_spikes_with_the_pixel_probability():
    x = torch.tensor([[0.0, 0.25, 1.0]])
    trains = S.rate_code(x, 4000, torch.Generator().manual_seed(0))
    assert trains.shape == (4000, 1, 3)
    rates = trains.mean(0)[0]
    assert rates[0] == 0 and rates[2] == 1 and abs(rates[1].item() - 0.25) < 0.03


def test_snn_counts_output_spikes_and_rejects_bad_arguments():
    net = S.SNN((6, 4, 3))
    counts, trains = net(torch.ones(7, 2, 6))
    assert counts.shape == (2, 3) and [t.shape for t in trains] == [(7, 2, 4), (7, 2, 3)]
    assert counts.max() <= 7
    with pytest.raises(ValueError, match="beta"):
        S.LIF(beta=1.5)
    with pytest.raises(ValueError, match="at least input and output"):
        S.SNN((6,))
