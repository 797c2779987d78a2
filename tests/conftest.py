import pytest
import torch


def pytest_addoption(parser):
    parser.addoption(
        "--runslow",
        action="store_true",
        help="also run the tests marked slow: learning runs, the CLI as a process, benchmarks "
        "(the full suite, as CI runs it)",
    )


def pytest_collection_modifyitems(config, items):
    """Without ``--runslow`` the tests marked slow are skipped (and reported as skipped): plain
    ``pytest`` is the fast tier of kernel, contract and plausibility tests."""
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: the full suite runs with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
