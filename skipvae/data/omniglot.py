"""Omniglot at 28x28: Burda et al.'s `chardata.mat` when the user has it, else built from Lake's raw 105x105 images.

The build (approximating `chardata.mat`, which is not bit-identical):
1. exact area averaging 105 -> 28: y = W x W^T with W[i, j] = |[j, j+1) ∩ [i s, (i+1) s)| / s, s = 105/28;
   pixel footprints fall on a 1/4 grid, so every gray level is exactly k/225 (stored as uint8 k);
2. ink = 1 - that average of the image (the npz stores True for the white background);
3. per character (1,623 of them, 50 alphabets) drawings 1-15 go to train and 16-20 to test
   (24,345 train as in chardata.mat; 8,115 test where chardata.mat has 8,070);
4. a fixed permutation (SPLIT_SEED) of the train images; its last 2,000 are the validation set
   (as SA-VAE does). The test set is permuted too, so its first n images sample all alphabets.
The built arrays are cached (see `skipvae.data.cache`), keyed by the sha256 of the source files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import scipy.io
import torch

from skipvae.data.cache import cached_arrays
from skipvae.data.images import ImageData
from skipvae.data.manifest import CHECK_CMD, FETCH_CMD, file_digest, optional_file, required_files
from skipvae.errors import DataError

RAW_SIZE, SIZE = 105, 28
N_DRAWINGS, N_TRAIN_DRAWINGS = 20, 15
N_VALID = 2000
N_ALPHABETS = 50
SPLIT_SEED = 1234  # fixed forever: the train/valid split and the order of the splits
LEVELS = 225  # (105/28)^2 * 16: area averages over a 1/4-pixel grid are multiples of 1/225
BUILD_VERSION = "omniglot28-v1"
SETS = ("background", "evaluation")


def area_weights(n_in: int = RAW_SIZE, n_out: int = SIZE) -> np.ndarray:
    """W [n_out, n_in]: W[i, j] = overlap of input pixel j with output pixel i's footprint / s, s = n_in / n_out.

    Each row sums to 1 (an average); each column sums to n_out / n_in (every input pixel counts equally).
    """
    s = n_in / n_out
    start = np.arange(n_out)[:, None] * s
    left = np.arange(n_in)[None, :]
    overlap = np.minimum(start + s, left + 1) - np.maximum(start, left)
    return np.clip(overlap, 0.0, None) / s


def area_downsample(ink: np.ndarray, n_out: int = SIZE, chunk: int = 2048) -> np.ndarray:
    """Area-average [N, n_in, n_in] images (bool or float) to [N, n_out, n_out] float32: y = W x W^T."""
    w = torch.as_tensor(area_weights(ink.shape[-1], n_out), dtype=torch.float32)
    out = np.empty((len(ink), n_out, n_out), dtype=np.float32)
    for start in range(0, len(ink), chunk):
        x = torch.as_tensor(np.asarray(ink[start:start + chunk], dtype=np.float32))
        out[start:start + chunk] = (w @ x @ w.T).numpy()
    return out


def to_levels(gray: np.ndarray) -> np.ndarray:
    """Gray levels that are multiples of 1/LEVELS, stored exactly as uint8 k = gray * LEVELS."""
    k = np.rint(gray * LEVELS)
    if np.abs(gray * LEVELS - k).max(initial=0.0) > 1e-3:
        raise DataError(f"Omniglot build: area averages are not multiples of 1/{LEVELS}; the raw images are "
                        f"not {RAW_SIZE}x{RAW_SIZE}. Run {CHECK_CMD}.")
    return k.astype(np.uint8)


def read_raw_npz(path: Path) -> np.ndarray:
    """Lake's images of one set from the npz: bool [characters, 20, 105, 105], True = white background."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # fh: closed even if np.load fails
            images = f["images"]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path} is not a readable Omniglot npz with an 'images' array ({type(e).__name__}: "
                        f"{e}); it is corrupt or truncated. Delete it and run {FETCH_CMD}, then {CHECK_CMD}.") from e
    if images.dtype != np.bool_ or images.ndim != 4 or images.shape[1:] != (N_DRAWINGS, RAW_SIZE, RAW_SIZE):
        raise DataError(f"{path}: expected bool images [characters, {N_DRAWINGS}, {RAW_SIZE}, {RAW_SIZE}], got "
                        f"{images.dtype} {images.shape}. Run {CHECK_CMD}.")
    return images


def read_alphabets(path: Path, n_chars: dict[str, int]) -> tuple[list[str], dict[str, np.ndarray]]:
    """(alphabet names, {set: alphabet index of each character}) from alphabets.tsv.

    Each row maps the character range [npz_first_index, npz_last_index] of a set to one alphabet; the
    ranges must cover every character of each set exactly once.
    """
    try:
        rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8")), delimiter="\t"))
        names = [r["alphabet"] for r in rows]
        alphabet_of = {s: np.full(n_chars[s], -1, dtype=np.int64) for s in SETS}
        for i, r in enumerate(rows):
            alphabet_of[r["set"]][int(r["npz_first_index"]): int(r["npz_last_index"]) + 1] = i
    except (OSError, UnicodeDecodeError, KeyError, ValueError, TypeError, IndexError) as e:
        raise DataError(f"{path} is not a valid alphabet table ({type(e).__name__}: {e}). "
                        f"Run {FETCH_CMD} to restore it, then {CHECK_CMD}.") from e
    if len(names) != N_ALPHABETS or any((a < 0).any() for a in alphabet_of.values()):
        raise DataError(f"{path}: expected {N_ALPHABETS} alphabets covering all {sum(n_chars.values())} characters, "
                        f"got {len(names)} alphabets. Run {FETCH_CMD} to restore it, then {CHECK_CMD}.")
    return names, alphabet_of


def split_permutations(n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed permutations of the train (then cut into train + valid) and test images."""
    rng = np.random.default_rng(SPLIT_SEED)
    return rng.permutation(n_train), rng.permutation(n_test)


def hold_out_validation(train_x, train_y, test_x, test_y) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Permute train and test; the last N_VALID permuted training images become 'valid'."""
    if len(train_x) <= N_VALID:
        raise DataError(f"Omniglot has only {len(train_x)} training images; at least {N_VALID + 1} are needed "
                        f"to hold out {N_VALID} for validation. Run {CHECK_CMD}.")
    p_train, p_test = split_permutations(len(train_x), len(test_x))
    train_x, train_y = train_x[p_train], train_y[p_train]
    return {"train": (train_x[:-N_VALID], train_y[:-N_VALID]),
            "valid": (train_x[-N_VALID:], train_y[-N_VALID:]),
            "test": (test_x[p_test], test_y[p_test])}


def build_from_raw(background: Path, evaluation: Path, alphabets: Path) -> dict[str, np.ndarray]:
    """The 28x28 train/test gray levels (uint8 k of k/225) and alphabet labels, in character-major order.

    ink = 1 - (area average of the background mask): averaging is linear, so this equals averaging the ink.
    """
    raw = {"background": read_raw_npz(background), "evaluation": read_raw_npz(evaluation)}
    _, alphabet_of = read_alphabets(alphabets, {s: len(raw[s]) for s in SETS})
    levels = {s: to_levels(1.0 - area_downsample(raw[s].reshape(-1, RAW_SIZE, RAW_SIZE)))
              .reshape(len(raw[s]), N_DRAWINGS, SIZE, SIZE) for s in SETS}
    out = {}
    for part, drawings in (("train", slice(0, N_TRAIN_DRAWINGS)), ("test", slice(N_TRAIN_DRAWINGS, N_DRAWINGS))):
        n = drawings.stop - drawings.start
        out[f"{part}_levels"] = np.concatenate([levels[s][:, drawings].reshape(-1, SIZE, SIZE) for s in SETS])
        out[f"{part}_labels"] = np.concatenate([np.repeat(alphabet_of[s], n) for s in SETS])
    return out


def read_chardata(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Burda's chardata.mat: (train gray [N, 28, 28], train alphabet labels, test gray, test labels).

    `data` is 784 x N with column-major 28x28 images (order='F'); `target` / `testtarget` are one-hot alphabets.
    """
    try:
        mat = scipy.io.loadmat(path)
        parts = []
        for x_key, y_key in (("data", "target"), ("testdata", "testtarget")):
            x = np.asarray(mat[x_key], dtype=np.float32)
            y = np.asarray(mat[y_key])
            x = x.T if x.shape[0] == SIZE * SIZE else x
            images = x.reshape(-1, SIZE, SIZE).transpose(0, 2, 1)  # column-major 784-vectors
            labels = (y.argmax(axis=0) if y.shape[0] == N_ALPHABETS else y.argmax(axis=1)).astype(np.int64)
            if len(images) != len(labels):
                raise ValueError(f"{x_key} has {len(images)} images but {y_key} has {len(labels)} labels")
            parts += [np.ascontiguousarray(images), labels]
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, zlib.error, NotImplementedError,
            scipy.io.matlab.MatReadError) as e:
        raise DataError(f"{path} is not a readable chardata.mat with data/target/testdata/testtarget "
                        f"({type(e).__name__}: {e}). Remove it to use the build from the raw images, or replace it "
                        f"with Burda et al.'s file (md5 21ecaf34373511aa7691cf2e0802aa3d).") from e
    return tuple(parts)


def load_omniglot(data_dir: str | os.PathLike | None = None, *, n_train: int | None = None,
                  n_valid: int | None = None, n_test: int | None = None, verify: bool = True) -> ImageData:
    """Omniglot as an ImageData with 50 alphabet labels: chardata.mat if present (MD5-checked), else the build."""
    chardata = optional_file("omniglot", "chardata.mat", data_dir, verify=verify)
    if chardata is not None:
        train_x, train_y, test_x, test_y = read_chardata(chardata)
        notes = "Omniglot: Burda et al.'s chardata.mat; last 2,000 of a fixed permutation of train = valid."
    else:
        files = required_files("omniglot", data_dir, verify=verify)
        sources = [files[name] for name in ("images_background.npz", "images_evaluation.npz", "alphabets.tsv")]
        key = hashlib.sha256("|".join([BUILD_VERSION] + [file_digest(p) for p in sources]).encode()).hexdigest()[:16]
        arrays = cached_arrays("omniglot28", key, lambda: build_from_raw(*sources))
        train_x = arrays["train_levels"].astype(np.float32) / np.float32(LEVELS)
        test_x = arrays["test_levels"].astype(np.float32) / np.float32(LEVELS)
        train_y, test_y = arrays["train_labels"], arrays["test_labels"]
        notes = ("Omniglot: the project's own 28x28 build from Lake's raw 105x105 images (area averaging, "
                 "15 train / 5 test drawings per character), an approximation of chardata.mat; "
                 "last 2,000 of a fixed permutation of train = valid.")
    splits = hold_out_validation(train_x, train_y, test_x, test_y)
    return ImageData("omniglot", splits, num_classes=N_ALPHABETS, n_train=n_train, n_valid=n_valid,
                     n_test=n_test, notes=notes)
