"""Shared fixtures: `synthetic_data` makes every load_dataset(cfg) of a test return small synthetic data."""

import pytest

from synthetic import use_synthetic_data


@pytest.fixture
def synthetic_data(monkeypatch):
    use_synthetic_data(monkeypatch)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster than two on a shared 2-core machine (use with pytest.mark.usefixtures)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
