"""The three datasets of the paper (MNIST, Omniglot, Yahoo): location, verification, download, loading, batching.

    data = load_dataset(cfg)                     # ImageData or TextData, sized by cfg.n_train/n_valid/n_test
    for x, y in data.batches("train", cfg.batch_size, epoch=e, seed=cfg.seed): ...
"""

from __future__ import annotations

import os

from skipvae.config import RunConfig
from skipvae.data.fetch import fetch_data
from skipvae.data.batching import SPLITS
from skipvae.data.images import ImageData
from skipvae.data.manifest import all_required_ok, check_data, dataset_names, format_check_table
from skipvae.data.mnist import load_mnist
from skipvae.data.omniglot import load_omniglot
from skipvae.data.paths import cache_dir, fetch_target_dir, resolve_data_dir
from skipvae.data.text import BOS_ID, EOS_ID, PAD_ID, TextData, Vocab, pad_batch
from skipvae.data.yahoo import load_yahoo
from skipvae.errors import DataError

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "SPLITS", "ImageData", "TextData", "Vocab", "all_required_ok",
           "cache_dir", "check_data", "fetch_data", "fetch_target_dir", "format_check_table", "load_dataset",
           "load_mnist", "load_omniglot", "load_yahoo", "pad_batch", "resolve_data_dir"]


def load_dataset(cfg: RunConfig, data_dir: str | os.PathLike | None = None) -> ImageData | TextData:
    """The dataset `cfg.dataset`, keeping the first cfg.n_train / n_valid / n_test examples of each split."""
    sizes = dict(n_train=cfg.n_train, n_valid=cfg.n_valid, n_test=cfg.n_test)
    if cfg.dataset == "mnist":
        return load_mnist(data_dir, **sizes)
    if cfg.dataset == "omniglot":
        return load_omniglot(data_dir, **sizes)
    if cfg.dataset == "yahoo":
        return load_yahoo(data_dir, max_len=cfg.max_len, **sizes)
    raise DataError(f"unknown dataset {cfg.dataset!r}; valid datasets: {', '.join(dataset_names())}.")
