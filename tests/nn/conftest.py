import pytest
import torch


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (equivalence tests compare in double precision)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
