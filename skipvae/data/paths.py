"""Where the data and the cache live.

The data directory holds one folder per dataset (`mnist/`, `omniglot/`, `yahoo/`). It is found in this order:
an explicit path (`--data-dir`), the env variable `SKIPVAE_DATA`, `./data`, then `../shared/data` relative to
the repository root (the folder that holds the `skipvae` package) and relative to the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from skipvae.errors import DataError

DATASET_DIRS = ("mnist", "omniglot", "yahoo")
ENV_DATA = "SKIPVAE_DATA"
ENV_CACHE = "SKIPVAE_CACHE"
FIX_HINT = (f"Set {ENV_DATA}=/path/to/data (a folder with mnist/, omniglot/, yahoo/), pass --data-dir, "
            f"or download the data with `python -m skipvae data fetch`.")


def repo_root() -> Path:
    """The folder that holds the `skipvae` package (the repository root in a source checkout)."""
    return Path(__file__).resolve().parent.parent.parent


def _looks_like_data_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_dir() for name in DATASET_DIRS)


def data_dir_candidates(explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The places searched for the data, in order, each with the reason it is searched."""
    found = []
    if explicit is not None:
        found.append(("--data-dir", Path(explicit)))
    if os.environ.get(ENV_DATA):
        found.append((ENV_DATA, Path(os.environ[ENV_DATA])))
    found.append(("./data", Path.cwd() / "data"))
    found.append(("../shared/data from the repository root", repo_root().parent / "shared" / "data"))
    found.append(("../shared/data from the current directory", Path.cwd().parent / "shared" / "data"))
    return found


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: `explicit`, else $SKIPVAE_DATA, else ./data, else ../shared/data.

    An explicit path or $SKIPVAE_DATA must exist (no silent fallback when the user named a folder);
    the implicit places count only if they hold at least one dataset folder.
    """
    tried = []
    for why, path in data_dir_candidates(explicit):
        if why in ("--data-dir", ENV_DATA):
            if not path.is_dir():
                raise DataError(f"the data directory {path} given by {why} does not exist. "
                                f"Point it at a folder with mnist/, omniglot/, yahoo/, or fetch the data "
                                f"there with `python -m skipvae data fetch --data-dir {path}`.")
            return path.resolve()
        if _looks_like_data_dir(path):
            return path.resolve()
        tried.append(f"{path} ({why})")
    raise DataError("no data directory found; tried: " + "; ".join(tried) + ". " + FIX_HINT)


def fetch_target_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where `fetch_data` writes when no folder is named: `explicit`, else $SKIPVAE_DATA, else ./data."""
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA])
    return Path.cwd() / "data"


def cache_dir() -> Path:
    """The cache of built arrays: $SKIPVAE_CACHE, else ~/.cache/skipvae (created on demand)."""
    path = Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "skipvae")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache directory {path} ({e}); set {ENV_CACHE} to a "
                        f"writable folder.") from e
    return path
