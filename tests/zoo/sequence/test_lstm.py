"""The LSTM read-out model and the adding-problem lab's training helper."""

import dataclasses

import torch
from torch import nn

from deepatlas.data.sequences import adding_problem
from deepatlas.registry import create_model
from deepatlas.zoo.sequence.lstm import AddingConfig, cell_ms_per_step
from deepatlas.zoo.sequence.rnn import RecurrentRegressor


def test_lstm_regressor_equals_torch_lstm_and_linear():
    torch.manual_seed(0)
    model = create_model("lstm_regressor").double()
    ref, head = nn.LSTM(2, 32, batch_first=True).double(), nn.Linear(32, 1).double()
    ref.load_state_dict(model.rnn.state_dict())
    head.load_state_dict(model.head.state_dict())
    x = adding_problem(8, 30, seed=1).x.double()
    torch.testing.assert_close(model(x), head(ref(x)[0][:, -1]), rtol=1e-10, atol=1e-12)


def test_fused_and_written_out_lstm_train_identically():
    """The lab trains on the fused kernel: a few Adam steps give the same weights as the written-out cells."""
    nets = []
    for fused in (False, True):
        torch.manual_seed(0)
        net = RecurrentRegressor("lstm", 2, 8, fused=fused).double()
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        for step in range(3):
            batch = adding_problem(16, 20, seed=step)
            loss = (net(batch.x.double())[:, 0] - batch.y.double()).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        nets.append(net)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_cell_timing_is_positive():
    cfg = dataclasses.replace(AddingConfig(), hidden=4, batch_size=2, timing_steps=1)
    assert cell_ms_per_step("gru", 5, cfg, "cpu") > 0
