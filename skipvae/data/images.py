"""Image splits (MNIST, Omniglot) and their binarization.

Gray levels g in [0, 1] become binary images x ~ Bernoulli(g):
- train: a fresh draw for every batch (dynamic binarization), reproducible from (seed, epoch), so epoch e
  of a resumed run sees exactly the batches of an uninterrupted run;
- valid / test: one draw with a fixed seed (independent of the run seed), so every evaluation sees the same bits.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from skipvae.data.batching import SPLITS, check_count, check_split, generator_for
from skipvae.errors import ConfigError, DataError

EVAL_BINARIZATION_SEED = 20190416  # fixed forever: changing it changes every valid/test number


def binarize(gray: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x ~ Bernoulli(gray), elementwise: float32 tensor of 0s and 1s."""
    return torch.bernoulli(gray, generator=generator)


class ImageData:
    """Train / valid / test gray images [N, 1, 28, 28] (float32 in [0, 1]) with int64 labels.

    `n_train`, `n_valid`, `n_test` keep only the first n examples of a split (the valid/test bits of an
    example do not depend on n: the whole split is binarized once, then cut).
    """

    def __init__(self, name: str, splits: dict[str, tuple[np.ndarray, np.ndarray]], num_classes: int,
                 n_train: int | None = None, n_valid: int | None = None, n_test: int | None = None,
                 notes: str = ""):
        self.name, self.num_classes, self.notes = name, num_classes, notes
        self._gray, self._labels = {}, {}
        for split in SPLITS:
            gray, labels = splits[split]
            gray = torch.as_tensor(np.asarray(gray, dtype=np.float32)).reshape(-1, 1, 28, 28)
            labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
            if len(gray) != len(labels):
                raise DataError(f"{name} {split}: {len(gray)} images but {len(labels)} labels.")
            self._gray[split], self._labels[split] = gray, labels
        self._limit = {}
        for split, n in zip(SPLITS, (n_train, n_valid, n_test)):
            check_count(f"n_{split}", n)
            if n is not None and n > len(self._gray[split]):
                raise ConfigError(f"n_{split}={n} exceeds the {len(self._gray[split])} {split} examples of {name}; "
                                  f"use at most {len(self._gray[split])} or None for the whole split.")
            self._limit[split] = n if n is not None else len(self._gray[split])
        self._eval_bits: dict[str, torch.Tensor] = {}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={self.num_examples(s)}" for s in SPLITS)
        return f"ImageData({self.name!r}, {sizes})"

    def num_examples(self, split: str) -> int:
        check_split(split)
        return self._limit[split]

    def gray(self, split: str) -> torch.Tensor:
        """The gray levels of a split (after n_<split>), [N, 1, 28, 28]."""
        check_split(split)
        return self._gray[split][: self._limit[split]]

    def labels(self, split: str) -> torch.Tensor:
        check_split(split)
        return self._labels[split][: self._limit[split]]

    def eval_bits(self, split: str) -> torch.Tensor:
        """The fixed binarization of a valid/test split, drawn once per process with EVAL_BINARIZATION_SEED."""
        if split not in ("valid", "test"):
            raise ConfigError(f"split {split!r} has no fixed binarization; only 'valid' and 'test' do "
                              f"(training images are binarized anew every batch).")
        if split not in self._eval_bits:
            g = generator_for(EVAL_BINARIZATION_SEED, SPLITS.index(split))
            self._eval_bits[split] = binarize(self._gray[split], g)
        return self._eval_bits[split][: self._limit[split]]

    def split_tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, labels) of a whole split: gray levels for 'train', the fixed binary images for 'valid'/'test'."""
        x = self.gray(split) if split == "train" else self.eval_bits(split)
        return x, self.labels(split)

    def batches(self, split: str, batch_size: int, epoch: int = 0, seed: int = 0, shuffle: bool | None = None,
                limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x [B, 1, 28, 28] in {0, 1}, labels [B]); the last batch may be smaller.

        train: shuffled by default and freshly binarized, deterministic given (seed, epoch);
        valid/test: the fixed bits, in order by default. `limit` keeps the first n examples of the split.
        """
        check_split(split)
        check_count("batch_size", batch_size)
        check_count("limit", limit)
        n = min(limit or self._limit[split], self._limit[split])
        shuffle = (split == "train") if shuffle is None else shuffle
        g = generator_for(seed, epoch)
        order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
        source = self.gray(split) if split == "train" else self.eval_bits(split)
        labels = self.labels(split)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            x = source[idx]
            yield (binarize(x, g) if split == "train" else x), labels[idx]
