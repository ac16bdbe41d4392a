"""Provenance and atomic file writes: every result records where it came from, and no file is ever half-written."""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch

from skipvae.errors import DataError

REPO_ROOT = Path(__file__).resolve().parent.parent

SCHEMA_VERSION = 2  # 1: records before 2026-12-02 (no schema_version; named by a hash of the whole config)


@dataclass
class RunRecord:
    """One run's result, as train.finish writes it and skipvae.report reads it (results/<experiment>/runs/*.json)."""
    status: str  # "finished" (a sweep's record.json may also be "paused")
    name: str  # RunConfig.run_name(): the run's axes and its stable key
    config: dict  # RunConfig.to_dict()
    metrics: dict  # the test-set evaluation (skipvae.metrics.evaluate), "classification" nested
    best_epoch: int | None = None
    best_val_neg_elbo: float | None = None
    epochs_completed: int = 0
    stopped_early: bool = False
    history: list = field(default_factory=list)  # one dict per epoch: losses, validation KL, MI, AU, updates, time
    train_time_s: float | None = None
    eval_time_s: float | None = None
    wall_time_s: float | None = None
    train_examples_per_s: float | None = None
    provenance: dict = field(default_factory=dict)  # git commit, seed, profile, device, library versions
    schema_version: int = SCHEMA_VERSION
    migrations: list = field(default_factory=list)  # what `migrate` changed in an older record, oldest first

    @classmethod
    def from_dict(cls, record, path: str | Path = "record") -> "RunRecord":
        """The record in `record` (a parsed JSON object), migrated to SCHEMA_VERSION; DataError naming `path` and
        what is wrong when it is not a run record."""
        if not isinstance(record, dict):
            raise DataError(f"run record {path} holds a {type(record).__name__}, expected a JSON object")
        record = migrate(record, path)
        known = {f.name for f in fields(cls)}
        missing = [k for k in RECORD_KEYS if k not in record]
        missing += [f"config.{k}" for k in CONFIG_KEYS if k not in (record.get("config") or {})]
        if missing:
            raise DataError(f"run record {path} lacks {', '.join(missing)}; a run record has the keys "
                            f"{', '.join(RECORD_KEYS)} with config keys {', '.join(CONFIG_KEYS)} "
                            "(skipvae.records.RunRecord).")
        unknown = sorted(set(record) - known)
        if unknown:
            raise DataError(f"run record {path} has unknown keys {unknown}; known: {sorted(known)}")
        for key, kind in (("config", dict), ("metrics", dict), ("history", list), ("provenance", dict)):
            if key in record and not isinstance(record[key], kind):
                raise DataError(f"run record {path}: {key!r} must be a JSON {'object' if kind is dict else 'array'}, "
                                f"got {type(record[key]).__name__}")
        return cls(**record)

    def to_dict(self) -> dict:
        return asdict(self)


RECORD_KEYS = tuple(f.name for f in fields(RunRecord) if f.default is MISSING and f.default_factory is MISSING)
CONFIG_KEYS = ("dataset", "arch", "model", "profile", "seed", "latent_dim", "dec_layers")


def migrate(record: dict, path: str | Path = "record") -> dict:
    """`record` brought to SCHEMA_VERSION, each step listed in its 'migrations' (a new dict; the input is unchanged).

    1 -> 2: the name is re-derived from the config (RunConfig.run_name: the key hashes the run's identity and the
    fields that differ from their defaults, no longer the whole config), the old name kept in the migration entry.
    """
    version = record.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
        raise DataError(f"run record {path} has schema_version {version!r}; this code reads 1 to {SCHEMA_VERSION}")
    if version == SCHEMA_VERSION:
        return record
    from skipvae.config import RunConfig
    from skipvae.errors import ConfigError

    record = dict(record)
    try:
        name = RunConfig.from_dict(record.get("config") or {}).run_name()
    except (ConfigError, TypeError) as err:
        raise DataError(f"run record {path}: its config cannot be read ({err})") from None
    step = {"from": 1, "to": 2, "change": "name re-keyed to the stable run key (RunConfig.identity)",
            "old_name": record.get("name")}
    record.update(name=name, schema_version=2, migrations=[*record.get("migrations", []), step])
    return record


def check_record(record, path: str | Path = "record") -> dict:
    """`record` as a plain dict of the current schema (migrated if older); DataError naming `path` when it is not
    a run record (RunRecord.from_dict)."""
    return RunRecord.from_dict(record, path).to_dict()


def _umask() -> int:
    """This process's umask (read without changing it where /proc has it)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def _write_error(path: Path, err: OSError) -> DataError:
    """One line naming the folder that could not be written (disk full, read-only, no permission)."""
    why = "the disk is full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else (err.strerror or str(err))
    return DataError(f"cannot write {path.name} in {path.parent}: {why}; the files written before are intact. "
                     f"Free space (or fix the folder) and run again.")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and os.replace (atomic on POSIX); the
    file gets the mode a plain open would (0666 less the umask). DataError naming the folder if it cannot."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _write_error(path, err) from None
        raise
    return path


def first_nonfinite(obj, where: str = "") -> str | None:
    """The key path of the first NaN or infinity in a JSON-like object, else None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = first_nonfinite(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def same_numbers(a, b, rel_tol: float = 1e-6) -> bool:
    """Whether two JSON values are equal, floats to within `rel_tol`: the last bits of a closed-form number differ
    between CPUs, and an ill-conditioned one loses more (the theory study's skip-dominance threshold of a nearly
    singular matrix: 1.5e-8 relative between two machines), and a number near 0 differs by its rounding (absolute
    1e-12); a result recomputed elsewhere is the same result."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_numbers(a[k], b[k], rel_tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_numbers(x, y, rel_tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
                and not isinstance(b, bool) and math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12))
    return a == b


def atomic_write_json(path: str | Path, obj) -> Path:
    """`obj` as strict JSON (no NaN or Infinity: DataError naming the key) written atomically."""
    try:
        text = json.dumps(obj, indent=1, sort_keys=False, default=_jsonable, allow_nan=False)
    except ValueError:
        obj = json.loads(json.dumps(obj, default=_jsonable))
        raise DataError(f"cannot write {path}: {first_nonfinite(obj)} is not a finite number, which strict JSON "
                        f"cannot hold") from None
    return atomic_write_bytes(path, (text + "\n").encode())


def atomic_torch_save(obj, path: str | Path, previous: str | Path | None = None) -> Path:
    """torch.save to a temporary file, then rename: an interrupted save leaves the previous file intact.
    With `previous`, the file being replaced is first moved there (a fallback if the new one gets damaged).
    The file gets 0666 less the umask; DataError naming the folder if it cannot be written (e.g. disk full)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        torch.save(obj, tmp)
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _write_error(path, err) from None
        raise
    return path


def payload_digest(obj) -> str:
    """sha256 of a checkpoint's contents (every tensor's bytes, dtype and shape, every other value's repr, in key
    order): written with a checkpoint and checked when it loads, so that a bit flip in its tensors is caught."""
    import hashlib

    h = hashlib.sha256()
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(item.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(item, dict):
            h.update(f"D{len(item)}".encode())
            for key in sorted(item, key=repr, reverse=True):  # popped in key order
                stack.extend([item[key], key])
        elif isinstance(item, (list, tuple)):
            h.update(f"L{len(item)}".encode())
            stack.extend(reversed(item))
        else:
            h.update(f"V{item!r};".encode())
    return h.hexdigest()


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def safe_name(name, what: str = "name") -> str:
    """`name` if it is a plain file or folder name (letters, digits, '.', '_', '-'; no path, not hidden), else
    ConfigError naming it: a name from a file never leads outside its folder."""
    from skipvae.errors import ConfigError

    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or len(name) > 200:
        raise ConfigError(f"{what}={name!r} is impossible: it must be a plain name of letters, digits, '.', '_' "
                          f"and '-' (no '/', no '..', at most 200 characters).")
    return name


def inside(folder: str | Path, name: str, what: str = "name") -> Path:
    """folder/name after checking that `name` is a safe name and the path resolves inside `folder`."""
    from skipvae.errors import ConfigError

    path = Path(folder) / safe_name(name, what)
    if not path.resolve().is_relative_to(Path(folder).resolve()):
        raise ConfigError(f"{what}={name!r} is impossible: {path} resolves outside {folder}.")
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
    """The record at `path` (migrated to the current schema) if it is finished and describes the run `cfg` (a
    RunConfig: `same_run`), else None;
    a damaged record is reported and counts as unfinished, so the run rebuilds it."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        record = read_json(path)
    except DataError as err:
        note(f"{err}; it will be rebuilt")
        return None
    if isinstance(record, dict) and record.get("status") == "finished" and cfg.same_run(record.get("config")):
        try:
            return check_record(record, path)
        except DataError as err:
            note(f"{err}; it will be rebuilt")
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
