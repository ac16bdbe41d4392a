"""The sweep runner: expansion, validation before running, pieces, and submitit's local executor."""

import json
import os
from pathlib import Path

import pytest
import torch

from skipvae.errors import ConfigError
from skipvae.sweep import expand_sweep, load_sweep, run_sweep
from skipvae.train import RECORD

pytestmark = pytest.mark.usefixtures("synthetic_data")  # logic, not the real files

SMOKE = {"name": "t", "base": {"dataset": "mnist", "profile": "smoke", "n_train": 50, "n_valid": 25, "n_test": 25,
                               "epochs": 2},
         "grid": {"model": ["vae", "skip-vae"], "seed": [0]}}


def write(tmp_path, spec):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_expand_is_cartesian_and_deduplicated():
    spec = {"base": {"dataset": "mnist", "profile": "smoke"},
            "grid": {"model": ["vae", "skip-vae", "vae"], "seed": [0, 1], "latent_dim": [2, 4, 8]}}
    sweep = expand_sweep(spec)
    assert len(sweep.configs) == 2 * 2 * 3
    assert {(c.model, c.seed, c.latent_dim) for c in sweep.configs} == \
        {(m, s, d) for m in ("vae", "skip-vae") for s in (0, 1) for d in (2, 4, 8)}


def test_a_list_of_grids_is_the_union_of_their_products_in_order():
    spec = {"base": {"dataset": "mnist", "profile": "smoke"},
            "grid": [{"seed": [0, 1], "dec_layers": [1, 3]}, {"seed": [0], "dec_layers": [2, 3]}]}
    got = [(c.seed, c.dec_layers) for c in expand_sweep(spec).configs]
    assert got == [(0, 1), (0, 3), (1, 1), (1, 3), (0, 2)]  # (0, 3) again is the same run: kept once


@pytest.mark.parametrize("spec,match", [
    ({"grid": {"model": ["vea"]}}, "unknown model 'vea'"),
    ({"grid": [{"seed": [0]}, ["seed"]]}, "list of such mappings"),
    ({"grid": "seed"}, "list of such mappings"),
    ({"grid": {"latent_dim": [4, 0]}}, "latent_dim=0 is impossible"),
    ({"grid": {"seed": []}}, "non-empty list"),
    ({"runs": []}, "keys name, base and grid"),
])
def test_bad_sweeps_fail_before_anything_runs(tmp_path, spec, match):
    with pytest.raises(ConfigError, match=match):
        run_sweep(write(tmp_path, spec), out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_missing_or_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no sweep file"):
        load_sweep(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sweep(bad)


def test_pieces_give_the_uninterrupted_record(tmp_path):
    path = write(tmp_path, SMOKE)
    run_sweep(path, out=tmp_path / "whole", time_budget_s=None)
    run_sweep(path, out=tmp_path / "pieces", max_epochs=1)  # every run cut into 2 pieces
    for cfg in load_sweep(path).configs:
        a = json.loads((tmp_path / "whole" / "t" / cfg.run_name() / RECORD).read_text())
        b = json.loads((tmp_path / "pieces" / "t" / cfg.run_name() / RECORD).read_text())
        assert a["metrics"]["neg_elbo"] == b["metrics"]["neg_elbo"] and a["metrics"]["nll"] == b["metrics"]["nll"]
        assert [h["val_neg_elbo"] for h in a["history"]] == [h["val_neg_elbo"] for h in b["history"]]
    rows = run_sweep(path, out=tmp_path / "pieces", dry_run=True)
    assert all(r["finished"] for r in rows)


def jobs_in_other_processes(monkeypatch, piece):
    """submitit's jobs run in other processes: their body (`piece`, from tests/synthetic.py) loads the synthetic
    data itself, on one thread."""
    import skipvae.sweep
    import synthetic

    monkeypatch.setattr(skipvae.sweep, "run_piece", piece)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(synthetic.__file__).parent),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_a_job_array_requeues_its_pieces_reports_a_failure_and_a_rerun_resumes(tmp_path, monkeypatch, capsys):
    """Issue 28, end to end on submitit's LocalExecutor: three runs as one job array, each cut into two pieces
    (max_epochs=1): the first piece stops at its budget and is requeued by submitit's checkpointing; seed 1's
    second piece fails, which is reported in one line while seeds 0 and 2 finish; a rerun skips those two and
    resumes seed 1 from its last.pt."""
    import synthetic

    from skipvae.sweep import JOBS

    jobs_in_other_processes(monkeypatch, synthetic.run_piece_failing_on_request)
    monkeypatch.setenv(synthetic.FAIL_SEED, "1")
    path = write(tmp_path, dict(SMOKE, base=dict(SMOKE["base"], arch="mlp"), grid={"seed": [0, 1, 2]}))
    names = [cfg.run_name() for cfg in load_sweep(path).configs]
    rows = run_sweep(path, executor="submitit-local", out=tmp_path / "runs", max_epochs=1, poll_s=0.5)
    out, err = capsys.readouterr()
    assert [r["finished"] for r in rows] == [True, False, True]
    assert rows[1]["error"] == "TrainingError: injected failure of seed 1 (tests)", rows
    jobs = json.loads((tmp_path / "runs" / "t" / "_submitit" / JOBS).read_text())
    log = tmp_path / "runs" / "t" / "_submitit" / f"{jobs[names[1]]}_0_log.err"
    assert f"failed {names[1]}: TrainingError: injected failure of seed 1 (tests); its log: {log}\n" in err
    assert rows[1]["log"] == str(log) and "injected failure of seed 1" in log.read_text()
    assert f"finished {names[0]}" in out and f"finished {names[2]}" in out
    assert "submitted 3 run(s) as a job array" in out
    for name in names:  # every job was requeued once, by submitit, when its first piece stopped
        log = (tmp_path / "runs" / "t" / "_submitit" / f"{jobs[name]}_0_log.err").read_text()
        assert log.count("Caught signal SIGUSR2") == 1 and log.count(" epoch 1/2:") == 1, log[-2000:]

    monkeypatch.delenv(synthetic.FAIL_SEED)
    rows = run_sweep(path, executor="submitit-local", out=tmp_path / "runs", max_epochs=1, poll_s=0.5)
    assert "3 runs, 2 finished, 1 to run" in capsys.readouterr().out
    assert all(r["finished"] for r in rows) and all(set(r) == {"run", "finished"} for r in rows)
    log = (tmp_path / "runs" / "t" / names[1] / "train.log").read_text()
    assert [line.split(" epoch ")[1][:3] for line in log.splitlines()] == ["1/2", "2/2"]  # resumed, not restarted


def test_a_paused_job_is_resubmitted_as_the_same_call():
    """checkpoint(): submitit requeues the same callable with the same arguments; the run resumes from last.pt."""
    from skipvae.sweep import PieceJob

    job = PieceJob(print)
    delayed = job.checkpoint({"seed": 0}, "runs/t/x", 3600.0, None, None)
    assert delayed.function is job and delayed.args == ({"seed": 0}, "runs/t/x", 3600.0, None, None)


def test_a_paused_piece_outside_a_job_just_returns():
    from skipvae.sweep import PieceJob

    paused = {"status": "paused", "epochs_completed": 1, "run_dir": "x"}
    assert PieceJob(lambda *a: paused)({}, "x", None) == paused


SLURM_TIMES = [("2-00:00:00", 2880), ("1-12", 2160), ("1-00:30", 1470), ("4:00:00", 240), ("30:00", 30),
               ("45", 45), ("infinite", None), ("UNLIMITED", None), ("n/a", None)]


@pytest.mark.parametrize("text,minutes", SLURM_TIMES, ids=[t for t, _ in SLURM_TIMES])
def test_slurm_time_limits(text, minutes):
    from skipvae.sweep import slurm_minutes

    assert slurm_minutes(text) == minutes


PLAN_CASES = [  # (executor, --piece-seconds, --slurm, sinfo lines) -> (piece s, job minutes, source)
    ("slurm", None, {}, ["gpu* 2-00:00:00", "cpu 4:00:00"], (2880 * 60 * 0.9, 2880, "partition (default)")),
    ("slurm", None, {"slurm_partition": "cpu"}, ["cpu 4:00:00"], (240 * 60 * 0.9, 240, "partition cpu")),
    ("slurm", None, {"timeout_min": "60"}, ["gpu* 2-00:00:00"], (3600 - 420, 60, "--slurm timeout_min")),
    ("slurm", None, {}, [], (240 * 60 * 0.9, 240, "the default")),
    ("slurm", None, {}, ["gpu* infinite"], (240 * 60 * 0.9, 240, "the default")),
    ("slurm", 3600.0, {}, [], (3600, 67, "--piece-seconds")),
    ("slurm", 3600.0, {"timeout_min": "120"}, [], (3600, 120, "--slurm timeout_min")),
    ("submitit-local", None, {}, ["gpu* 30:00"], (240 * 60 * 0.9, 240, "the default")),
]


@pytest.mark.parametrize("executor,piece,slurm,sinfo,expected", PLAN_CASES)
def test_a_slurm_piece_is_its_time_limit_less_a_margin(executor, piece, slurm, sinfo, expected, monkeypatch):
    import skipvae.sweep

    monkeypatch.setattr(skipvae.sweep, "sinfo_limits",
                        lambda partition: [s for s in sinfo if partition is None or s.startswith(partition + " ")])
    piece_s, minutes, source = skipvae.sweep.job_plan(executor, piece, slurm)
    assert (piece_s, minutes) == pytest.approx(expected[:2]) and expected[2] in source


PLAN_REFUSALS = [
    (3600.0, {"timeout_min": "60"}, ["piece_seconds=3600 is impossible", "60 min - 120 s"]),
    (7200.0, {"slurm_partition": "short"}, ["piece_seconds=7200 is impossible", "partition short (60 min)"]),
    (None, {"timeout_min": "soon"}, ["--slurm timeout_min='soon' is impossible", "minutes"]),
    (None, {"timeout_min": "-5"}, ["--slurm timeout_min=-5 is impossible"]),
]


@pytest.mark.parametrize("piece,slurm,words", PLAN_REFUSALS, ids=[str(c[1]) for c in PLAN_REFUSALS])
def test_impossible_job_plans_are_refused_in_one_line(piece, slurm, words, monkeypatch):
    import skipvae.sweep

    monkeypatch.setattr(skipvae.sweep, "sinfo_limits", lambda partition: ["short 1:00:00"])
    with pytest.raises(ConfigError) as err:
        skipvae.sweep.job_plan("slurm", piece, slurm)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


FAILURES = [
    ("Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent call last):\n"
     '  File "x.py", line 1, in f\nskipvae.errors.TrainingError: non-finite loss at epoch 3\n\n'
     "----------------------\nYou can check full logs with 'job.stderr(0)'", "TrainingError: non-finite loss at epoch 3"),
    ("Job (task=0) failed during processing with trace:\n----------------------\nTraceback:\nKeyError: 'x'\n"
     "----------------------\n...", "KeyError: 'x'"),
]


@pytest.mark.parametrize("text,line", FAILURES, ids=["skipvae error", "builtin"])
def test_a_failed_job_is_one_line(text, line):
    from skipvae.sweep import failure_line

    assert failure_line(text) == line


def test_local_pieces_have_no_limit_by_default(tmp_path, monkeypatch):
    import skipvae.sweep

    budgets = []
    monkeypatch.setattr(skipvae.sweep, "run_to_completion", lambda cfg, d, budget, *a: budgets.append(budget) or 1)
    run_sweep(write(tmp_path, SMOKE), out=tmp_path / "runs")
    assert budgets == [None, None]


def test_a_sequential_sweep_runs_on_the_threads_it_is_given(tmp_path, monkeypatch):
    """--jobs 1 --threads-per-run 1: the runs of this process use one thread (two such sweeps share 2 cores)."""
    import torch

    import skipvae.sweep

    seen = []
    monkeypatch.setattr(skipvae.sweep, "run_to_completion", lambda *a, **k: seen.append(torch.get_num_threads()) or 1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run_sweep(write(tmp_path, SMOKE), out=tmp_path / "runs", time_budget_s=None, threads_per_run=1)
    finally:
        torch.set_num_threads(threads)
    assert seen and set(seen) == {1}


def test_parallel_jobs_give_the_records_of_one_job(tmp_path, monkeypatch):
    """--jobs 2 (two runs at once, spawned processes, 1 thread each) ends with the records of --jobs 1."""
    import torch

    import skipvae.sweep
    import synthetic

    # the workers are spawned processes: their job body loads the synthetic data itself
    monkeypatch.setattr(skipvae.sweep, "_run_local_job", synthetic.run_local_job_on_synthetic_data)

    path = write(tmp_path, dict(SMOKE, base=dict(SMOKE["base"], epochs=1)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count of each parallel run
    try:
        run_sweep(path, out=tmp_path / "one", time_budget_s=None)
    finally:
        torch.set_num_threads(threads)
    run_sweep(path, out=tmp_path / "two", time_budget_s=None, jobs=2, threads_per_run=1)
    for cfg in load_sweep(path).configs:
        a = json.loads((tmp_path / "one" / "t" / cfg.run_name() / RECORD).read_text())
        b = json.loads((tmp_path / "two" / "t" / cfg.run_name() / RECORD).read_text())
        for record in (a, b):
            for key in ("provenance", "train_time_s", "eval_time_s", "wall_time_s", "train_examples_per_s"):
                record.pop(key)
            record["metrics"].pop("timing")
            for h in record["history"]:
                h.pop("time_s"), h.pop("examples_per_s")
        assert a == b


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="jobs=0"):
        run_sweep(write(tmp_path, SMOKE), out=tmp_path / "runs", jobs=0)


def test_a_rerun_leaves_alone_the_runs_whose_job_is_still_active(tmp_path, monkeypatch, capsys):
    """A driver started again while an earlier one's jobs are queued or running reports them and submits none."""
    import skipvae.sweep
    from skipvae.sweep import JOBS

    path = write(tmp_path, SMOKE)
    names = [cfg.run_name() for cfg in load_sweep(path).configs]
    (tmp_path / "runs" / "t" / "_submitit").mkdir(parents=True)
    (tmp_path / "runs" / "t" / "_submitit" / JOBS).write_text(json.dumps({n: f"77_{i}" for i, n in enumerate(names)}))
    monkeypatch.setattr(skipvae.sweep, "job_active", lambda kind, folder, job_id: True)
    monkeypatch.setattr(skipvae.sweep, "make_executor", lambda *a: pytest.fail("resubmitted an active run"))
    rows = run_sweep(path, executor="slurm", out=tmp_path / "runs")
    assert rows == [{"run": n, "finished": False, "job": f"77_{i}"} for i, n in enumerate(names)]
    assert capsys.readouterr().out.count("still queued or running as job 77_") == 2


SUMMARIES = [  # the rows of run_sweep -> the CLI's last line (None: exit 0)
    ([{"run": "a", "finished": True}, {"run": "b", "finished": False, "error": "TrainingError: x"}],
     "1 of 2 runs failed: b; fix the cause and run the same command again: the finished runs are skipped, the "
     "others resume from their last.pt."),
    ([{"run": "a", "finished": False, "error": "E: x", "log": "runs/t/a/error.log"},
      {"run": "b", "finished": False, "error": "E: y", "log": "runs/t/_submitit/7_1_log.err"},
      {"run": "c", "finished": False, "paused_at": 3}, {"run": "d", "finished": False, "job": "7_3"}],
     "2 of 4 runs failed: a (runs/t/a/error.log), b (runs/t/_submitit/7_1_log.err); 1 of 4 runs paused: c (at "
     "epoch 3); fix the cause and run the same command again: the finished runs are skipped, the others resume "
     "from their last.pt."),
    ([{"run": "a", "finished": True}, {"run": "c", "finished": False, "paused_at": 0}],
     "1 of 2 runs paused: c (at epoch 0); run the same command again: the finished runs are skipped, the others "
     "resume from their last.pt."),
    ([{"run": "a", "finished": True}, {"run": "d", "finished": False, "job": "7_3"}], None),
]


@pytest.mark.parametrize("rows,line", SUMMARIES, ids=["failed", "failed and paused", "paused", "still running"])
def test_a_sweep_with_failed_or_paused_runs_exits_1_naming_them_and_saying_how_to_resume(rows, line, tmp_path,
                                                                                         monkeypatch, capsys):
    import skipvae.sweep
    from skipvae.cli import main

    monkeypatch.setattr(skipvae.sweep, "run_sweep", lambda *a, **k: rows)
    code = main(["sweep", "s.yaml", "--executor", "slurm", "--out", str(tmp_path)])
    assert (code, capsys.readouterr().err) == ((1, f"skipvae: {line}\n") if line else (0, ""))


class FakeJob:
    """A done job of a submitit array: `result()` returns `out`, or raises `error`."""

    def __init__(self, job_id, out=None, error=None):
        self.job_id, self.out, self.error, self.state = job_id, out, error, "COMPLETED"
        self.paths = type("Paths", (), {"stderr": Path(f"_submitit/{job_id}_log.err")})()

    def done(self):
        return True

    def result(self):
        if self.error:
            raise self.error
        return self.out


def test_the_driver_reports_each_job_as_finished_paused_at_its_epoch_or_failed(tmp_path, monkeypatch, capsys):
    """A job whose last piece stopped at its budget without being requeued (submitit: its requeues spent; run_piece
    outside a job: 'paused') is paused at the epoch of its last.pt, not finished; a failed job is one line with its log; a job that left no result has failed too."""
    import submitit

    import skipvae.sweep

    failure = ("Job (task=0) failed during processing with trace:\n----------------------\nTraceback:\n"
               "skipvae.errors.TrainingError: boom\n----------------------\n")
    spent = ("Job (task=0) failed during processing with trace:\n----------------------\nTraceback:\n"
             "submitit.core.utils.UncompletedJobError: Job not requeued because: timed-out too many times.\n")
    outcomes = [dict(out={"status": "finished", "epochs_completed": 2}), dict(out={"status": "paused",
                "epochs_completed": 1}), dict(error=submitit.core.utils.FailedJobError(failure)),
                dict(error=submitit.core.utils.UncompletedJobError("no output")),
                dict(error=submitit.core.utils.FailedJobError(spent))]  # requeues spent: what submitit does

    class Executor:
        def map_array(self, fn, *args):
            return [FakeJob(f"7_{i}", **o) for i, o in enumerate(outcomes)]

    monkeypatch.setattr(skipvae.sweep, "sinfo_limits", lambda partition: [])
    monkeypatch.setattr(skipvae.sweep, "make_executor", lambda *a: Executor())
    path = write(tmp_path, dict(SMOKE, grid={"seed": [0, 1, 2, 3, 4]}))
    configs = load_sweep(path).configs
    names = [cfg.run_name() for cfg in configs]
    run_dir = tmp_path / "runs" / load_sweep(path).name / names[4]
    run_dir.mkdir(parents=True)  # the last.pt its pieces left: epoch 1
    torch.save({"config": configs[4].to_dict(), "state": {"epoch": 1}}, run_dir / "last.pt")
    rows = run_sweep(path, executor="slurm", out=tmp_path / "runs", poll_s=0)
    out, err = capsys.readouterr()
    assert f"finished {names[0]}\n" in out and names[1] not in out
    assert err.splitlines() == [
        f"paused {names[1]} at epoch 1 of 2: its job ended without being requeued",
        f"failed {names[2]}: TrainingError: boom; its log: _submitit/7_2_log.err",
        f"failed {names[3]}: job 7_3 ended without a result (state COMPLETED); its log: _submitit/7_3_log.err",
        f"paused {names[4]} at epoch 1 of 2: its job ended without being requeued"]
    assert rows[1:] == [{"run": names[1], "finished": False, "paused_at": 1},
                        {"run": names[2], "finished": False, "error": "TrainingError: boom",
                         "log": "_submitit/7_2_log.err"},
                        {"run": names[3], "finished": False, "error": "job 7_3 ended without a result (state "
                                                                      "COMPLETED)", "log": "_submitit/7_3_log.err"},
                        {"run": names[4], "finished": False, "paused_at": 1}]


def test_slurm_where_there_is_none_is_one_line(tmp_path, monkeypatch):
    import shutil

    from skipvae.sweep import make_executor

    if shutil.which("srun"):
        pytest.skip("this machine has Slurm")
    with pytest.raises(ConfigError, match="executor='slurm' is impossible here: .*srun.*--executor local"):
        make_executor("slurm", tmp_path / "_submitit", 240.0)


def test_a_sweep_on_a_fresh_machine_skips_the_runs_whose_records_are_committed(tmp_path, monkeypatch):
    import json

    from skipvae.config import make_config
    from skipvae.sweep import is_finished

    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    cfg = make_config("mnist", "vae", "cpu", arch="mlp")
    run_dir = tmp_path / "runs" / "sweep" / cfg.run_name()
    assert not is_finished(cfg, run_dir)
    committed = tmp_path / "results" / "mnist" / "runs" / f"{cfg.run_name()}.json"
    committed.parent.mkdir(parents=True)
    committed.write_text(json.dumps({"status": "finished", "name": cfg.run_name(), "config": cfg.to_dict(),
                                     "metrics": {}}))
    assert is_finished(cfg, run_dir) and not run_dir.exists()  # nothing to retrain, nothing written
    other = make_config("mnist", "vae", "cpu", arch="mlp", seed=1)
    assert not is_finished(other, tmp_path / "runs" / "sweep" / other.run_name())
