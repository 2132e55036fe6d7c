"""Compression: distillation loss against its formula, pruning against torch.nn.utils.prune, int8 against
torch's quantised tensors, checkpointing against plain backprop and torch.utils.checkpoint, in float64."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
from torch.nn.utils import prune as torch_prune
from torch.utils.checkpoint import checkpoint_sequential

from deepatlas.nn import compression as C
from deepatlas.nn.linear import Linear


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def randn(*shape, seed=0, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- distillation

@pytest.mark.parametrize("tau", [1.0, 4.0, 20.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_distillation_loss_is_hintons_formula(tau, alpha):
    z_s, z_t = randn(16, 5, scale=3.0).requires_grad_(), randn(16, 5, seed=1, scale=3.0).requires_grad_()
    y = torch.randint(0, 5, (16,), generator=torch.Generator().manual_seed(2))
    ours = C.distillation_loss(z_s, z_t, y, tau, alpha)
    ref = alpha * F.cross_entropy(z_s, y) + (1 - alpha) * tau ** 2 * F.kl_div(
        F.log_softmax(z_s / tau, 1), F.log_softmax(z_t / tau, 1), reduction="batchmean", log_target=True)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g_ours, g_teacher = torch.autograd.grad(ours, (z_s, z_t), allow_unused=True)
    # Hinton et al.: d/dz_i of tau^2 KL is tau (p_i(tau) - q_i(tau)); of the CE, p_i - y_i; both over N
    explicit = (alpha * (F.softmax(z_s, 1) - F.one_hot(y, 5)) + (1 - alpha) * tau * (
        F.softmax(z_s / tau, 1) - F.softmax(z_t / tau, 1))) / 16
    torch.testing.assert_close(g_ours, explicit, rtol=1e-10, atol=1e-12)
    assert g_teacher is None  # the teacher is a constant


@given(tau=st.floats(0.5, 50.0), seed=st.integers(0, 1000))
@settings(max_examples=30, deadline=None)
def test_distillation_soft_term_vanishes_when_the_student_copies_the_teacher(tau, seed):
    z = randn(8, 10, seed=seed, scale=5.0)
    assert abs(C.distillation_loss(z, z.clone(), torch.zeros(8, dtype=torch.long), tau, alpha=0.0)) < 1e-10


def test_distillation_bad_arguments():
    z, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="tau must be > 0"):
        C.distillation_loss(z, z, y, tau=0.0)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        C.distillation_loss(z, z, y, alpha=1.5)
    with pytest.raises(ValueError, match=r"must both be \(N, C\)"):
        C.distillation_loss(z, torch.zeros(4, 2), y)


# ---------------------------------------------------------------- magnitude pruning

def mlp(seed=0, linear=nn.Linear):
    torch.manual_seed(seed)
    return nn.Sequential(linear(12, 20), nn.ReLU(), linear(20, 16), nn.ReLU(), linear(16, 3))


@given(sparsity=st.floats(0.0, 1.0), scope=st.sampled_from(C.SCOPES), seed=st.integers(0, 100))
@settings(max_examples=40, deadline=None)
def test_magnitude_pruning_reaches_the_exact_sparsity_and_drops_the_smallest(sparsity, scope, seed):
    net = mlp(seed)
    weights = {n: m.weight.detach().clone() for n, m in C.prunable_layers(net).items()}
    masks = C.prune_magnitude(net, sparsity, scope)
    total = sum(w.numel() for w in weights.values())
    if scope == "global":
        assert sum(int((m == 0).sum()) for m in masks.values()) == round(sparsity * total)
        assert C.weight_sparsity(net) == round(sparsity * total) / total
    else:
        for name, m in masks.items():
            assert int((m == 0).sum()) == round(sparsity * m.numel())
    groups = [list(weights)] if scope == "global" else [[n] for n in weights]
    for group in groups:
        dropped = torch.cat([weights[n][masks[n] == 0].abs() for n in group])
        kept = torch.cat([weights[n][masks[n] == 1].abs() for n in group])
        if len(dropped) and len(kept):
            assert dropped.max() <= kept.min()
    for name, layer in C.prunable_layers(net).items():  # the layers compute with the masked weights
        torch.testing.assert_close(layer.weight, weights[name] * masks[name], rtol=0, atol=0)


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.9])
def test_magnitude_masks_match_torch_prune(sparsity):
    ours, ref = mlp(), mlp()
    masks = C.prune_magnitude(ours, sparsity, "global")
    layers = [m for m in ref if isinstance(m, nn.Linear)]
    torch_prune.global_unstructured([(m, "weight") for m in layers], torch_prune.L1Unstructured, amount=sparsity)
    for mask, m in zip(masks.values(), layers):
        torch.testing.assert_close(mask, m.weight_mask, rtol=0, atol=0)
    ours, ref = mlp(), mlp()
    masks = C.prune_magnitude(ours, sparsity, "layer")
    for mask, m in zip(masks.values(), [m for m in ref if isinstance(m, nn.Linear)]):
        torch_prune.l1_unstructured(m, "weight", amount=sparsity)
        torch.testing.assert_close(mask, m.weight_mask, rtol=0, atol=0)


def test_masks_stay_applied_through_fine_tuning():
    net = mlp(linear=Linear)  # our own linear layer is pruned the same way
    masks = C.prune_magnitude(net, 0.7, "layer")
    opt = torch.optim.AdamW(net.parameters(), lr=0.1, weight_decay=0.1)  # momentum and decay both try to move them
    x, y = randn(32, 12), torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(1))
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    for name, layer in C.prunable_layers(net).items():
        assert torch.all(layer.weight[masks[name] == 0] == 0)
        assert torch.any(layer.weight[masks[name] == 1] != 0)
    before = net(x)
    C.remove_masks(net)
    assert all(isinstance(m.weight, nn.Parameter) for m in C.prunable_layers(net).values())
    torch.testing.assert_close(net(x), before, rtol=0, atol=0)
    assert C.weight_sparsity(net) == pytest.approx(0.7, abs=0.01)


def test_conv_weights_are_pruned_too():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    C.prune_magnitude(conv, 0.5)
    assert C.weight_sparsity(conv) == round(0.5 * (8 * 3 * 9 + 4 * 8 * 9)) / (8 * 3 * 9 + 4 * 8 * 9)


def test_pruning_bad_arguments():
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\]"):
        C.prune_magnitude(mlp(), 1.2)
    with pytest.raises(ValueError, match="unknown scope 'local'"):
        C.prune_magnitude(mlp(), 0.5, "local")
    with pytest.raises(ValueError, match="no linear or nn.Conv2d"):
        C.prune_magnitude(nn.Sequential(nn.ReLU()), 0.5)
    net = mlp()
    C.prune_magnitude(net, 0.5)
    with pytest.raises(ValueError, match="already pruned"):
        C.prune_magnitude(net, 0.6)


# ---------------------------------------------------------------- structured pruning

@pytest.mark.parametrize("linear", [nn.Linear, Linear])
@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.6])
def test_removing_neurons_equals_the_masked_dense_net(linear, ratio):
    torch.manual_seed(0)
    fc1, fc2 = linear(10, 16), linear(16, 4)
    x = randn(7, 10)
    small1, small2 = C.prune_structured(fc1, fc2, ratio)
    assert type(small1) is linear and small1.weight.shape == (16 - round(16 * ratio), 10)
    assert small2.weight.shape == (4, 16 - round(16 * ratio))
    norms = fc1.weight.abs().sum(1)
    mask = torch.zeros(16)
    mask[norms.argsort(descending=True)[:16 - round(16 * ratio)]] = 1  # the neurons of largest L1 norm stay
    dense = fc2(mask * torch.tanh(fc1(x)))
    torch.testing.assert_close(small2(torch.tanh(small1(x))), dense, rtol=1e-12, atol=1e-12)


def test_removing_filters_equals_the_masked_dense_convnet():
    torch.manual_seed(0)
    conv1, conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 5, 3, stride=2)
    x = randn(2, 3, 9, 9)
    small1, small2 = C.prune_structured(conv1, conv2, 0.5)
    assert (small1.out_channels, small2.in_channels, small2.stride) == (4, 4, (2, 2))
    mask = torch.zeros(8)
    mask[conv1.weight.abs().sum((1, 2, 3)).argsort(descending=True)[:4]] = 1
    dense = conv2(mask[:, None, None] * torch.relu(conv1(x)))
    torch.testing.assert_close(small2(torch.relu(small1(x))), dense, rtol=1e-12, atol=1e-12)


def test_structured_pruning_bad_arguments():
    with pytest.raises(ValueError, match="two linear layers of one kind or two nn.Conv2d"):
        C.prune_structured(nn.Linear(3, 4), nn.Conv2d(4, 2, 1), 0.5)
    with pytest.raises(ValueError, match="next_layer takes 5 inputs but layer gives 4"):
        C.prune_structured(nn.Linear(3, 4), nn.Linear(5, 2), 0.5)
    with pytest.raises(ValueError, match=r"ratio must be in \[0, 1\)"):
        C.prune_structured(nn.Linear(3, 4), nn.Linear(4, 2), 1.0)
    with pytest.raises(ValueError, match="would remove all 1 units"):
        C.prune_structured(nn.Linear(3, 1), nn.Linear(1, 2), 0.6)


# ---------------------------------------------------------------- int8 quantisation

@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3), per_channel=st.booleans(), symmetric=st.booleans())
@settings(max_examples=60, deadline=None)
def test_round_trip_error_is_at_most_half_a_step(seed, scale, per_channel, symmetric):
    w = randn(6, 40, seed=seed, scale=scale).float()
    s, z = C.weight_qparams(w, per_channel, symmetric)
    axis = 0 if per_channel else None
    q = C.quantize(w, s, z, axis)
    assert q.dtype == torch.int8
    error = (w - C.dequantize(q, s, z, axis)).abs()  # (6, 40)
    half_step = (s[:, None] if per_channel else s) / 2
    assert torch.all(error <= half_step * (1 + 1e-4))  # float32 rounding of x / s and s (q - z)


def test_qparams_match_torch_observers():
    torch.set_default_dtype(torch.float32)  # the observers keep their running min and max in the default dtype
    w = randn(8, 30, seed=3) + 0.4  # not centred: the zero point moves
    obs = MinMaxObserver(dtype=torch.qint8)
    obs(w)
    scale, zero_point = obs.calculate_qparams()
    ours = C.affine_qparams(w.min(), w.max())
    torch.testing.assert_close(ours[0], scale[0], rtol=0, atol=0)
    assert ours[1].item() == zero_point.item()
    obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8)
    obs(w)
    scale, zero_point = obs.calculate_qparams()
    ours = C.weight_qparams(w, per_channel=True)
    torch.testing.assert_close(ours[0], scale, rtol=0, atol=0)
    assert torch.equal(ours[1].long(), zero_point.long())


def test_quantize_matches_torch_quantized_tensors():
    w = randn(8, 30, seed=4).float()
    with warnings.catch_warnings():  # torch deprecates its quantised dtypes; they are still the reference
        warnings.simplefilter("ignore")
        s, z = C.affine_qparams(w.min(), w.max())
        ref = torch.quantize_per_tensor(w, s.item(), z.item(), torch.qint8)
        assert torch.equal(C.quantize(w, s, z), ref.int_repr())
        torch.testing.assert_close(C.dequantize(C.quantize(w, s, z), s, z), ref.dequantize(), rtol=0, atol=0)
        s, z = C.weight_qparams(w, per_channel=True)
        ref = torch.quantize_per_channel(w, s.double(), z.long(), 0, torch.qint8)
        assert torch.equal(C.quantize(w, s, z, axis=0), ref.int_repr())
        torch.testing.assert_close(C.dequantize(C.quantize(w, s, z, 0), s, z, 0), ref.dequantize(), rtol=0, atol=0)


def test_values_outside_the_range_are_clipped():
    s, z = C.affine_qparams(torch.tensor(-1.0), torch.tensor(1.0))
    assert C.quantize(torch.tensor([-50.0, 50.0]), s, z).tolist() == [-128, 127]


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantized_linear_equals_linear_with_dequantised_weights(per_channel, symmetric):
    torch.manual_seed(0)
    layer = nn.Linear(20, 6).float()
    x = torch.randn(5, 20, dtype=torch.float32)
    q = C.QuantizedLinear.from_linear(layer, per_channel, symmetric)
    s, z = C.weight_qparams(layer.weight, per_channel, symmetric)
    w_hat = C.dequantize(C.quantize(layer.weight.detach(), s, z, 0 if per_channel else None), s, z,
                         0 if per_channel else None)
    torch.testing.assert_close(q(x), F.linear(x, w_hat, layer.bias.detach()), rtol=0, atol=0)
    assert (q(x) - layer(x)).abs().max() < 0.02  # and close to the float layer
    act = C.QuantizedLinear.from_linear(layer, per_channel, symmetric, act_range=(-3.0, 3.0))
    s_x, z_x = C.affine_qparams(torch.tensor(-3.0), torch.tensor(3.0))
    x_hat = C.dequantize(C.quantize(x, s_x, z_x), s_x, z_x)
    torch.testing.assert_close(act(x), F.linear(x_hat, w_hat, layer.bias.detach()), rtol=0, atol=0)


def test_quantized_model_is_four_times_smaller_and_calibrated():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).float()
    batches = [torch.rand(50, 784, dtype=torch.float32) for _ in range(3)]
    ranges = C.calibrate(net, batches)
    x = torch.cat(batches)
    assert ranges["0"] == (x.min().item(), x.max().item())
    assert ranges["2"] == (torch.relu(net[0](x)).min().item(), torch.relu(net[0](x)).max().item())
    int8 = C.quantize_model(net, act_ranges=ranges)
    assert isinstance(int8[0], C.QuantizedLinear) and isinstance(net[0], nn.Linear)  # the original is untouched
    n_w, n_out = 784 * 256 + 256 * 10, 256 + 10
    assert C.model_bytes(net) == 4 * (n_w + n_out)
    # int8 weights; float32 bias and scale and an int8 zero point per output; the inputs' scale and zero point
    assert C.model_bytes(int8) == n_w + (4 + 4 + 1) * n_out + 2 * (4 + 1)
    assert C.model_bytes(net) / C.model_bytes(int8) > 3.9
    assert (int8(x).argmax(1) == net(x).argmax(1)).float().mean() > 0.95


def test_quantized_linear_refuses_float_codes():
    with pytest.raises(ValueError, match="q_weight must be an int8 matrix"):
        C.QuantizedLinear(torch.zeros(3, 4), torch.ones(3), torch.zeros(3), None)


# ---------------------------------------------------------------- gradient checkpointing

def deep(n=6, p=0.0):
    torch.manual_seed(0)
    layers = []
    for _ in range(n):
        layers += [nn.Linear(8, 8), nn.Tanh(), nn.Dropout(p)]
    return layers + [nn.Linear(8, 2)]


def grads(net, forward, x):
    net.zero_grad()
    out = forward(x)
    out.pow(2).sum().backward()
    return [out.detach()] + [p.grad.clone() for p in net.parameters()] + ([x.grad.clone()] if x.requires_grad else [])


@pytest.mark.parametrize("segments", [1, 2, 3, 5, 19])
@pytest.mark.parametrize("input_grad", [False, True])
def test_checkpointed_sequential_matches_plain_and_torch(segments, input_grad):
    plain = nn.Sequential(*deep())
    ours = C.CheckpointedSequential(list(plain), segments)  # the same modules, so the same parameters
    x = randn(4, 8).requires_grad_(input_grad)
    reference = grads(plain, plain, x)
    if input_grad:
        x.grad = None
    for a, b in zip(grads(ours, ours, x), reference):
        assert torch.equal(a, b)
    if input_grad:
        x.grad = None
    torch_ckpt = grads(plain, lambda v: checkpoint_sequential(plain, segments, v, use_reentrant=False), x)
    if input_grad:
        x.grad = None
    for a, b in zip(grads(ours, ours, x), torch_ckpt):
        assert torch.equal(a, b)


def test_recomputation_draws_the_same_dropout_masks():
    plain = nn.Sequential(*deep(p=0.5))
    ours = C.CheckpointedSequential(list(plain), 3)
    x = randn(16, 8)
    torch.manual_seed(7)
    reference = grads(plain, plain, x)
    torch.manual_seed(7)
    for a, b in zip(grads(ours, ours, x), reference):
        assert torch.equal(a, b)


def test_checkpoint_gradcheck_and_autograd_grad():
    layer = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = randn(5, 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: C.checkpoint(layer, v), (x,))
    params = list(layer.parameters())
    ours = torch.autograd.grad(C.checkpoint(layer, x).sum(), [x, *params])
    ref = torch.autograd.grad(layer(x).sum(), [x, *params])
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)


def test_meter_counts_saved_activations_and_checkpointing_lowers_them():
    layers = []
    for _ in range(8):
        layers += [nn.Linear(16, 16), nn.Tanh()]
    plain = nn.Sequential(*layers)
    x = randn(32, 16)
    activation = 32 * 16 * 8  # bytes of one float64 (32, 16) activation
    with C.SavedActivationMeter(plain) as meter:
        out = plain(x)
        assert meter.now == 9 * activation  # the input and each Tanh's output (it is the next Linear's input)
        out.sum().backward()
    assert (meter.peak, meter.now) == (9 * activation, 0)  # everything freed after backward
    ckpt = C.CheckpointedSequential(layers, 4)  # 4 runs of 4 layers: keep 3 inputs + the last run's 3 tensors
    with C.SavedActivationMeter(ckpt) as meter:
        out = ckpt(x)
        assert meter.now == 6 * activation
        out.sum().backward()
    assert meter.peak == 6 * activation and meter.now == 0


def test_checkpointed_sequential_without_grad_and_bad_segments():
    layers = deep()
    with torch.no_grad():
        x = randn(2, 8)
        torch.testing.assert_close(C.CheckpointedSequential(layers, 3)(x), nn.Sequential(*layers)(x))
    with pytest.raises(ValueError, match="segments must be between 1 and the number of layers"):
        C.CheckpointedSequential(layers, 0)
