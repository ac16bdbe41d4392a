"""Shared fixtures: `synthetic_data` makes every load_dataset(cfg) of a test return small synthetic data."""

import pytest

from synthetic import use_synthetic_data


@pytest.fixture
def synthetic_data(monkeypatch):
    use_synthetic_data(monkeypatch)
