"""What image and text batches share: split names, argument checks, and the per-(seed, epoch) random generator.

Every random choice of an epoch (order, binarization) comes from `generator_for(seed, epoch)`, so epoch e of a
resumed run yields exactly the batches of an uninterrupted run.
"""

from __future__ import annotations

import numpy as np
import torch

from skipvae.errors import ConfigError

SPLITS = ("train", "valid", "test")


def generator_for(*keys: int) -> torch.Generator:
    """A torch.Generator whose seed is derived from integer keys (e.g. seed, epoch) by numpy's SeedSequence."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def check_split(split: str) -> None:
    """ConfigError unless `split` is 'train', 'valid' or 'test'."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}.")


def check_count(name: str, value: int | None) -> None:
    """ConfigError unless `value` is None or a positive int (a batch size, a limit, a split size)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ConfigError(f"{name}={value!r} is impossible: it must be a positive integer (or None for all).")
