"""The cpu budget table: planned sweeps against finished records (skipvae.report.budget)."""

import json

import pandas as pd
import pytest
import yaml

from skipvae.config import make_config
from skipvae.errors import ConfigError
from skipvae.records import RunRecord
from skipvae.report import budget


def finished(results, experiment, cfg, wall_s):
    path = results / experiment / "runs" / f"{cfg.run_name()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(RunRecord(status="finished", name=cfg.run_name(), config=cfg.to_dict(), metrics={},
                                         wall_time_s=wall_s).to_dict()))


@pytest.fixture
def plan(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    base = {"dataset": "mnist", "arch": "mlp", "profile": "cpu"}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"name": "a", "base": base, "grid": {"seed": [0, 1]}}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"name": "b", "base": base, "grid": {"seed": [1, 2, 3]}}))
    rows = [{"what": "A", "sweep": "a.yaml", "experiment": "mnist"},
            {"what": "B", "sweep": "b.yaml", "experiment": "depth"},
            {"what": "C", "sweep": "c.yaml", "experiment": "yahoo"}]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"target_core_hours": 15, "lanes": 2, "rows": rows}))
    return budget.load_plan(tmp_path / "plan.yaml")


def test_budget_counts_shared_runs_once_and_measures_from_the_records(plan, tmp_path):
    cfg = lambda seed: make_config("mnist", "vae", "cpu", arch="mlp", seed=seed)  # noqa: E731
    finished(tmp_path / "results", "mnist", cfg(0), 600)
    finished(tmp_path / "results", "mnist", cfg(1), 1200)
    finished(tmp_path / "results", "latent_dim", cfg(2), 300)  # found in another experiment's folder
    df = budget.budget_table(plan).set_index("what")
    assert (df.loc["A", "runs"], df.loc["A", "done"], df.loc["A", "min/run"]) == (2, 2, 15.0)
    assert df.loc["A", "planned core-h"] == pytest.approx(0.5) and df.loc["A", "spent core-h"] == pytest.approx(0.5)
    # seed 1 belongs to row A; of B's own runs (2, 3) one has finished (5 min); seed 3 is estimated by the median
    # of the finished runs of its shape (seeds 0, 1, 2: 10, 20, 5 min): 5 + 10 min planned
    assert (df.loc["B", "runs"], df.loc["B", "done"], df.loc["B", "min/run"]) == (2, 1, 7.5)
    assert df.loc["B", "planned core-h"] == pytest.approx(15 / 60)
    assert pd.isna(df.loc["C", "runs"])  # no sweep file: planned, not sized
    assert df.loc["C", "spent core-h"] == 0


def test_runs_to_go_are_estimated_by_their_shape_on_another_dataset_else_by_their_row(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    base = {"dataset": "omniglot", "arch": "mlp", "profile": "cpu"}
    grid = {"seed": [0, 1], "dec_layers": [2, 3]}
    (tmp_path / "o.yaml").write_text(yaml.safe_dump({"name": "o", "base": base, "grid": grid}))
    rows = [{"what": "O", "sweep": "o.yaml", "experiment": "omniglot"}]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"target_core_hours": 15, "lanes": 2, "rows": rows}))
    plan = budget.load_plan(tmp_path / "plan.yaml")
    omniglot = lambda seed, layers: make_config("omniglot", "vae", "cpu", arch="mlp", seed=seed, dec_layers=layers)  # noqa: E731
    finished(tmp_path / "results", "mnist", make_config("mnist", "vae", "cpu", arch="mlp", seed=5, dec_layers=2), 120)
    assert pd.isna(budget.budget_table(plan).set_index("what").loc["O", "planned core-h"])  # 3 layers: no estimate
    finished(tmp_path / "results", "omniglot", omniglot(0, 3), 600)
    df = budget.budget_table(plan).set_index("what")
    # done: 10 min (seed 0, 3 layers); by shape: 2 min (MNIST's 2 layers) for each seed at 2 layers; by row: 10 min
    assert df.loc["O", "done"] == 1 and df.loc["O", "planned core-h"] == pytest.approx((10 + 2 + 2 + 10) / 60)
    assert df.loc["O", "spent core-h"] == pytest.approx(10 / 60)


def test_run_minutes_fall_back_to_train_plus_eval_time():
    assert budget.run_minutes({"wall_time_s": 120, "train_time_s": 1, "eval_time_s": 1}) == 2
    assert budget.run_minutes({"train_time_s": 90, "eval_time_s": 30}) == 2
    assert budget.run_minutes({"train_time_s": 90}) is None


def test_a_record_of_another_config_is_not_counted(plan, tmp_path):
    other = make_config("mnist", "vae", "cpu", arch="mlp", seed=0, epochs=1)
    planned = make_config("mnist", "vae", "cpu", arch="mlp", seed=0)
    path = tmp_path / "results" / "mnist" / "runs" / f"{planned.run_name()}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"status": "finished", "config": other.to_dict(), "wall_time_s": 60}))
    df = budget.budget_table(plan).set_index("what")
    assert df.loc["A", "done"] == 0 and df["planned core-h"].isna()["A"]


def test_the_committed_plan_expands():
    plan = budget.load_plan()
    sized = [configs for _, configs in budget.row_runs(plan) if configs is not None]
    assert sized and all(all(c.profile == "cpu" for c in configs) for configs in sized)


def bench(path, arch, precision, cost):
    path.mkdir(parents=True, exist_ok=True)
    load = {"name": f"{arch} sa-vae K=5", "precision": precision, "svi_step_cost_in_vae_steps": cost}
    (path / f"{arch}-{precision}.json").write_text(json.dumps({"workloads": [load, {"name": "x", "precision": "fp32"}]}))


def test_a_semi_amortized_run_is_estimated_from_its_vae_and_the_measured_svi_step_cost(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    bench(tmp_path / "results" / "bench", "mlp", "fp32", 2.0)
    bench(tmp_path / "results" / "bench", "mlp", "bf16", 9.0)  # another precision: not used by the fp32 MLP
    base = {"dataset": "mnist", "arch": "mlp", "profile": "cpu", "seed": 0}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "s", "base": base,
                                                     "grid": {"model": ["sa-vae", "skip-sa-vae"]}}))
    rows = [{"what": "S", "sweep": "s.yaml", "experiment": "mnist", "not_run": "too dear"}]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"target_core_hours": 15, "lanes": 2, "rows": rows}))
    plan = budget.load_plan(tmp_path / "plan.yaml")
    assert pd.isna(budget.budget_table(plan).set_index("what").loc["S", "planned core-h"])  # no VAE run yet
    finished(tmp_path / "results", "mnist", make_config("mnist", "vae", "cpu", arch="mlp", seed=3), 600)
    finished(tmp_path / "results", "mnist", make_config("mnist", "skip-vae", "cpu", arch="mlp", seed=3), 1200)
    df = budget.budget_table(plan).set_index("what")
    k = make_config("mnist", "sa-vae", "cpu", arch="mlp").svi_steps
    # 10 and 20 min, each times 1 + K c with c = 2 VAE steps per SVI step (fp32, the MLP's precision)
    assert df.loc["S", "planned core-h"] == pytest.approx((10 + 20) * (1 + 2 * k) / 60)
    assert (df.loc["S", "done"], df.loc["S", "spent core-h"], df.loc["S", "not run"]) == (0, 0, "too dear")


def test_svi_step_costs_are_medians_by_decoder_and_precision(tmp_path):
    (tmp_path / "bench").mkdir()
    for sub, cost in (("a", 3.0), ("b", 4.0)):
        bench(tmp_path / sub, "pixelcnn", "bf16", cost)
        (tmp_path / sub / "pixelcnn-bf16.json").rename(tmp_path / "bench" / f"{sub}.json")
    assert budget.svi_step_costs(tmp_path) == {("pixelcnn", "bf16"): 3.5}


def partial(results, experiment, cfg, epoch_seconds):
    path = results / experiment / "partial" / f"{cfg.run_name()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    history = [{"epoch": i + 1, "time_s": t} for i, t in enumerate(epoch_seconds)]
    path.write_text(json.dumps({"status": "unfinished", "name": cfg.run_name(), "config": cfg.to_dict(),
                                "epochs_completed": len(history), "planned_epochs": cfg.epochs,
                                "train_time_s": sum(epoch_seconds), "history": history}))


def test_runs_still_training_are_projected_from_their_median_epoch_and_count_as_spent(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    base = {"dataset": "mnist", "arch": "mlp", "profile": "cpu", "epochs": 10}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "p", "base": base,
                                                     "grid": {"seed": [0, 1], "dec_layers": [2, 3]}}))
    rows = [{"what": "P", "sweep": "p.yaml", "experiment": "mnist"}]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"title": "T", "target_core_hours": 1, "lanes": 2,
                                                        "rows": rows}))
    cfg = lambda seed, layers: make_config("mnist", "vae", "cpu", arch="mlp", epochs=10, seed=seed,  # noqa: E731
                                           dec_layers=layers)
    partial(tmp_path / "results", "mnist", cfg(0, 2), [90, 60, 61, 59])  # median 60.5 s: 10 epochs, 605 s
    df = budget.budget_table(budget.load_plan(tmp_path / "plan.yaml")).set_index("what")
    assert (df.loc["P", "done"], df.loc["P", "training"]) == (0, 1)
    assert df.loc["P", "spent core-h"] == pytest.approx(270 / 3600)
    # seed 0: its own projection; seed 1 at 2 layers: its shape's projection; 3 layers: the row's projection
    assert df.loc["P", "planned core-h"] == pytest.approx(4 * 605 / 3600)
    finished(tmp_path / "results", "mnist", cfg(1, 3), 1200)  # a finished run of the 3-layer shape: 20 min
    df = budget.budget_table(budget.load_plan(tmp_path / "plan.yaml")).set_index("what")
    assert df.loc["P", "planned core-h"] == pytest.approx((2 * 605 + 2 * 1200) / 3600)
    shown, caption = budget.budget_display(tmp_path / "plan.yaml")
    assert caption.startswith("T (") and shown.iloc[-1]["what"] == "total" and shown.iloc[-1]["training"] == "1"


def measured(results, cfg, examples_per_s, nll_s=None, name=None):
    """A finished record of `cfg` whose epoch ran at `examples_per_s` and whose test IW-NLL took `nll_s` seconds over
    its n_eval_nll examples x iw_samples (no timing of it when None)."""
    metrics = {"nll_examples": cfg.n_eval_nll, "iw_samples": cfg.iw_samples}
    if nll_s is not None:
        metrics["timing"] = {"nll": nll_s, "total": nll_s + 1}
    record = RunRecord(status="finished", name=cfg.run_name(), config=cfg.to_dict(), metrics=metrics,
                       wall_time_s=99.0, history=[{"epoch": 1, "time_s": 20.0, "examples_per_s": examples_per_s}])
    path = results / "mnist" / "runs" / f"{name or cfg.run_name()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.to_dict()))
    return record.to_dict()


def test_a_paper_run_is_estimated_from_its_model_at_another_scale(tmp_path, monkeypatch):
    """check_long_runs' estimate of a run no record has the shape of: its model's seconds per training example at
    the cpu profile (fp32 like the paper's; 10k images, 500 a second) times its own examples (the whole 50k split)
    and epochs (100), plus its IW-NLL: 2 s for 500 examples x 50 samples at the cpu profile, 8e-5 s a sample, times
    the paper's 10k test examples x 500 samples (400 s)."""
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    cpu = make_config("mnist", "vae", "cpu", arch="pixelcnn", amp=False)
    record = measured(tmp_path / "results", cpu, 500.0, nll_s=2.0)
    record["config"].pop("objective")  # an older record, written before the field existed (full_config)
    (tmp_path / "results" / "mnist" / "runs" / f"{cpu.run_name()}.json").write_text(json.dumps(record))
    paper = make_config("mnist", "vae", "paper", arch="pixelcnn")
    assert budget.run_minutes_estimates([paper]) == [(pytest.approx((100 * 50000 / 500 + 400) / 60), None)]
    with pytest.raises(ConfigError, match=r": about 2.9 h on one CPU thread by the budget model \(training and the "
                                          r"final IW-NLL\); give --confirm-long"):
        budget.check_long_runs([paper], on_gpu=False, confirmed=False)
    assert budget.check_long_runs([paper], on_gpu=True, confirmed=False) is None
    assert budget.check_long_runs([cpu], on_gpu=False, confirmed=False) is None
    assert budget.check_long_runs([paper], on_gpu=False, confirmed=True).endswith("starting (--confirm-long)")


def test_a_run_is_priced_only_by_measured_runs_of_its_precision_and_step(tmp_path, monkeypatch):
    """The cpu PixelCNN trains in bf16, the paper's in fp32: a bf16 rate does not price an fp32 run (the estimate
    says why), nor an eager step a compiled one; an fp32 record does, at its own rate."""
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    results = tmp_path / "results"
    measured(results, make_config("mnist", "vae", "cpu", arch="pixelcnn"), 5000.0, nll_s=2.0)  # amp: bf16
    paper = make_config("mnist", "vae", "paper", arch="pixelcnn")
    paper_bf16 = make_config("mnist", "vae", "paper", arch="pixelcnn", amp=True)
    nll = 10000 * 500 * 2.0 / (500 * 50) / 60  # the IW-NLL runs in fp32 whatever the training precision
    assert budget.run_minutes_estimates([paper, paper_bf16]) == [
        (None, "whose model was measured only in bf16 eager, never in fp32 eager"),
        (pytest.approx(100 * 50000 / 5000 / 60 + nll), None)]
    measured(results, make_config("mnist", "vae", "cpu", arch="pixelcnn", amp=False), 500.0, nll_s=2.0)
    assert budget.run_minutes_estimates([paper]) == [(pytest.approx(100 * 50000 / 500 / 60 + nll), None)]
    measured(results, make_config("mnist", "vae", "cpu", arch="mlp"), 500.0, nll_s=2.0)  # an eager step
    compiled = make_config("mnist", "vae", "paper", arch="mlp")
    assert compiled.compile_step and budget.run_minutes_estimates([compiled]) == [
        (None, "whose model was measured only in fp32 eager, never in fp32 compiled")]
    other = make_config("mnist", "vae", "paper", arch="pixelcnn", latent_dim=7)  # its settings recorded, no rate
    measured(results, make_config("mnist", "vae", "cpu", arch="pixelcnn", amp=False, latent_dim=7), 0.0)
    assert budget.run_minutes_estimates([other]) == [
        (None, "whose model's records in fp32 eager hold no training rate (examples per second)")]


def test_an_estimate_of_training_alone_gets_the_final_iw_nll_added(tmp_path, monkeypatch):
    """A paper run still training: its projection (training only) plus its IW-NLL; a run whose config has finished
    on another seed: that wall time, which holds its evaluation; a model no record timed the IW-NLL of: no
    estimate, saying so."""
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    results = tmp_path / "results"
    measured(results, make_config("mnist", "vae", "cpu", arch="pixelcnn", amp=False), 500.0, nll_s=2.0)
    paper = lambda seed: make_config("mnist", "vae", "paper", arch="pixelcnn", seed=seed)  # noqa: E731
    partial(results, "mnist", paper(0), [60, 60])  # 100 epochs of 60 s: 100 min
    nll = 10000 * 500 * 2.0 / (500 * 50) / 60
    assert budget.run_minutes_estimates([paper(0)]) == [(pytest.approx(100 + nll), None)]
    finished(results, "mnist", paper(1), 7200)
    assert budget.run_minutes_estimates([paper(2)]) == [(pytest.approx(120), None)]
    untimed = make_config("mnist", "skip-vae", "cpu", arch="pixelcnn", amp=False)
    measured(results, untimed, 500.0, nll_s=None)
    assert budget.run_minutes_estimates([make_config("mnist", "skip-vae", "paper", arch="pixelcnn")]) == [
        (None, "whose model's IW-NLL no record measured")]


def test_the_iw_nll_samples_of_a_run():
    """Its IW-NLL examples (n_eval_nll, else the whole test split) times K, 1 for a model without a latent."""
    assert budget.nll_samples(make_config("mnist", "vae", "paper", arch="pixelcnn").to_dict()) == 10000 * 500
    assert budget.nll_samples(make_config("mnist", "vae", "cpu", arch="pixelcnn").to_dict()) == 500 * 50
    assert budget.nll_samples(make_config("yahoo", "lm", "paper").to_dict()) == 10000


def test_the_estimate_says_how_many_runs_have_none_and_why(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    measured(tmp_path / "results", make_config("mnist", "vae", "cpu", arch="pixelcnn", amp=False), 500.0, nll_s=2.0)
    priced = make_config("mnist", "vae", "paper", arch="pixelcnn")
    unknown = [make_config("yahoo", "vae", "paper", seed=s) for s in (0, 1)]
    other_step = make_config("mnist", "vae", "paper", arch="pixelcnn", amp=True)
    assert budget.long_run_estimate([priced, *unknown, other_step]) == (
        "4 run(s) at the paper profile: at least 2.9 h on one CPU thread by the budget model (training and the "
        "final IW-NLL of the 1 run(s) with an estimate); no estimate for 3 run(s) (1 whose model was measured only "
        "in fp32 eager, never in bf16 eager; 2 with no record of their model at any scale)")
    assert budget.long_run_estimate(unknown) == ("2 run(s) at the paper profile: no estimate for any (2 with no "
                                                 "record of their model at any scale), likely days on a CPU")
    with pytest.raises(ConfigError, match=r"no estimate for 2 run\(s\) .*; give --confirm-long"):
        budget.check_long_runs([priced, *unknown], on_gpu=False, confirmed=False)


def test_the_training_of_runs_lost_before_they_finished_counts_as_spent_and_lost(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    base = {"dataset": "mnist", "arch": "mlp", "profile": "cpu", "epochs": 10}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "p", "base": base, "grid": {"seed": [0, 1]}}))
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"title": "T", "target_core_hours": 1, "lanes": 2, "rows": [
        {"what": "P", "sweep": "p.yaml", "experiment": "mnist"}]}))
    cfg = make_config("mnist", "vae", "cpu", arch="mlp", epochs=10, seed=0)
    partial(tmp_path / "results", "mnist", cfg, [100] * 8)  # the run was at epoch 8 when its machine went
    folder = tmp_path / "results" / "mnist" / "partial"
    (folder / "lost").mkdir()
    (folder / f"{cfg.run_name()}.json").rename(folder / "lost" / f"{cfg.run_name()}.lost-at-epoch-8.json")
    partial(tmp_path / "results", "mnist", cfg, [100, 100])  # restarted from epoch 0: 2 epochs so far
    df = budget.budget_table(budget.load_plan(tmp_path / "plan.yaml")).set_index("what")
    assert df.loc["P", "lost core-h"] == pytest.approx(800 / 3600)
    assert df.loc["P", "spent core-h"] == pytest.approx(1000 / 3600)  # 200 s now + 800 s lost
    shown, caption = budget.budget_display(tmp_path / "plan.yaml")
    assert shown.set_index("what").loc["total", "lost core-h"] == "0.2" and "checkpoints were lost" in caption
