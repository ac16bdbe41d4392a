"""Provenance and atomic file writes: every result records where it came from, and no file is ever half-written."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from skipvae.errors import DataError

REPO_ROOT = Path(__file__).resolve().parent.parent

# The run record (train.finish writes it, skipvae.report reads it): these keys at least, and these config keys.
RECORD_KEYS = ("status", "name", "config", "metrics")
CONFIG_KEYS = ("dataset", "arch", "model", "profile", "seed", "latent_dim", "dec_layers")


def check_record(record, path: str | Path = "record") -> dict:
    """`record` if it has the keys of a run record (RECORD_KEYS, config.CONFIG_KEYS, a metrics object); else a
    DataError naming `path` and what is missing."""
    if not isinstance(record, dict):
        raise DataError(f"run record {path} holds a {type(record).__name__}, expected a JSON object")
    missing = [k for k in RECORD_KEYS if k not in record]
    missing += [f"config.{k}" for k in CONFIG_KEYS if k not in (record.get("config") or {})]
    if missing:
        raise DataError(f"run record {path} lacks {', '.join(missing)}; expected the keys {', '.join(RECORD_KEYS)} "
                        f"with config keys {', '.join(CONFIG_KEYS)} (see skipvae.train.finish).")
    if not isinstance(record["metrics"], dict):
        raise DataError(f"run record {path}: 'metrics' must be a JSON object, got {type(record['metrics']).__name__}")
    return record


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and os.replace (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False, default=_jsonable) + "\n").encode())


def atomic_torch_save(obj, path: str | Path, previous: str | Path | None = None) -> Path:
    """torch.save to a temporary file, then rename: an interrupted save leaves the previous file intact.
    With `previous`, the file being replaced is first moved there (a fallback if the new one gets damaged)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | Path):
    """The JSON object in `path`; DataError naming the file if it is not valid JSON (e.g. truncated)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is damaged: not valid JSON ({e.__class__.__name__}: {e}); it was probably "
                        f"truncated by an interrupted write.") from None


def note(message: str) -> None:
    """Tell the user what was done about a damaged or busy file (stderr)."""
    print(f"skipvae: {message}", file=sys.stderr, flush=True)


def finished_record(cfg, path: str | Path) -> dict | None:
    """The record at `path` if it is finished and its config is identical to `cfg` (a RunConfig), else None;
    a damaged record is reported and counts as unfinished, so the run rebuilds it."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        record = read_json(path)
    except DataError as err:
        note(f"{err}; it will be rebuilt")
        return None
    if isinstance(record, dict) and record.get("status") == "finished" and record.get("config") == cfg.to_dict():
        return record
    return None


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that an interrupted atomic write left in `folder` (call only while no other
    process writes there, e.g. under the run lock); returns the paths removed."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _jsonable(x):
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if hasattr(x, "tolist"):  # numpy arrays and scalars
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def git_commit() -> str:
    """The commit of the code that runs, with '+dirty' when tracked files outside results/ have uncommitted changes
    (a notebook rewriting its own results must not mark the code as dirty)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("SKIPVAE_GIT_COMMIT", "unknown")


def device_description(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def environment() -> dict:
    """Library versions and machine facts for a result record."""
    import numpy
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


def provenance(seed: int, profile: str, device) -> dict:
    return {"git_commit": git_commit(), "seed": seed, "profile": profile, "device": device_description(device),
            **environment()}
