"""Download the data from its public sources (URLs in manifest.json), verifying every file.

MNIST comes from a public mirror of the LeCun files, Omniglot's npz files and the Yahoo texts from the GitHub
repositories and commits named in the SOURCE.md files; `alphabets.tsv` is shipped in the package. Yahoo texts
are stored gzip'd (their checksum is of the text). Each file goes to a temporary file that is checked, then
moved in place with os.replace. Files already present and verified are skipped. The first failure stops the
fetch with a DataError (offline, this takes at most `timeout` seconds).
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from skipvae.data.manifest import (CHECK_CMD, all_required_ok, check_data, check_file, dataset_names, entries,
                                   expected_checksum, locate, manifest)
from skipvae.data.paths import fetch_target_dir, resolve_data_dir
from skipvae.errors import DataError

USER_AGENT = "skipvae-data-fetch"


def _temporary_next_to(dest: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=f".part{dest.suffix}")
    os.close(fd)
    return Path(tmp)


def _install(tmp: Path, dest: Path, entry: dict, source: str) -> Path:
    """Move `tmp` to `dest` if its checksum matches the manifest; else delete it and raise DataError."""
    ok, actual = check_file(tmp, entry)
    if not ok:
        tmp.unlink(missing_ok=True)
        algorithm, expected = expected_checksum(entry)
        raise DataError(f"the file from {source} has the wrong checksum: expected {algorithm} {expected}, got "
                        f"{actual}. Nothing was written to {dest}. The source changed or the download was cut; "
                        f"try again later, or copy a verified file to {dest}.")
    os.replace(tmp, dest)
    return dest


def download(url: str, dest: Path, entry: dict, timeout: float = 10) -> Path:
    """Download `url` to `dest` atomically and verify it; a text entry saved as .gz is gzip'd on the way."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_next_to(dest)
    compress = entry.get("of") == "text" and dest.suffix == ".gz" and not url.endswith(".gz")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as raw:
            out = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) if compress else raw
            shutil.copyfileobj(response, out, 1 << 20)
            if compress:
                out.close()
    except (urllib.error.URLError, OSError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise DataError(f"could not download {url} ({reason}; timeout {timeout} s). Is this machine offline? "
                        f"Copy the file by hand to {dest} (sources in the data folder's SOURCE.md files), or set "
                        f"SKIPVAE_DATA to a folder that has it; then run {CHECK_CMD}.") from e
    return _install(tmp, dest, entry, url)


def write_packaged(dest: Path, text: str, entry: dict) -> Path:
    """Write a file shipped inside the package (alphabets.tsv) atomically and verify it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_next_to(dest)
    tmp.write_bytes(text.encode("utf-8"))
    return _install(tmp, dest, entry, "the skipvae package")


def fetch_data(data_dir: str | os.PathLike | None = None, timeout: float = 10, datasets: list[str] | None = None,
               include_optional: bool = False) -> list[Path]:
    """Download every missing or bad file of `datasets` (default: all) into `data_dir`; return the paths written.

    `data_dir` defaults to $SKIPVAE_DATA, else ./data. `include_optional` also tries the user-supplied files
    (chardata.mat, yahoo.train.txt), which switch the loaders to the paper's exact data.
    """
    root = fetch_target_dir(data_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data directory {root} ({e}); pass --data-dir or set SKIPVAE_DATA "
                        f"to a writable folder.") from e
    written = []
    for dataset in datasets or dataset_names():
        for name, entry in entries(dataset).items():
            if entry.get("optional") and not include_optional:
                continue
            folder = root / dataset
            present = locate(folder, name, entry)
            if present is not None and check_file(present, entry)[0]:
                continue
            if entry.get("packaged"):
                written.append(write_packaged(folder / name, manifest()["packaged"][name], entry))
            else:
                written.append(download(entry["url"], folder / name, entry, timeout))
    return written


def ensure_data(data_dir: str | os.PathLike | None = None, fetch=None) -> tuple[Path, list[Path]]:
    """(data folder, files fetched): the data folder found (see paths.py) if every required file in it passes its
    checksum; else `fetch` into `data_dir` ($SKIPVAE_DATA, else ./data) and check again. Offline, the fetch's
    DataError (within its timeout) says what to do."""
    try:
        found = resolve_data_dir(data_dir)
        if all_required_ok(check_data(found)):
            return found, []
    except DataError:
        pass  # no data folder yet
    written = (fetch or fetch_data)(data_dir)
    root = resolve_data_dir(fetch_target_dir(data_dir))
    if not all_required_ok(check_data(root)):
        raise DataError(f"the data in {root} does not pass its checksums after the fetch; run {CHECK_CMD} "
                        f"--data-dir {root} to see which files are bad.")
    return root, written
