import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_seeded():
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture
def float64():
    """Float64 as torch's default dtype for one test (kernel checks against formulas)."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)
