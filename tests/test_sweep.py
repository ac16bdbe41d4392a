"""The sweep runner: expansion, validation before running, pieces, and submitit's local executor."""

import json
import os
from pathlib import Path

import pytest

from skipvae.errors import ConfigError
from skipvae.sweep import expand_sweep, is_finished, load_sweep, run_sweep
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


def test_submitit_local_executor(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    import skipvae.sweep
    import synthetic

    # the jobs run in other processes: their body loads the synthetic data itself
    monkeypatch.setattr(skipvae.sweep, "run_piece", synthetic.run_piece_on_synthetic_data)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(synthetic.__file__).parent),
                                                      os.environ.get("PYTHONPATH", "")]))
    spec = dict(SMOKE, grid={"model": ["skip-vae"], "seed": [0]})
    path = write(tmp_path, spec)
    rows = run_sweep(path, executor="submitit-local", out=tmp_path / "runs", max_epochs=1, poll_s=0.5)
    assert rows == [{"run": load_sweep(path).configs[0].run_name(), "finished": True}]
    cfg = load_sweep(path).configs[0]
    assert is_finished(cfg, tmp_path / "runs" / "t" / cfg.run_name())


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
