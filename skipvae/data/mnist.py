"""MNIST from the four official LeCun IDX files: 50,000 train / 10,000 valid / 10,000 test.

valid is the LAST 10,000 images of the official training set; gray levels are pixel / 255.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from skipvae.data.images import ImageData
from skipvae.data.manifest import CHECK_CMD, FETCH_CMD, required_files
from skipvae.errors import DataError

N_VALID = 10_000
IDX_MAGIC = {2049: 1, 2051: 3}  # labels: 1 dimension, images: 3 dimensions


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array stored in a gzip'd IDX file (magic 2049: labels [N], 2051: images [N, rows, cols])."""
    try:
        raw = gzip.decompress(Path(path).read_bytes())
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a valid gzip file ({type(e).__name__}: {e}); it is truncated or corrupt. "
                        f"Delete it and run {FETCH_CMD}, then {CHECK_CMD}.") from e
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in IDX_MAGIC:
        raise DataError(f"{path} is not an MNIST IDX file (magic number {magic}, expected 2049 or 2051). "
                        f"Run {CHECK_CMD} to find the bad file.")
    ndim = IDX_MAGIC[magic]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise DataError(f"{path} holds {len(body)} bytes of data but its header announces shape {shape}; "
                        f"the file is truncated. Run {FETCH_CMD}, then {CHECK_CMD}.")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def load_mnist(data_dir: str | os.PathLike | None = None, *, n_train: int | None = None,
               n_valid: int | None = None, n_test: int | None = None, verify: bool = True) -> ImageData:
    """MNIST as an ImageData: train = official train[:50000], valid = train[50000:], test = t10k."""
    files = required_files("mnist", data_dir, verify=verify)
    train_x = read_idx(files["train-images-idx3-ubyte.gz"])
    train_y = read_idx(files["train-labels-idx1-ubyte.gz"])
    test_x = read_idx(files["t10k-images-idx3-ubyte.gz"])
    test_y = read_idx(files["t10k-labels-idx1-ubyte.gz"])
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DataError(f"MNIST images and labels disagree in number ({len(train_x)}/{len(train_y)} train, "
                        f"{len(test_x)}/{len(test_y)} test). Run {CHECK_CMD}.")
    gray = lambda a: a.astype(np.float32) / np.float32(255.0)  # noqa: E731
    cut = len(train_x) - N_VALID
    splits = {"train": (gray(train_x[:cut]), train_y[:cut]),
              "valid": (gray(train_x[cut:]), train_y[cut:]),
              "test": (gray(test_x), test_y)}
    return ImageData("mnist", splits, num_classes=10, n_train=n_train, n_valid=n_valid, n_test=n_test,
                     notes="MNIST: official LeCun files; valid = last 10,000 training images.")
