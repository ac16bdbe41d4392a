"""Yahoo Answers (Yang et al. 2017): one tokenized, lowercased document per line, vocabulary of 19,997 words.

With the user's `yahoo.train.txt(.gz)` (MD5-checked) the standard train / valid / test split is used. Without
it (the case here): train = the validation split less a fixed 1,000-document hold-out, valid = that hold-out,
test = the test split.

Documents longer than `max_len` words are truncated to their first `max_len` words (the </s> is kept).
The official preprocessing drops them instead; truncating keeps the split sizes fixed, which matters for the
reduced profiles (max_len 60 would drop most documents). At max_len = 200 nothing changes: no document of
the valid or test split is longer than 200 words.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from skipvae.data.batching import check_count
from skipvae.data.manifest import CHECK_CMD, FETCH_CMD, optional_file, required_files
from skipvae.data.text import TextData, Vocab
from skipvae.errors import DataError

N_HOLDOUT = 1000
HOLDOUT_SEED = 4321  # fixed forever: which valid documents are held out


def read_lines(path: Path) -> list[str]:
    """The lines (without newlines) of a UTF-8 text file, gzip'd (.gz) or plain."""
    opener = gzip.open if Path(path).suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise DataError(f"{path} cannot be read as UTF-8 text ({type(e).__name__}: {e}); it is truncated or "
                        f"corrupt. Delete it and run {FETCH_CMD}, then {CHECK_CMD}.") from e


def encode_documents(lines: list[str], vocab: Vocab, max_len: int) -> list[np.ndarray]:
    """Each line as an int64 array of word ids, cut to its first `max_len` words."""
    return [np.array(vocab.encode(line)[:max_len], dtype=np.int64) for line in lines]


def holdout_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, hold-out indices) of the validation file, each in file order; fixed by HOLDOUT_SEED."""
    perm = np.random.default_rng(HOLDOUT_SEED).permutation(n)
    return np.sort(perm[N_HOLDOUT:]), np.sort(perm[:N_HOLDOUT])


def load_yahoo(data_dir: str | os.PathLike | None = None, max_len: int = 200, *, n_train: int | None = None,
               n_valid: int | None = None, n_test: int | None = None, verify: bool = True) -> TextData:
    """Yahoo as a TextData (see the module docstring for the splits and the truncation to `max_len` words)."""
    check_count("max_len", max_len)
    files = required_files("yahoo", data_dir, verify=verify)
    vocab = Vocab(read_lines(files["vocab.txt.gz"]))
    encode = lambda path: encode_documents(read_lines(path), vocab, max_len)  # noqa: E731
    valid, test = encode(files["yahoo.valid.txt.gz"]), encode(files["yahoo.test.txt.gz"])
    train_file = optional_file("yahoo", "yahoo.train.txt.gz", data_dir, verify=verify)
    if train_file is not None:
        splits = {"train": encode(train_file), "valid": valid, "test": test}
        notes = f"Yahoo: standard 100k/10k/10k split, documents cut to {max_len} words."
    else:
        train_idx, holdout_idx = holdout_split(len(valid))
        splits = {"train": [valid[i] for i in train_idx], "valid": [valid[i] for i in holdout_idx], "test": test}
        notes = (f"Yahoo: the 100k training file is absent, so train = the 10k validation file less a fixed "
                 f"{N_HOLDOUT}-document hold-out (valid = the hold-out), test = the test file; documents cut to "
                 f"{max_len} words.")
    return TextData("yahoo", vocab, splits, n_train=n_train, n_valid=n_valid, n_test=n_test, notes=notes)
