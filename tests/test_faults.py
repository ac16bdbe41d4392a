"""Fault injection: a real training subprocess (synthetic data, smoke profile) is killed with SIGKILL at several
points or finds damaged files; the resumed run must end with exactly the uninterrupted record, or stop with a clear
one-line message (exit 2, no traceback)."""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent
ARGS = ["train", "--dataset", "mnist", "--arch", "mlp", "--model", "skip-vae", "--profile", "smoke", "--epochs", "3",
        "--no-progress"]
TIMING = ("time_s", "examples_per_s")


def cli(out: Path, point: str = "none", args=ARGS) -> subprocess.CompletedProcess:
    """Run the CLI on synthetic data in a subprocess, killed at `point` (see fault_runner.py)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(HERE / "fault_runner.py"), point, *args, "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)


def run_dir(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder


def numbers(record: dict) -> dict:
    """What must not depend on interruptions: metrics, curves (without timings), best epoch."""
    history = [{k: v for k, v in h.items() if k not in TIMING} for h in record["history"]]
    metrics = {k: v for k, v in record["metrics"].items() if k != "timing"}
    return {"metrics": metrics, "history": history, "best_epoch": record["best_epoch"],
            "best_val": record["best_val_neg_elbo"], "epochs": record["epochs_completed"]}


def finished(out: Path) -> dict:
    return json.loads((run_dir(out) / "record.json").read_text())


def assert_clear_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "weights_only=False" not in proc.stderr
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The record of the uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    proc = cli(out)
    assert proc.returncode == 0, proc.stderr
    return numbers(finished(out))


def test_killed_during_a_checkpoint_write_resumes_to_the_identical_record(tmp_path, reference):
    assert cli(tmp_path, "save:3").returncode == -9  # the 2nd epoch's last.pt (after best.pt 1, last.pt 1)
    folder = run_dir(tmp_path)
    assert [p.name for p in folder.glob(".*.tmp")], "the kill should leave a half-written temporary file"
    proc = cli(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "removed" in proc.stderr and not list(folder.glob(".*.tmp"))
    assert numbers(finished(tmp_path)) == reference


def test_truncated_last_checkpoint_falls_back_to_the_previous_one(tmp_path, reference):
    assert cli(tmp_path, "validate:3").returncode == -9  # during epoch 3: last.pt = epoch 2, last.prev.pt = epoch 1
    last = run_dir(tmp_path) / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    proc = cli(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{last} is not a readable checkpoint" in proc.stderr and "falling back to last.prev.pt" in proc.stderr
    assert "resuming from" in proc.stderr
    assert numbers(finished(tmp_path)) == reference


def test_empty_checkpoint_without_fallback_starts_over(tmp_path, reference):
    assert cli(tmp_path, "validate:2").returncode == -9  # during epoch 2: only last.pt (epoch 1)
    last = run_dir(tmp_path) / "last.pt"
    last.write_bytes(b"")
    proc = cli(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{last} is not a readable checkpoint" in proc.stderr and "starting over from epoch 0" in proc.stderr
    assert numbers(finished(tmp_path)) == reference


def test_truncated_record_is_rebuilt(tmp_path, reference):
    assert cli(tmp_path).returncode == 0
    record = run_dir(tmp_path) / "record.json"
    record.write_text(record.read_text()[:200])
    proc = cli(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{record} is damaged" in proc.stderr and "rebuilt" in proc.stderr
    assert numbers(finished(tmp_path)) == reference


def test_a_second_process_on_a_locked_run_folder_says_who_holds_it(tmp_path):
    folder = tmp_path / "runs"
    assert cli(folder, "validate:1").returncode == -9
    with open(run_dir(folder) / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.truncate(0)
        f.write(f"pid {os.getpid()} on testhost")
        f.flush()
        proc = cli(folder)
    assert_clear_error(proc, "is in use", f"pid {os.getpid()} on testhost")


def test_evaluate_refuses_damaged_and_foreign_files_clearly(tmp_path):
    truncated, text = tmp_path / "best.pt", tmp_path / "notes.txt"
    truncated.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    text.write_text("not a checkpoint")
    for path in (truncated, text):
        proc = cli(tmp_path / "metrics.json", args=["evaluate", str(path)])  # --out: a file, not a folder
        assert_clear_error(proc, str(path), "not a readable checkpoint")


@pytest.mark.slow
def test_killed_between_checkpoint_rotation_and_replacement_resumes_from_the_previous(tmp_path, reference):
    assert cli(tmp_path, "rotate:1").returncode == -9  # epoch 2: last.pt moved to last.prev.pt, no new last.pt yet
    assert not (run_dir(tmp_path) / "last.pt").exists()
    proc = cli(tmp_path)
    assert proc.returncode == 0 and "is missing" in proc.stderr, proc.stderr
    assert numbers(finished(tmp_path)) == reference


@pytest.mark.slow
def test_killed_during_the_final_evaluation_resumes_to_the_identical_record(tmp_path, reference):
    assert cli(tmp_path, "evaluate:1").returncode == -9
    assert not (run_dir(tmp_path) / "record.json").exists()
    proc = cli(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert numbers(finished(tmp_path)) == reference


@pytest.mark.slow
def test_killed_during_the_record_write_resumes_to_the_identical_record(tmp_path, reference):
    assert cli(tmp_path, "record:1").returncode == -9
    folder = run_dir(tmp_path)
    assert not (folder / "record.json").exists() and list(folder.glob(".*.tmp"))
    proc = cli(tmp_path)
    assert proc.returncode == 0 and "removed" in proc.stderr, proc.stderr
    assert numbers(finished(tmp_path)) == reference


@pytest.mark.slow
def test_best_checkpoint_lost_after_training_is_rebuilt_or_reported(tmp_path, reference):
    assert cli(tmp_path, "evaluate:1").returncode == -9  # training done, evaluation not
    (run_dir(tmp_path) / "best.pt").write_bytes(b"")
    proc = cli(tmp_path)
    if reference["best_epoch"] == reference["epochs"]:  # last.pt holds the best model: rebuilt from it
        assert proc.returncode == 0 and "rebuilding it from last.pt" in proc.stderr, proc.stderr
        assert numbers(finished(tmp_path)) == reference
    else:
        assert_clear_error(proc, "best.pt", "held the best model", "delete")


def sweep_cli(tmp_path: Path, point: str = "none") -> subprocess.CompletedProcess:
    """`sweep --jobs 2` of three smoke runs (seeds 0-2) on synthetic data, run as fault_runner.py `point`; stdout
    and stderr in one stream, unbuffered, so its lines are in the order the driver wrote them."""
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "grid": {"seed": [0, 1, 2]}, "base": {
        "dataset": "mnist", "arch": "mlp", "profile": "smoke", "n_train": 50, "n_valid": 25, "n_test": 25,
        "epochs": 1}}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]), "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    args = ["sweep", str(path), "--jobs", "2", "--threads-per-run", "1", "--out", str(tmp_path / "runs")]
    return subprocess.run([sys.executable, str(HERE / "fault_runner.py"), point, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, timeout=300)


def test_a_failed_run_of_a_parallel_sweep_is_reported_at_once_and_the_others_train(tmp_path):
    """--jobs 2, seed 1's run fails before it trains: its failure is reported when it happens (before seed 2, which
    waited for a free worker, finishes), seeds 0 and 2 finish, and the sweep ends with one line naming the failed
    run and its traceback's file, exit 1; the same command again trains seed 1 alone and removes that file."""
    from skipvae.sweep import ERROR_LOG, load_sweep

    proc = sweep_cli(tmp_path, "fail-run:1")
    names = [cfg.run_name() for cfg in load_sweep(tmp_path / "s.yaml").configs]
    log = tmp_path / "runs" / "t" / names[1] / ERROR_LOG
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1, proc.stdout
    failed = lines.index(f"failed {names[1]}: TrainingError: injected failure of seed 1 (tests); its traceback: {log}")
    assert failed < lines.index(f"finished {names[2]} in 1 piece(s)") and f"finished {names[0]} in 1 piece(s)" in lines
    assert lines[-1] == (f"skipvae: 1 of 3 runs failed: {names[1]} ({log}); fix the cause and run the same command "
                         f"again: the finished runs are skipped, the others resume from their last.pt.")
    assert "Traceback" in log.read_text() and "TrainingError: injected failure of seed 1" in log.read_text()
    assert [(tmp_path / "runs" / "t" / n / "record.json").is_file() for n in names] == [True, False, True]

    proc = sweep_cli(tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "3 runs, 2 finished, 1 to run" in proc.stdout and f"finished {names[1]} in 1 piece(s)" in proc.stdout
    assert not log.exists() and (tmp_path / "runs" / "t" / names[1] / "record.json").is_file()


def test_a_worker_killed_in_a_parallel_sweep_fails_the_unfinished_runs_cleanly(tmp_path):
    """--jobs 2, seed 1's worker is killed (as by the kernel out of memory): the process pool breaks, every run that
    had not finished is reported failed (one line each, its traceback in its folder; no traceback from the driver),
    exit 1; the same command again trains them all."""
    from skipvae.sweep import load_sweep

    proc = sweep_cli(tmp_path, "crash-run:1")
    names = [cfg.run_name() for cfg in load_sweep(tmp_path / "s.yaml").configs]
    assert proc.returncode == 1, proc.stdout
    assert f"failed {names[1]}: BrokenProcessPool: " in proc.stdout
    assert "Traceback" not in proc.stdout and proc.stdout.splitlines()[-1].startswith("skipvae: ")
    proc = sweep_cli(tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert all((tmp_path / "runs" / "t" / n / "record.json").is_file() for n in names)
