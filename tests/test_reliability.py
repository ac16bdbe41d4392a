"""Issue 28: wrong results, writes outside their folder and damaged files are refused or survived, each case a row
of a table: another run's checkpoint, path traversal, non-finite numbers, bit flips, a full disk, hostile YAML,
bad collects. Everything runs on synthetic data (smoke profile) in seconds."""

import contextlib
import errno
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import skipvae.records
import skipvae.train as engine
from skipvae.cli import main
from skipvae.config import make_config
from skipvae.errors import ConfigError, DataError, TrainingError
from skipvae.records import atomic_torch_save, atomic_write_bytes, atomic_write_json
from skipvae.sweep import expand_sweep
from skipvae.train import BEST, LAST, PREV, RECORD, build, load_checkpoint, make_optimizer, restore, train
from synthetic import load_synthetic

HERE = Path(__file__).parent
pytestmark = pytest.mark.usefixtures("synthetic_data", "one_thread")


def smoke(**kw):
    return make_config("mnist", "vae", "smoke", arch="mlp", n_train=50, n_valid=25, n_test=25, **kw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two paused runs (seed 0 and 1: last.pt = epoch 2, last.prev.pt = epoch 1, best.pt) and one finished run."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("skipvae.data.load_dataset", load_synthetic)
        for seed in (0, 1):
            assert train(smoke(seed=seed, epochs=3), root / f"s{seed}", progress=False, max_epochs=2)["status"] == \
                "paused"
        train(smoke(epochs=1), root / "done", progress=False)
    return root


def copy_run(runs: Path, name: str, dest: Path) -> Path:
    shutil.copytree(runs / name, dest)
    return dest


# ----------------------------------------------------------------------- 1a: another run's checkpoint is refused

def test_every_checkpoint_names_its_run(runs):
    cfg = smoke(seed=0, epochs=3)
    for name in (LAST, PREV, BEST):
        ckpt = load_checkpoint(runs / "s0" / name)
        assert (ckpt["run_key"], ckpt["run_name"]) == (cfg.key(), cfg.run_name()), name


OWNER_CASES = [  # (file copied from the seed-1 run into seed 0's folder)
    LAST,
    BEST,
]


@pytest.mark.parametrize("name", OWNER_CASES)
def test_another_runs_checkpoint_is_refused_in_one_line(name, runs, tmp_path):
    folder = copy_run(runs, "s0", tmp_path / "s0")
    shutil.copy(runs / "s1" / name, folder / name)
    with pytest.raises(ConfigError) as err:
        train(smoke(seed=0, epochs=3), folder, progress=False)
    assert "different config" in str(err.value) and str(folder / name) in str(err.value)
    assert smoke(seed=1).run_name()[:-13] in str(err.value) and "\n" not in str(err.value)
    assert (folder / name).exists()  # another run's file is never deleted


def test_another_runs_best_checkpoint_is_refused_in_a_fresh_folder(runs, tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    shutil.copy(runs / "s1" / BEST, folder / BEST)
    with pytest.raises(ConfigError, match="different config"):
        train(smoke(seed=0, epochs=3), folder, progress=False)
    assert (folder / BEST).exists()


# ----------------------------------------------------------------------------------- 1b: no path leaves its folder

BASE = {"base": {"dataset": "mnist", "profile": "smoke"}, "grid": {"seed": [0]}}
NAME_CASES = ["../../x", "/tmp/absolute", "a/b", "..", ".hidden", "x\\y", "", "a" * 300]


@pytest.mark.parametrize("name", NAME_CASES, ids=repr)
def test_sweep_names_that_leave_the_out_folder_are_refused(name):
    if name == "":  # an empty name falls back to the file's stem
        assert expand_sweep({"name": name, **BASE}, default_name="ok").name == "ok"
        return
    with pytest.raises(ConfigError) as err:
        expand_sweep({"name": name, **BASE})
    assert f"sweep name={name!r}" in str(err.value) and "plain name" in str(err.value)


def test_a_sweep_file_named_by_a_bad_stem_is_refused(tmp_path):
    path = tmp_path / "bad name!.yaml"
    path.write_text(json.dumps(BASE))
    assert main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 2


def record_of(runs: Path, **changes) -> dict:
    from skipvae.config import RunConfig

    record = json.loads((runs / "done" / RECORD).read_text())
    record["config"]["profile"] = "cpu"  # smoke records would be collected into the checkout's runs/smoke-results
    record["name"] = RunConfig.from_dict(record["config"]).run_name()
    for key, value in changes.items():
        if key.startswith("config."):
            record["config"][key[len("config."):]] = value
        else:
            record[key] = value
    return record


COLLECT_CASES = [  # (record changes or a folder, experiment, words of the one-line error)
    (dict(name="../../../evil"), "mnist", ["record name='../../../evil.json'", "plain name"]),
    (dict(name="/tmp/evil"), "mnist", ["record name='/tmp/evil.json'"]),
    (dict(name=smoke(seed=5).run_name()), "mnist", ["is named 'mnist-mlp-vae-z4-l2-s5-", "its config is run"]),
    ({}, "yahoo", ["dataset='mnist'", "--experiment mnist"]),
    ({"config.profile": "nope"}, "mnist", ["unknown profile 'nope'", "smoke, cpu, paper"]),
    ({"config.model": "lm"}, "mnist", ["cannot be collected"]),
    ("missing", "mnist", ["no such folder"]),
    ("empty", "mnist", ["holds no run records"]),
]


@pytest.mark.parametrize("changes,experiment,words", COLLECT_CASES, ids=[str(c[0]) for c in COLLECT_CASES])
def test_collect_refuses_what_does_not_belong_in_the_experiment(changes, experiment, words, runs, tmp_path,
                                                                monkeypatch, capsys):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "deep" / "results"))
    sweep = tmp_path / "sweep"
    if changes == "empty":
        sweep.mkdir()
    elif changes != "missing":
        (sweep / "run").mkdir(parents=True)
        (sweep / "run" / RECORD).write_text(json.dumps(record_of(runs, **changes)))
    assert main(["collect", str(sweep), "--experiment", experiment]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, (word, err)
    written = [p for p in tmp_path.rglob("*.json") if p.parent.name != "run"]
    assert written == []


def test_collect_of_a_good_record_still_works(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    (tmp_path / "sweep" / "run").mkdir(parents=True)
    record = record_of(runs)
    (tmp_path / "sweep" / "run" / RECORD).write_text(json.dumps(record))
    assert main(["collect", str(tmp_path / "sweep"), "--experiment", "mnist"]) == 0
    assert (tmp_path / "results" / "mnist" / "runs" / f"{record['name']}.json").is_file()


# ------------------------------------------------------------------------------------- 1c: non-finite numbers stop

NONFINITE_CASES = [("neg_elbo", math.nan), ("kl", math.inf), ("rec", -math.inf), ("mi", math.nan)]


@pytest.mark.parametrize("key,value", NONFINITE_CASES, ids=[f"{k}={v}" for k, v in NONFINITE_CASES])
def test_a_nonfinite_validation_number_stops_the_run(key, value, tmp_path, monkeypatch):
    real = engine.validate
    monkeypatch.setattr(engine, "validate", lambda *a, **k: real(*a, **k) | {key: value})
    with pytest.raises(TrainingError) as err:
        train(smoke(epochs=2), tmp_path / "r", progress=False)
    assert f"non-finite validation {key}={value}" in str(err.value) and "epoch 1" in str(err.value)
    assert not (tmp_path / "r" / LAST).exists() and not (tmp_path / "r" / BEST).exists()


JSON_CASES = [({"a": math.nan}, "a"), ({"m": {"x": [1.0, math.inf]}}, "m.x.1"), ([0.0, -math.inf], "1")]


@pytest.mark.parametrize("obj,where", JSON_CASES, ids=[w for _, w in JSON_CASES])
def test_json_files_are_strict(obj, where, tmp_path):
    with pytest.raises(DataError) as err:
        atomic_write_json(tmp_path / "x.json", obj)
    assert f"{where} is not a finite number" in str(err.value)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ 2: damaged checkpoints fall back

def flip(offset_of):
    def damage(path: Path):
        data = bytearray(path.read_bytes())
        i = offset_of(bytes(data))
        data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    return damage


def resave(**changes):
    """Rewrite a checkpoint with `changes` (each a function of the loaded checkpoint) and no checksum, as an older
    checkpoint or a consistent but wrong file would be."""
    def damage(path: Path):
        ckpt = torch.load(path, weights_only=True)
        ckpt.pop("digest")
        torch.save(ckpt | {k: change(ckpt) for k, change in changes.items()}, path)
    return damage


DAMAGE_CASES = {  # how last.pt is damaged -> restore falls back to last.prev.pt (epoch 1)
    "flip in the pickle": flip(lambda b: b.index(b"\x80\x02", b.index(b"data.pkl")) + 30),
    "flip at 5%": flip(lambda b: len(b) // 20),
    "flip at 30%": flip(lambda b: len(b) * 3 // 10),
    "flip at 60%": flip(lambda b: len(b) * 6 // 10),
    "flip at 90%": flip(lambda b: len(b) * 9 // 10),
    "zeroed middle": lambda p: p.write_bytes(p.read_bytes()[:5000] + bytes(5000) + p.read_bytes()[10000:]),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:1000]),
    "empty": lambda p: p.write_bytes(b""),
    "a text file": lambda p: p.write_text("not a checkpoint"),
    "a list": lambda p: torch.save([1, 2], p),
    "wrong shapes": resave(model=lambda c: {k: v[:1] for k, v in c["model"].items()}),
    "a dict for a tensor": resave(torch_rng=lambda c: {"dtype": 1}),
    "state of another kind": resave(state=lambda c: {"epoch": 2, "nope": 1}),
    "optimizer of another model": resave(optimizer=lambda c: {"state": {}, "param_groups": []}),
}


def restored(folder: Path, cfg):
    _, model = build(cfg)
    optimizer = make_optimizer(cfg, model)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        state = restore(folder, cfg, model, optimizer, torch.device("cpu"))
    return state, model, err.getvalue()


@pytest.mark.parametrize("damage", DAMAGE_CASES.values(), ids=DAMAGE_CASES.keys())
def test_a_damaged_last_checkpoint_falls_back_to_the_previous_one(damage, runs, tmp_path):
    cfg = smoke(seed=0, epochs=3)
    folder = copy_run(runs, "s0", tmp_path / "s0")
    damage(folder / LAST)
    state, model, err = restored(folder, cfg)
    assert state is not None and state.epoch == 1, err
    assert f"{folder / LAST} is not a" in err and "falling back to last.prev.pt" in err, err
    assert err.count("\n") == 2 and "Traceback" not in err  # the damage, then "resuming from"
    prev = load_checkpoint(runs / "s0" / PREV)
    assert all(torch.equal(v, prev["model"][k]) for k, v in model.state_dict().items())


def test_both_checkpoints_damaged_start_over_from_the_initial_model(runs, tmp_path):
    cfg = smoke(seed=0, epochs=3)
    folder = copy_run(runs, "s0", tmp_path / "s0")
    for name in (LAST, PREV):
        DAMAGE_CASES["state of another kind"](folder / name)
    state, model, err = restored(folder, cfg)
    _, fresh = build(cfg)
    assert state is None and "starting over from epoch 0" in err
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())


def test_a_bit_flip_in_best_checkpoint_is_reported_not_used(runs, tmp_path):
    folder = copy_run(runs, "done", tmp_path / "done")
    DAMAGE_CASES["flip at 60%"](folder / BEST)
    with pytest.raises(DataError, match="do not match the checksum"):
        load_checkpoint(folder / BEST)


DISK_FULL_CASES = {  # writer -> the call that fails with ENOSPC
    "json record": (lambda p: atomic_write_json(p, {"a": 1}), "os.fsync"),
    "bytes": (lambda p: atomic_write_bytes(p, b"abc"), "os.fdopen"),
    "checkpoint": (lambda p: atomic_torch_save({"a": torch.zeros(2)}, p), "torch.save"),
}


@pytest.mark.parametrize("write,where", DISK_FULL_CASES.values(), ids=DISK_FULL_CASES.keys())
def test_a_full_disk_is_one_line_naming_the_folder(write, where, tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    module, name = where.split(".")
    target = skipvae.records.torch if module == "torch" else skipvae.records.os
    monkeypatch.setattr(target, name, full)
    with pytest.raises(DataError) as err:
        write(tmp_path / "out.x")
    assert f"in {tmp_path}: the disk is full" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_a_full_disk_during_training_exits_2_in_one_line(tmp_path, monkeypatch, capsys):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(skipvae.records.torch, "save", full)
    argv = ["train", "--arch", "mlp", "--profile", "smoke", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full" in err and str(tmp_path) in err, err


# ------------------------------------------------------------------------------------- 2: hostile sweep files

LAUGHS = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n"
    for i in range(1, 9))
YAML_CASES = [  # (file content, words of the one-line error)
    (b"base: {dataset: mnist}\ngrid: {seed: [unclosed\n", ["is not valid YAML", "line 3"]),
    (b"grid: !!python/object/apply:os.system ['echo hi']\n", ["is not valid YAML", "python/object/apply"]),
    (b"name: !!binary aGVsbG8=\ngrid: {seed: [0]}\n", ["sweep name="]),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ["not UTF-8 text"]),
    (b"grid: {}\n", ["grid={}", "one run: grid: {seed: [0]}"]),
    (b"base: {dataset: mnist}\n", ["grid=None"]),
    (b"grid: [{}]\n", ["grid=[{}]"]),
    (b"1: 2\ngrid: {seed: [0]}\n", ["keys name, base and grid", "['1', 'grid']"]),
    (b"- just\n- a list\n", ["keys name, base and grid", "got list"]),
    (b"grid: &g {seed: [0], x: *g}\n", ["more than 100000 values"]),
    (b"grid: {seed: &l [0, *l]}\n", ["more than 100000 values"]),
]


@pytest.mark.parametrize("content,words", YAML_CASES, ids=[str(c[:24]) for c, _ in YAML_CASES])
def test_hostile_sweep_files_are_refused_in_one_line(content, words, tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    assert main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and len(err) < 600, err
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize("grid", ["{seed: *a8}", "{seed: [0], lr: *a8}"])
def test_a_billion_laughs_sweep_file_is_refused_at_once(grid, tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS + f"grid: {grid}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    try:
        proc = subprocess.run([sys.executable, "-m", "skipvae", "sweep", str(path), "--dry-run", "--out",
                               str(tmp_path / "out")], capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("a 1 kB sweep file kept the dry run busy for a minute")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[:500]
    assert "more than 100000 values" in proc.stderr or "aliases" in proc.stderr


# ------------------------------------------------------------------------------------------------ 5: small ones

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
@pytest.mark.parametrize("write", [lambda p: atomic_write_json(p, {}), lambda p: atomic_torch_save({}, p)],
                         ids=["json", "torch"])
def test_written_files_respect_the_umask(umask, write, tmp_path):
    old = os.umask(umask)
    try:
        write(tmp_path / "f")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o666 & ~umask


def test_version(capsys):
    from skipvae import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"skipvae {__version__}\n"


# --------------------------------------------------------------------------------------------------- 4: signals

def slow_cli(out: Path, args: list, seconds: float = 1.5) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(HERE / "slow_runner.py"), str(seconds), *args, "--out", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def wait_for(proc: subprocess.Popen, marker: str, times: int = 1) -> list[str]:
    lines = []
    while sum(marker in line for line in lines) < times:
        line = proc.stderr.readline()
        assert line, f"the process ended before {marker!r}: {''.join(lines)}"
        lines.append(line)
    return lines


TRAIN_ARGS = ["train", "--arch", "mlp", "--profile", "smoke", "--epochs", "20", "--no-progress"]
SIGNAL_CASES = [  # (signals sent during the 2nd epoch's validation, exit code, epoch of last.pt, words)
    ([signal.SIGTERM], 143, 2, ["stopped by SIGTERM at the end of epoch 2", "run the same command again to resume"]),
    ([signal.SIGINT], 130, 2, ["stopped by SIGINT at the end of epoch 2", "run the same command again to resume"]),
    ([signal.SIGTERM, signal.SIGTERM], 143, 2, ["stopped by SIGTERM at the end of epoch 2"]),
    ([signal.SIGINT, signal.SIGINT], 130, 1, ["stopped at once (Ctrl-C)", "run the same command again to resume"]),
]


@pytest.mark.parametrize("signals,code,epoch,words", SIGNAL_CASES,
                         ids=["+".join(s.name for s in c[0]) for c in SIGNAL_CASES])
def test_a_signal_stops_training_at_the_next_safe_point(signals, code, epoch, words, tmp_path):
    proc = slow_cli(tmp_path, TRAIN_ARGS)
    lines = wait_for(proc, "validating", times=2)
    for signum in signals:
        proc.send_signal(signum)
        time.sleep(0.3)
    out, err = proc.communicate(timeout=120)
    err = "".join(lines) + err
    assert proc.returncode == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    for word in words:
        assert word in err, (word, err)
    (folder,) = tmp_path.iterdir()
    assert load_checkpoint(folder / LAST, keys=engine.CHECKPOINT_KEYS)["state"]["epoch"] == epoch
    assert (folder / engine.LOG).read_text().count(" epoch ") == epoch  # one log line per epoch


def test_killing_the_sweep_driver_stops_its_workers_and_a_rerun_resumes(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(json.dumps({"name": "t", "base": {"dataset": "mnist", "arch": "mlp", "profile": "smoke",
                                                       "epochs": 8}, "grid": {"seed": [0, 1]}}))
    driver = slow_cli(tmp_path / "runs", ["sweep", str(sweep), "--jobs", "2", "--threads-per-run", "1"])
    lines = wait_for(driver, "validating", times=2)
    workers = {int(line.split()[2]) for line in lines if "validating" in line}
    driver.kill()
    driver.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.5)
    assert not any(alive(pid) for pid in workers), "the workers outlived their driver"
    folders = [f for f in (tmp_path / "runs" / "t").iterdir() if (f / LAST).exists()]
    assert folders  # each run that had started an epoch stopped at its end, last.pt written
    done = {f: load_checkpoint(f / LAST, keys=engine.CHECKPOINT_KEYS)["state"]["epoch"] for f in folders}
    from skipvae.sweep import run_sweep

    rows = run_sweep(sweep, out=tmp_path / "runs", time_budget_s=None)  # the rerun resumes each from its last.pt
    assert all(row["finished"] for row in rows)
    for folder, epoch in done.items():
        log = (folder / engine.LOG).read_text().splitlines()
        epochs = [int(line.split(" epoch ")[1].split("/")[0]) for line in log]
        assert epochs == list(range(1, epoch + 1)) + list(range(epoch + 1, 9)), (epoch, epochs)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie of a dead parent is reaped by init; count it as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    return True


@pytest.mark.parametrize("flags", [[], ["--no-progress"]], ids=["progress bar", "no progress"])
def test_stdout_is_the_result_and_each_epoch_logs_one_line(flags, tmp_path, capsys):
    argv = ["train", "--arch", "mlp", "--profile", "smoke", "--epochs", "2", "--n-train", "50", "--out", str(tmp_path)]
    assert main(argv + flags) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "finished"  # nothing but the result on stdout
    lines = [line for line in captured.err.splitlines() if " epoch " in line]
    assert [line.split(" epoch ")[1][:4] for line in lines] == ["1/2:", "2/2:"], captured.err
    assert all("updates" in line and "train loss" in line and line.endswith("s") for line in lines)
    (folder,) = tmp_path.iterdir()
    assert len((folder / engine.LOG).read_text().splitlines()) == 2


SWEEP_SIGNAL_CASES = [  # (how the signal is sent, exit code): Ctrl-C reaches the whole process group
    ("Ctrl-C", 130),
    ("SIGTERM to the driver", 143),
]


@pytest.mark.parametrize("how,code", SWEEP_SIGNAL_CASES, ids=[c[0] for c in SWEEP_SIGNAL_CASES])
def test_a_signal_stops_a_parallel_sweep_at_checkpoints(how, code, tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(json.dumps({"name": "t", "base": {"dataset": "mnist", "arch": "mlp", "profile": "smoke",
                                                       "epochs": 20}, "grid": {"seed": [0, 1, 2]}}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)]), "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, str(HERE / "slow_runner.py"), "1.5", "sweep", str(sweep), "--jobs", "2",
                               "--threads-per-run", "1", "--out", str(tmp_path / "runs")], stderr=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    lines = wait_for(driver, "validating", times=3)
    if how == "Ctrl-C":
        os.killpg(driver.pid, signal.SIGINT)
    else:
        driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=120)
    err = "".join(lines) + err
    assert driver.returncode == code, err
    assert "Traceback" not in err and "run the same command again to resume" in err, err
    folders = list((tmp_path / "runs" / "t").iterdir())
    assert len(folders) <= 2 and any((f / LAST).exists() for f in folders)  # the third run never started


# ------------------------------------------------------------------------ the book's table of the cases above

def test_every_reliability_case_names_a_test_and_a_table_that_exist():
    """skipvae.reliability_cases (the book's table) names real tests and tables, and describes every case table of
    this file."""
    from skipvae import reliability_cases as rc

    for case in rc.CASES:
        file, name = case.test.split("::")
        assert case.area in rc.AREAS and name in rc.module_functions(HERE / file), case
        assert case.table is None or rc.module_tables(HERE / file).get(case.table, 0) >= 1, case
    tables = {name for name in rc.module_tables(HERE / "test_reliability.py") if name.endswith("_CASES")}
    described = {case.table for case in rc.CASES if case.test.startswith("test_reliability.py::")}
    assert tables <= described, tables - described
    rows = rc.table_rows(HERE)
    assert [row["area"] for row in rows] == sorted((row["area"] for row in rows), key=rc.AREAS.index)
    assert any(row["checked by"] == f"test_a_damaged_last_checkpoint_falls_back_to_the_previous_one "
                                    f"({len(DAMAGE_CASES)} cases)" for row in rows)
