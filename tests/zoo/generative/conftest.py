import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train fastest on one thread, and far faster when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
