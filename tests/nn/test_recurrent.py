"""Recurrent cells and layers against torch.nn in float64: outputs, final states and every gradient."""

import pytest
import torch
from torch import nn

from deepatlas.nn.recurrent import GRUCell, LSTMCell, Recurrent, RNNCell

TWINS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELL_TWINS = {"rnn": (RNNCell, nn.RNNCell), "lstm": (LSTMCell, nn.LSTMCell), "gru": (GRUCell, nn.GRUCell)}
B, T, I, H = 3, 6, 4, 5


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def grads_of(module, inputs, outputs, seed):
    """Gradients of sum(u * output) over random u, for the inputs and every parameter (by name)."""
    upstream = [randn(*o.shape, seed=seed + i) for i, o in enumerate(outputs)]
    names, params = zip(*module.named_parameters())
    g = torch.autograd.grad(list(outputs), [*inputs, *params], upstream)
    return g[: len(inputs)], dict(zip(names, g[len(inputs):]))


def assert_close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_cells_match_torch_values_and_gradients(kind):
    mine_cls, ref_cls = CELL_TWINS[kind]
    mine, ref = mine_cls(I, H).double(), ref_cls(I, H).double()
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in ref.named_parameters()]
    ref.load_state_dict(mine.state_dict())
    x = randn(B, I, seed=1).requires_grad_(True)
    h = randn(B, H, seed=2).requires_grad_(True)
    if kind == "lstm":
        c = randn(B, H, seed=3).requires_grad_(True)
        out, out_ref = mine(x, (h, c)), ref(x, (h, c))
        inputs = [x, h, c]
    else:
        out, out_ref = (mine(x, h),), (ref(x, h),)
        inputs = [x, h]
    for a, b in zip(out, out_ref):
        assert_close(a, b)
    g_in, g_par = grads_of(mine, inputs, out, seed=10)
    g_in_ref, g_par_ref = grads_of(ref, inputs, out_ref, seed=10)
    for a, b in zip(g_in, g_in_ref):
        assert_close(a, b)
    for name in g_par_ref:
        assert_close(g_par[name], g_par_ref[name])


def test_relu_rnn_cell_and_zero_default_state_match_torch():
    mine, ref = RNNCell(I, H, nonlinearity="relu").double(), nn.RNNCell(I, H, nonlinearity="relu").double()
    ref.load_state_dict(mine.state_dict())
    x = randn(B, I, seed=4)
    assert_close(mine(x), ref(x))
    lstm, lstm_ref = LSTMCell(I, H).double(), nn.LSTMCell(I, H).double()
    lstm_ref.load_state_dict(lstm.state_dict())
    for a, b in zip(lstm(x), lstm_ref(x)):
        assert_close(a, b)


def initial_state(kind, rows):
    h0 = randn(rows, B, H, seed=5).requires_grad_(True)
    if kind == "lstm":
        c0 = randn(rows, B, H, seed=6).requires_grad_(True)
        return (h0, c0), [h0, c0]
    return h0, [h0]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_recurrent_matches_torch_values_and_gradients(kind, num_layers, bidirectional, fused):
    mine = Recurrent(kind, I, H, num_layers=num_layers, bidirectional=bidirectional, fused=fused).double()
    ref = TWINS[kind](I, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True).double()
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in ref.named_parameters()]
    ref.load_state_dict(mine.state_dict())
    x = randn(B, T, I, seed=1).requires_grad_(True)
    state, state_leaves = initial_state(kind, num_layers * (2 if bidirectional else 1))
    out, s = mine(x, state)
    out_ref, s_ref = ref(x, state)
    D = 2 if bidirectional else 1
    assert out.shape == (B, T, D * H)
    flat = [out, *(s if kind == "lstm" else (s,))]
    flat_ref = [out_ref, *(s_ref if kind == "lstm" else (s_ref,))]
    for a, b in zip(flat, flat_ref):
        assert a.shape == b.shape
        assert_close(a, b)
    g_in, g_par = grads_of(mine, [x, *state_leaves], flat, seed=20)
    g_in_ref, g_par_ref = grads_of(ref, [x, *state_leaves], flat_ref, seed=20)
    for a, b in zip(g_in, g_in_ref):
        assert_close(a, b)
    assert set(g_par) == set(g_par_ref)
    for name in g_par_ref:
        assert_close(g_par[name], g_par_ref[name])


def test_relu_recurrent_and_default_state_match_torch():
    mine = Recurrent("rnn", I, H, num_layers=2, nonlinearity="relu").double()
    ref = nn.RNN(I, H, num_layers=2, nonlinearity="relu", batch_first=True).double()
    ref.load_state_dict(mine.state_dict())
    x = randn(B, T, I, seed=7)
    out, h = mine(x)
    out_ref, h_ref = ref(x)
    assert_close(out, out_ref)
    assert_close(h, h_ref)


@pytest.mark.parametrize("fused", [False, True])
def test_dropout_acts_between_layers_only_in_training(fused):
    mine = Recurrent("lstm", I, H, num_layers=2, dropout=0.5, fused=fused).double()
    x = randn(B, T, I, seed=8)
    ref = nn.LSTM(I, H, num_layers=2, batch_first=True).double()
    ref.load_state_dict(mine.state_dict())
    mine.eval()
    assert_close(mine(x)[0], ref(x)[0])
    mine.train()
    torch.manual_seed(0)
    a = mine(x)[0]
    torch.manual_seed(1)
    b = mine(x)[0]
    assert not torch.allclose(a, b)
    single = Recurrent("gru", I, H, num_layers=1, dropout=0.5).double().train()
    assert_close(single(x)[0], single(x)[0])  # nothing to drop after the last layer


def test_reverse_direction_reads_the_future():
    """Output at t of the forward half depends only on x_{<=t}; of the reverse half only on x_{>=t}."""
    m = Recurrent("gru", I, H, bidirectional=True).double()
    x = randn(1, T, I, seed=9).requires_grad_(True)
    out, _ = m(x)
    t = 2
    g_fwd = torch.autograd.grad(out[0, t, :H].sum(), x, retain_graph=True)[0][0].abs().sum(-1)
    g_rev = torch.autograd.grad(out[0, t, H:].sum(), x)[0][0].abs().sum(-1)
    assert (g_fwd[t + 1:] == 0).all() and (g_fwd[: t + 1] > 0).all()
    assert (g_rev[:t] == 0).all() and (g_rev[t:] > 0).all()


@pytest.mark.parametrize("kind, G", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_parameter_count_closed_form(kind, G):
    m = Recurrent(kind, I, H, num_layers=2, bidirectional=True)
    per_direction = lambda i: G * (H * i + H * H + 2 * H)  # noqa: E731
    expected = 2 * per_direction(I) + 2 * per_direction(2 * H)
    assert sum(p.numel() for p in m.parameters()) == expected


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        Recurrent("transformer", I, H)
    with pytest.raises(ValueError, match="dropout"):
        Recurrent("lstm", I, H, dropout=1.0)
    with pytest.raises(ValueError, match="nonlinearity"):
        Recurrent("lstm", I, H, nonlinearity="relu")
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(I, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=">= 1"):
        Recurrent("gru", I, 0)
    m = Recurrent("lstm", I, H, num_layers=2)
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        m(torch.randn(B, I))
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        m(torch.randn(B, T, I + 1))
    with pytest.raises(ValueError, match="state = \\(h_0, c_0\\)"):
        m(torch.randn(B, T, I), torch.zeros(2, B, H))
    with pytest.raises(ValueError, match=r"\(2, 3, 5\)"):
        m(torch.randn(B, T, I), (torch.zeros(1, B, H), torch.zeros(1, B, H)))
    with pytest.raises(ValueError, match=r"\(2, 3, 5\)"):
        Recurrent("gru", I, H, num_layers=2)(torch.randn(B, T, I), torch.zeros(2, B + 1, H))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        GRUCell(I, H)(torch.randn(B, I + 1), torch.zeros(B, H))
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        LSTMCell(I, H)(torch.randn(B, I), (torch.zeros(B, H), torch.zeros(B, H + 1)))
