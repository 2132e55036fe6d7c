"""GRU parameter arithmetic against torch and the closed form; the GRU read-out model against nn.GRU."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepatlas.nn.recurrent import Recurrent
from deepatlas.registry import create_model
from deepatlas.zoo.sequence.gru import ParamConfig, _sizes, gate_block_params, recurrent_params


@settings(max_examples=30, deadline=None)
@given(i=st.integers(1, 300), h=st.integers(1, 300))
def test_closed_form_counts_match_torch_and_ours(i, h):
    with torch.device("meta"):
        for kind, ref in (("rnn", nn.RNN), ("gru", nn.GRU), ("lstm", nn.LSTM)):
            n = sum(p.numel() for p in Recurrent(kind, i, h).parameters())
            assert n == recurrent_params(kind, i, h) == sum(p.numel() for p in ref(i, h).parameters())
    # 3 blocks against 4: exactly three quarters, whatever the sizes
    assert 4 * recurrent_params("gru", i, h) == 3 * recurrent_params("lstm", i, h)


def test_gate_block_arithmetic():
    assert gate_block_params(128, 128) == 128 * 128 + 128 * 128 + 2 * 128
    assert gate_block_params(3, 5, biases=1) == 15 + 25 + 5  # the papers' one bias per gate


def test_gru_regressor_equals_torch_gru():
    torch.manual_seed(0)
    model = create_model("gru_regressor").double()
    ref, head = nn.GRU(2, 32, batch_first=True).double(), nn.Linear(32, 1).double()
    ref.load_state_dict(model.rnn.state_dict())
    head.load_state_dict(model.head.state_dict())
    x = torch.rand(3, 11, 2, dtype=torch.float64)
    torch.testing.assert_close(model(x), head(ref(x)[0][:, -1]), rtol=1e-10, atol=1e-12)


def test_sizes_parse_and_reject():
    assert _sizes("1x8,16x32") == [(1, 8), (16, 32)]
    assert _sizes(ParamConfig.sizes)[-1] == (1024, 1024)
    with pytest.raises(ValueError, match="input x hidden"):
        _sizes("8,16x0")
