"""A cache of built numpy arrays: `<cache_dir>/<name>-<key>.npz`, written atomically, verified on load.

The key names the inputs (e.g. the sha256 of the source files and the build version), so changed inputs
never reuse a stale build. The file stores a sha256 of its own arrays: a corrupt cache is rebuilt, not trusted.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from skipvae.data.paths import cache_dir

DIGEST_KEY = "__sha256__"


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of the arrays, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to a temporary file in the same folder, then os.replace: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{DIGEST_KEY: np.array(arrays_digest(arrays))})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None if it is absent, unreadable or fails its own sha256."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # fh: closed even if np.load fails
            arrays = {k: f[k] for k in f.files}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error):
        return None
    digest = arrays.pop(DIGEST_KEY, None)
    if digest is None or str(digest) != arrays_digest(arrays):
        return None
    return arrays


def cached_arrays(name: str, key: str, build: Callable[[], dict[str, np.ndarray]],
                  folder: Path | None = None) -> dict[str, np.ndarray]:
    """The arrays `build()` returns, computed once and then read from `<folder>/<name>-<key>.npz`."""
    path = Path(folder or cache_dir()) / f"{name}-{key}.npz"
    arrays = load_arrays(path) if path.exists() else None
    if arrays is None:
        arrays = build()
        try:
            save_arrays(path, arrays)
        except OSError as e:  # a read-only cache only costs a rebuild next time
            warnings.warn(f"could not write the cache file {path} ({e}); set SKIPVAE_CACHE to a writable folder.")
    return arrays
