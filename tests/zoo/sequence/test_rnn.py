"""The Elman read-out models against torch.nn twins in float64, and the shapes of the shared read-outs."""

import pytest
import torch
from torch import nn

from deepatlas.registry import create_model
from deepatlas.zoo.sequence.rnn import RecurrentRegressor, RecurrentTagger


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class TorchRegressor(nn.Module):
    """nn.RNN / nn.LSTM / nn.GRU and a Linear on the last step: the reference."""

    def __init__(self, model: RecurrentRegressor):
        super().__init__()
        r = model.rnn
        self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[r.kind](
            r.input_size, r.hidden_size, r.num_layers, batch_first=True).double()
        self.head = nn.Linear(r.hidden_size, model.head.out_features).double()
        self.rnn.load_state_dict(r.state_dict())
        self.head.load_state_dict(model.head.state_dict())

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_regressor_matches_torch_values_and_gradients(kind, num_layers):
    torch.manual_seed(0)
    model = RecurrentRegressor(kind, 3, 6, output_size=2, num_layers=num_layers).double()
    ref = TorchRegressor(model)
    x = randn(4, 9, 3, seed=1).requires_grad_(True)
    y, y_ref = model(x), ref(x)
    assert y.shape == (4, 2)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    g = torch.autograd.grad(y.square().sum(), [x, *model.parameters()])
    g_ref = torch.autograd.grad(y_ref.square().sum(), [x, *ref.parameters()])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_rnn_regressor_is_an_elman_net_and_reads_the_last_step_only():
    model = create_model("rnn_regressor").double()
    assert model.rnn.kind == "rnn" and model.rnn.nonlinearity == "tanh"
    x = randn(2, 7, 2, seed=2).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    assert (grad.abs().sum(-1) > 0).all()  # every step reaches the answer through the recurrence
    relu = create_model("rnn_regressor", nonlinearity="relu")
    assert relu.rnn.nonlinearity == "relu"


@pytest.mark.parametrize("bidirectional, head_hidden", [(False, 0), (True, 0), (True, 5)])
def test_tagger_shapes_and_causality(bidirectional, head_hidden):
    torch.manual_seed(0)
    tagger = RecurrentTagger(7, 4, embed_size=5, hidden_size=6, kind="gru", bidirectional=bidirectional,
                             head_hidden=head_hidden).double()
    x = torch.randint(0, 7, (3, 8))
    out = tagger(x)
    assert out.shape == (3, 8, 4)
    emb = tagger.embed(x).detach().requires_grad_(True)
    h, _ = tagger.rnn(emb)
    (grad,) = torch.autograd.grad(tagger.head(h)[:, 2].sum(), emb)
    reach = grad.abs().sum((0, 2)) > 0  # which input positions the tag at t = 2 depends on
    assert reach[:3].all()
    assert reach[3:].all() == bidirectional and reach[3:].any() == bidirectional


def test_bad_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="kind must be one of"):
        RecurrentRegressor("elman")
