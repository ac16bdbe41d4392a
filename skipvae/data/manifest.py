"""The manifest of data files (`manifest.json`, shipped in the package) and checksum verification.

Each file has a sha256 (or, for the optional user-supplied files, only the MD5 that is published for them).
`of: "file"` hashes the bytes as stored; `of: "text"` hashes the uncompressed text, so a Yahoo file may be
stored as `name.txt` or `name.txt.gz`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import zlib
from pathlib import Path

from skipvae.data.paths import resolve_data_dir
from skipvae.errors import DataError

CHECK_CMD = "`python -m skipvae data check`"
FETCH_CMD = "`python -m skipvae data fetch`"
STATUS_OK, STATUS_MISSING, STATUS_BAD, STATUS_OPTIONAL_ABSENT = "OK", "MISSING", "BAD CHECKSUM", "OPTIONAL: absent"


@functools.lru_cache(maxsize=1)
def manifest() -> dict:
    """The parsed `manifest.json`: {'datasets': {dataset: {file: entry}}, 'packaged': {file: text}}."""
    with open(Path(__file__).with_name("manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def dataset_names() -> tuple[str, ...]:
    return tuple(manifest()["datasets"])


def entries(dataset: str) -> dict[str, dict]:
    """The manifest entries of one dataset; DataError listing the valid names if unknown."""
    datasets = manifest()["datasets"]
    if dataset not in datasets:
        raise DataError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(datasets)}.")
    return datasets[dataset]


def split_sizes(dataset: str) -> dict[str, int]:
    """{'train': n, 'valid': n, 'test': n}: the most examples each split of `dataset` can have (the manifest's
    'splits'; the loader checks the exact size of the files it finds)."""
    entries(dataset)
    return dict(manifest()["splits"][dataset])


def check_split_sizes(cfg) -> None:
    """ConfigError, before any data loads, for a split size, batch size or evaluation size of `cfg` (a RunConfig)
    larger than its split can be (split_sizes)."""
    from skipvae.errors import ConfigError

    sizes = split_sizes(cfg.dataset)
    limits = {"n_train": sizes["train"], "n_valid": sizes["valid"], "n_test": sizes["test"],
              "clf_n_train": sizes["train"], "clf_n_test": sizes["test"]}
    for name, most in limits.items():
        value = getattr(cfg, name)
        if isinstance(value, int) and value > most:
            raise ConfigError(f"{name}={value} is impossible: the {cfg.dataset} {name.rsplit('_', 1)[1]} split has "
                              f"at most {most} examples; use {most} or less, or 'all' for the whole split.")
    if isinstance(cfg.n_eval_nll, int) and cfg.n_eval_nll > sizes["test"]:  # above n_test it is cut to n_test
        raise ConfigError(f"n_eval_nll={cfg.n_eval_nll} is impossible: the {cfg.dataset} test split has at most "
                          f"{sizes['test']} examples; use {sizes['test']} or less, or 'all'.")
    trains = cfg.n_train if cfg.n_train is not None else sizes["train"]
    if isinstance(cfg.batch_size, int) and cfg.batch_size > trains:
        raise ConfigError(f"batch_size={cfg.batch_size} is impossible: the training split has {trains} examples"
                          f"{' (n_train)' if cfg.n_train is not None else ''}; use --batch-size {trains} or less.")


def expected_checksum(entry: dict) -> tuple[str, str]:
    """(algorithm, hex digest) to check a file against: sha256 when known, else md5."""
    return ("sha256", entry["sha256"]) if "sha256" in entry else ("md5", entry["md5"])


def candidate_paths(folder: Path, name: str, entry: dict) -> list[Path]:
    """Where a manifest file may be: `name`, and for text files also the uncompressed `name` without .gz."""
    paths = [folder / name]
    if entry.get("of") == "text" and name.endswith(".gz"):
        paths.append(folder / name[: -len(".gz")])
    return paths


def locate(folder: Path, name: str, entry: dict) -> Path | None:
    """The first existing candidate path of a manifest file, or None."""
    return next((p for p in candidate_paths(folder, name, entry) if p.is_file()), None)


_DIGESTS: dict[tuple, str] = {}


def file_digest(path: Path, algorithm: str = "sha256", of: str = "file") -> str:
    """Hex digest of a file's bytes (`of='file'`) or of its uncompressed text (`of='text'`, .gz or plain).

    Results are cached per process, keyed by (path, size, mtime). An unreadable gzip raises DataError.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, algorithm, of)
    if key not in _DIGESTS:
        h = hashlib.new(algorithm)
        opener = gzip.open if (of == "text" and path.suffix == ".gz") else open
        try:
            with opener(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path} is not a readable gzip file ({type(e).__name__}: {e}); it is corrupt or "
                            f"truncated. Delete it and run {FETCH_CMD}, then {CHECK_CMD}.") from e
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def check_file(path: Path, entry: dict) -> tuple[bool, str]:
    """(matches, actual digest) of one file against its manifest entry; a corrupt gzip does not match."""
    algorithm, expected = expected_checksum(entry)
    try:
        actual = file_digest(path, algorithm, entry.get("of", "file"))
    except DataError as e:
        return False, f"unreadable ({e.__cause__})"
    return actual == expected, actual


def verify_file(path: Path, entry: dict, dataset: str) -> Path:
    """Return `path` if its checksum matches the manifest, else raise DataError saying how to fix it."""
    ok, actual = check_file(path, entry)
    if not ok:
        algorithm, expected = expected_checksum(entry)
        raise DataError(f"{dataset} file {path} has the wrong checksum: expected {algorithm} {expected}, got "
                        f"{actual}. The file is corrupt, truncated or a different version. Delete it and run "
                        f"{FETCH_CMD} (or copy the right file there), then {CHECK_CMD}.")
    return path


def required_files(dataset: str, data_dir: str | os.PathLike | None = None, verify: bool = True) -> dict[str, Path]:
    """Paths of the required files of `dataset`, each checked against the manifest when `verify`.

    A missing file or a wrong checksum raises DataError naming the file and the fix.
    """
    folder = resolve_data_dir(data_dir) / dataset
    found = {}
    for name, entry in entries(dataset).items():
        if entry.get("optional"):
            continue
        path = locate(folder, name, entry)
        if path is None:
            raise DataError(f"{dataset} file {folder / name} is missing (expected {expected_checksum(entry)[0]} "
                            f"{expected_checksum(entry)[1]}). Run {FETCH_CMD}, or set SKIPVAE_DATA to a folder "
                            f"that has {dataset}/{name}; then {CHECK_CMD}.")
        found[name] = verify_file(path, entry, dataset) if verify else path
    return found


def optional_file(dataset: str, name: str, data_dir: str | os.PathLike | None = None,
                  verify: bool = True) -> Path | None:
    """The path of an optional user-supplied file if present (checked when `verify`), else None."""
    entry = entries(dataset)[name]
    path = locate(resolve_data_dir(data_dir) / dataset, name, entry)
    if path is not None and verify:
        verify_file(path, entry, dataset)
    return path


def check_data(data_dir: str | os.PathLike | None = None, datasets: list[str] | None = None) -> list[dict]:
    """One row per manifest file: {dataset, file, status, expected, path}.

    status is 'OK', 'MISSING', 'BAD CHECKSUM' or, for an absent optional file, 'OPTIONAL: absent'.
    """
    root = resolve_data_dir(data_dir)
    rows = []
    for dataset in datasets or dataset_names():
        for name, entry in entries(dataset).items():
            algorithm, expected = expected_checksum(entry)
            path = locate(root / dataset, name, entry)
            if path is None:
                status = STATUS_OPTIONAL_ABSENT if entry.get("optional") else STATUS_MISSING
                path = root / dataset / name
            else:
                status = STATUS_OK if check_file(path, entry)[0] else STATUS_BAD
            rows.append(dict(dataset=dataset, file=path.name, status=status, expected=f"{algorithm}:{expected}",
                             path=str(path)))
    return rows


def all_required_ok(rows: list[dict]) -> bool:
    """True when every required file is OK (optional files may be absent, never bad)."""
    return all(r["status"] in (STATUS_OK, STATUS_OPTIONAL_ABSENT) for r in rows)


def format_check_table(rows: list[dict]) -> str:
    """A plain-text table with the columns dataset, file, status."""
    header = ("dataset", "file", "status")
    table = [header] + [(r["dataset"], r["file"], r["status"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
