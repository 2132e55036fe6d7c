"""The stacked LSTM against torch's multi-layer LSTM, and inter-layer dropout."""

import torch
from torch import nn

from deepatlas.registry import create_model


def test_stacked_lstm_equals_torch_three_layer_lstm():
    torch.manual_seed(0)
    model = create_model("stacked_lstm").double()
    assert model.rnn.num_layers == 3
    ref = nn.LSTM(8, 8, num_layers=3, batch_first=True).double()
    ref.load_state_dict(model.rnn.state_dict())
    x = torch.randint(0, 4, (4, 12))
    emb = model.embed(x).detach().requires_grad_(True)
    out, out_ref = model.head(model.rnn(emb)[0]), model.head(ref(emb)[0])
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-12)
    g, g_ref = torch.autograd.grad(out.sum(), emb), torch.autograd.grad(out_ref.sum(), emb)
    torch.testing.assert_close(g[0], g_ref[0], rtol=1e-10, atol=1e-12)


def test_each_layer_reads_the_layer_below():
    model = create_model("stacked_lstm", num_layers=2, hidden_size=5, embed_size=3)
    shapes = {n: tuple(p.shape) for n, p in model.rnn.named_parameters()}
    assert shapes["weight_ih_l0"] == (20, 3) and shapes["weight_ih_l1"] == (20, 5)
    assert model(torch.randint(0, 4, (2, 6))).shape == (2, 6, 4)
