"""The notebooks' runner and helpers: reuse of finished runs, force, record updates, checkpoints, tables, figures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import skipvae.train  # noqa: E402
from skipvae.records import RunRecord  # noqa: E402
from skipvae import report, results, runner  # noqa: E402
from skipvae.config import make_config  # noqa: E402
from skipvae.errors import DataError  # noqa: E402
from skipvae.runner import (default_profile, experiment_runs, load_trained, profile_reductions,  # noqa: E402
                            record_path, results_dir, run_all, update_record_metrics)
from skipvae.report import (claim_summary, information_kept, left_out_sentence, plot_bars,  # noqa: E402
                            plot_lines, save_figure, summary_value)
from skipvae.report.claims import INCONCLUSIVE, REPRODUCED, Check  # noqa: E402
from skipvae.records import git_commit  # noqa: E402


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A throw-away checkout: results and runs under tmp_path."""
    monkeypatch.setattr(runner, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(report.store, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(results, "REPO_ROOT", tmp_path)  # where records live (skipvae.results)
    monkeypatch.setenv("SKIPVAE_RUNS", str(tmp_path / "runs"))
    return tmp_path


class Calls(list):
    """The run names that training was called for."""


@pytest.fixture
def fake_train(monkeypatch):
    """Replace training by a function that writes a finished record at once and counts its calls."""
    calls = Calls()
    calls.had_checkpoint = []  # whether the run directory still held best.pt when training started

    def train(cfg, run_dir, data_dir=None, progress=True):
        calls.append(cfg.run_name())
        calls.had_checkpoint.append((run_dir / "best.pt").exists())
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "best.pt").write_bytes(b"weights")
        record = RunRecord(status="finished", name=run_dir.name, config=cfg.to_dict(),
                           metrics={"mi": float(len(calls)), "kl": 1.0}, provenance={"call": len(calls)}).to_dict()
        (run_dir / "record.json").write_text(json.dumps(record))
        return record

    monkeypatch.setattr(skipvae.train, "train", train)
    return calls


def smoke(model="vae", **kw):
    return make_config("mnist", model, "smoke", arch="mlp", n_train=50, n_valid=25, n_test=25, **kw)


def test_default_profile_follows_the_environment(monkeypatch):
    monkeypatch.delenv("SKIPVAE_PROFILE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert default_profile() == "cpu"
    monkeypatch.setenv("CI", "true")
    assert default_profile() == "smoke"
    monkeypatch.setenv("SKIPVAE_PROFILE", "paper")
    assert default_profile() == "paper"


def test_smoke_results_never_go_to_results(repo, monkeypatch, tmp_path):
    monkeypatch.delenv("SKIPVAE_RESULTS", raising=False)
    assert results_dir("mnist", "smoke") == repo / "runs" / "smoke-results" / "mnist"
    assert results_dir("mnist", "cpu") == repo / "results" / "mnist"
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))  # the folder the book reads (report.results_root)
    assert results_dir("mnist", "cpu") == tmp_path / "mnist" == report.results_root() / "mnist"
    assert results_dir("mnist", "smoke") == repo / "runs" / "smoke-results" / "mnist"
    cfg = smoke()
    assert record_path(cfg, "mnist") == repo / "runs" / "smoke-results" / "mnist" / "runs" / f"{cfg.run_name()}.json"


def test_run_all_reuses_identical_finished_runs_and_retrains_with_force(repo, fake_train):
    a, b = smoke(seed=0), smoke(seed=1)
    first = run_all([a, b], "mnist", progress=False)
    assert fake_train == [a.run_name(), b.run_name()]
    assert json.loads(record_path(a, "mnist").read_text()) == first[0]

    again = run_all([a, b], "mnist", progress=False)
    assert fake_train == [a.run_name(), b.run_name()]  # nothing retrained
    assert again == first

    changed = smoke(seed=0, epochs=2)  # any change of the config is a new run
    run_all([changed], "mnist", progress=False)
    assert fake_train[-1] == changed.run_name() and len(fake_train) == 3

    forced = run_all([a], "mnist", force=True, progress=False)
    assert fake_train[-1] == a.run_name() and len(fake_train) == 4
    assert fake_train.had_checkpoint == [False] * 4  # force removed the old checkpoint before retraining
    assert forced[0]["provenance"]["call"] == 4
    assert json.loads(record_path(a, "mnist").read_text())["provenance"]["call"] == 4


def test_run_all_copies_an_identical_run_of_another_experiment(repo, fake_train):
    a = smoke(seed=0)
    first = run_all([a], "latent_dim", progress=False)
    shared = run_all([a, smoke(seed=0, latent_dim=3)], "depth", progress=False)
    assert fake_train == [a.run_name(), smoke(seed=0, latent_dim=3).run_name()]  # only the new config trained
    assert shared[0] == first[0] == json.loads(record_path(a, "depth").read_text())
    run_all([a], "depth", force=True, progress=False)  # force retrains even so
    assert fake_train[-1] == a.run_name() and len(fake_train) == 3


def test_run_all_under_reuse_only_trains_nothing_and_names_what_is_missing(repo, fake_train, monkeypatch, capsys):
    a, b = smoke(seed=0), smoke(seed=1)
    first = run_all([a], "mnist", progress=False)
    monkeypatch.setenv("SKIPVAE_REUSE_ONLY", "1")
    assert run_all([a, b], "mnist", progress=False) == first  # b has not finished: left out, not trained
    assert fake_train == [a.run_name()] and not record_path(b, "mnist").exists()
    assert f"1 of 2 runs have not finished and are left out: {b.run_name()}" in capsys.readouterr().out
    monkeypatch.setenv("SKIPVAE_REUSE_ONLY", "0")
    run_all([a, b], "mnist", progress=False)
    assert fake_train == [a.run_name(), b.run_name()]


def test_run_all_retrains_unfinished_or_foreign_records(repo, fake_train):
    cfg = smoke()
    path = record_path(cfg, "mnist")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"status": "paused", "name": cfg.run_name(), "config": cfg.to_dict(), "metrics": {}}))
    run_all([cfg], "mnist", progress=False)
    assert fake_train == [cfg.run_name()]
    record = json.loads(path.read_text())
    record["config"]["lr"] = 0.5  # same file name, other config: not reusable
    path.write_text(json.dumps(record))
    run_all([cfg], "mnist", progress=False)
    assert len(fake_train) == 2 and json.loads(path.read_text())["config"] == cfg.to_dict()


def test_update_record_metrics_merges_and_rewrites_the_record(repo, fake_train):
    cfg = smoke()
    run_all([cfg], "mnist", progress=False)
    record = update_record_metrics(cfg, "mnist", {"tsne_silhouette": 0.25})
    on_disk = json.loads(record_path(cfg, "mnist").read_text())
    assert on_disk == record
    assert on_disk["metrics"] == {"mi": 1.0, "kl": 1.0, "tsne_silhouette": 0.25}
    update_record_metrics(cfg, "mnist", {"tsne_silhouette": -0.5})
    assert json.loads(record_path(cfg, "mnist").read_text())["metrics"]["tsne_silhouette"] == -0.5
    assert not list(record_path(cfg, "mnist").parent.glob(".*.tmp"))  # no temporary file left behind
    # the updated record is still reused as it is
    assert run_all([cfg], "mnist", progress=False)[0]["metrics"]["tsne_silhouette"] == -0.5 and len(fake_train) == 1


def test_update_record_metrics_errors(repo, fake_train):
    with pytest.raises(DataError, match="no finished record"):
        update_record_metrics(smoke(), "mnist", {"x": 1.0})
    run_all([smoke()], "mnist", progress=False)
    with pytest.raises(DataError, match="no finished record"):
        update_record_metrics(smoke(seed=3), "mnist", {"x": 1.0})
    with pytest.raises(DataError, match="dict of metric names"):
        update_record_metrics(smoke(), "mnist", [("x", 1.0)])


def test_experiment_runs_is_exactly_the_given_records(repo, fake_train):
    a, b, c = smoke(seed=0), smoke(seed=1), smoke("skip-vae", seed=0)
    run_all([a, b, c], "mnist", progress=False)
    records = run_all([a, c], "mnist", progress=False)
    df = experiment_runs("mnist", records)
    assert sorted(df["name"]) == sorted([a.run_name(), c.run_name()])
    assert set(df["model"]) == {"vae", "skip-vae"} and set(df["mi"]) == {1.0, 3.0}
    with pytest.raises(DataError, match="no records"):
        experiment_runs("mnist", [])
    record_path(c, "mnist").unlink()
    with pytest.raises(DataError, match="not in the results folder"):
        experiment_runs("mnist", records)


def test_load_trained_returns_the_best_weights(repo, synthetic_data):
    cfg = smoke()
    assert load_trained(cfg, "mnist") is None  # no checkpoint on this machine
    run_all([cfg], "mnist", progress=False)
    data, model = load_trained(cfg, "mnist")
    best = torch.load(runner.checkpoint_path(cfg, "mnist"), weights_only=True)["model"]
    assert not model.training and data.num_examples("test") == 25
    for key, value in model.state_dict().items():
        assert torch.equal(value, best[key]), key
    ckpt = torch.load(runner.checkpoint_path(cfg, "mnist"), weights_only=True)
    ckpt["config"]["lr"] = 0.5
    ckpt.pop("digest")  # another run's consistent checkpoint (an edit of this one alone fails its checksum)
    torch.save(ckpt, runner.checkpoint_path(cfg, "mnist"))
    with pytest.raises(DataError, match="different config"):
        load_trained(cfg, "mnist")


def test_a_checkpoint_trained_by_a_sweep_is_found_before_collect_once_its_run_has_finished(repo):
    cfg = smoke()

    def put(folder: str, finished: bool = True) -> Path:
        run_dir = repo / "runs" / folder / cfg.run_name()
        run_dir.mkdir(parents=True)
        (run_dir / "best.pt").write_bytes(b"x")
        if finished:
            (run_dir / "record.json").write_text(json.dumps({"status": "finished", "name": cfg.run_name(),
                                                             "config": cfg.to_dict(), "metrics": {}}))
        return run_dir / "best.pt"

    assert runner.checkpoint_path(cfg, "mnist") is None  # nowhere yet
    training = put("cpu-table0", finished=False)  # a sweep still training it: its best.pt is not the final one
    assert runner.checkpoint_path(cfg, "mnist") is None and load_trained(cfg, "mnist") is None
    swept = put("cpu-table1")
    assert runner.checkpoint_path(cfg, "mnist") == swept != training
    own = put("mnist")
    assert runner.checkpoint_path(cfg, "mnist") == own  # the experiment's own run first


def test_profile_reductions_list_what_differs_from_the_paper():
    notes, table = profile_reductions("mnist", "smoke", "pixelcnn")
    assert notes == make_config("mnist", "vae", "smoke").notes
    rows = table.set_index("setting")
    assert rows.loc["epochs", "paper"] == "100" and rows.loc["epochs", "smoke"] == "1"
    assert rows.loc["n_train", "paper"] == "all" and rows.loc["n_train", "smoke"] == "100"
    assert rows.loc["iw_samples", "paper"] == "500"
    assert "lr" not in rows.index and "dec_kernels" not in rows.index  # only the reducible sizes
    notes, table = profile_reductions("yahoo", "paper")
    assert table.empty and "official hyperparameters" in notes
    notes, table = profile_reductions("yahoo", "cpu", "lstm", "sa-vae")  # the semi-amortized models' own cut
    assert "semi-amortized" in notes and table.set_index("setting").loc["n_train", "cpu"] == "2000"
    assert "n_train" not in profile_reductions("yahoo", "cpu", "lstm")[1]["setting"].values  # all, as in the paper


def test_save_figure_writes_png_and_caption(repo):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, "mnist", "smoke", "demo", "A line.", seeds=[2, 0])
    plt.close(fig)
    assert path == repo / "runs" / "smoke-results" / "mnist" / "figures" / "demo.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta.pop("git_commit") == git_commit()
    assert meta == {"caption": "A line.", "profile": "smoke", "seeds": [0, 2]}


def test_save_figure_leaves_an_unchanged_figure_untouched_across_commits(repo, monkeypatch):
    import matplotlib.pyplot as plt

    def draw(y):
        fig, ax = plt.subplots()
        ax.plot([0, 1], y)
        return fig

    monkeypatch.setattr(report.plots, "git_commit", lambda: "aaaa")
    path = save_figure(draw([1, 0]), "mnist", "smoke", "demo", "A line.", seeds=[0])
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (path, path.with_suffix(".json"))}
    monkeypatch.setattr(report.plots, "git_commit", lambda: "bbbb")  # a later commit redraws the same figure
    save_figure(draw([1, 0]), "mnist", "smoke", "demo", "A line.", seeds=[0])
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    save_figure(draw([0, 1]), "mnist", "smoke", "demo", "A line.", seeds=[0])  # a new figure is written
    assert path.read_bytes() != before[path][0]
    assert json.loads(path.with_suffix(".json").read_text())["git_commit"] == "bbbb"
    plt.close("all")


def test_summary_value_and_its_errors():
    summary = pd.DataFrame({"profile": ["cpu"] * 3, "arch": ["mlp", "mlp", "pixelcnn"],
                            "model": ["vae", "skip-vae", "vae"], "mi_mean": [1.0, 2.0, 3.0],
                            "mi_std": [0.1, 0.2, 0.3]})
    assert summary_value(summary, "mi", arch="mlp", model="skip-vae") == (2.0, 0.2)
    with pytest.raises(DataError, match="2 rows"):
        summary_value(summary, "mi", model="vae")
    with pytest.raises(DataError, match="0 rows"):
        summary_value(summary, "mi", model="sa-vae")


def test_information_kept_follows_the_interval_of_the_mi_difference():
    def runs(vae, skip, profile="cpu"):
        return pd.DataFrame({"profile": profile, "seed": list(range(len(vae))) * 2, "mi": vae + skip,
                             "model": ["vae"] * len(vae) + ["skip-vae"] * len(skip)})

    def kept(df):
        return information_kept(df, dict(model="skip-vae"), dict(model="vae"))

    # the Welch interval (ledger v2): seeds are not paired by design
    assert kept(runs([1.0, 1.1, 1.2], [1.5, 1.6, 1.75])).startswith("keeps more information in $z$ (MI difference "
                                                                    "+0.52 [+0.25, +0.78] (Welch, n = 3)) than")
    assert kept(runs([1.0, 1.1, 1.2], [0.5, 0.6, 0.75])).startswith("keeps less")
    assert kept(runs([1.0, 1.1, 1.2], [1.0, 1.2, 1.25])).startswith("is not shown to keep more")
    assert kept(runs([1.0, 2.0, 3.0], [1.5, 2.6, 3.4])).startswith("is not shown")  # paired would say 'more'

    # one seed: no interval, said as one seed's; 'more' only beyond the printed precision (0.01 nats)
    assert kept(runs([0.001], [0.004])).startswith("in one seed keeps no more information in $z$ (MI difference "
                                                   "+0.00 (no interval: n = 1))")
    assert kept(runs([0.001], [0.02])).startswith("in one seed keeps more")
    # the largest profile decides: the smoke runs, which would say 'less', are not compared
    both = pd.concat([runs([1.0, 1.1, 1.2], [1.5, 1.6, 1.75]), runs([5.0, 5.0], [0.0, 0.1], profile="smoke")])
    assert kept(both).startswith("keeps more")
    with pytest.raises(DataError, match="more than one run per seed"):  # e.g. two latent sizes mixed
        kept(pd.concat([runs([1.0, 2.0], [1.5, 2.5]), runs([1.0, 2.0], [1.5, 2.5])]))


def test_left_out_sentence_names_the_models_and_why():
    assert left_out_sentence(["vae", "skip-vae", "sa-vae", "skip-sa-vae"], "cpu") == ""
    cpu = left_out_sentence(["vae", "skip-vae"], "cpu")
    assert "sa-vae, skip-sa-vae" in cpu and "them" in cpu and "bench_models" in cpu
    one = left_out_sentence(["vae", "skip-vae", "sa-vae"], "paper")
    assert "skip-sa-vae, so no claim is judged on it here." in one and "bench_models" not in one


def test_claim_summary_follows_the_ledger_rule():
    def check(verdict):
        return Check("C1", "latent 20", "KL: Skip-VAE − VAE", "> 0", "–", "–", None, [], verdict)

    assert "**reproduced**" in claim_summary("C1", [check(REPRODUCED)] * 2, "cpu")
    text = claim_summary("C1", [check(REPRODUCED), check(INCONCLUSIVE)], "cpu")
    assert "**partly reproduced**" in text and "2 primary checks: 1 reproduced, 1 inconclusive" in text
    assert "no check" in claim_summary("C3", [], "paper")
    assert "(1 primary check: 1 inconclusive)" in claim_summary("C5", [check(INCONCLUSIVE)], "cpu")
    elbo = Check("C1", "latent 20", "ELBO: Skip-VAE − VAE", "> -0.8", "–", "–", None, [], REPRODUCED, primary=False)
    assert "; conditions: 1 reproduced)" in claim_summary("C1", [check(INCONCLUSIVE), elbo], "cpu")


def test_plots_have_one_panel_per_metric_and_row():
    runs = pd.DataFrame({"model": ["vae", "skip-vae"] * 4, "arch": ["mlp"] * 4 + ["pixelcnn"] * 4,
                         "latent_dim": [2, 2, 8, 8] * 2, "seed": [0] * 8, "mi": range(8), "kl": range(8)})
    assert len(plot_bars(runs, ["mi", "kl"], hue="arch").axes) == 2
    fig = plot_lines(runs, "latent_dim", ["mi", "kl"], row="arch")
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "MI (mlp)"


def _has_data() -> bool:
    from skipvae.data import resolve_data_dir

    try:
        return resolve_data_dir() is not None
    except DataError:
        return False


@pytest.mark.skipif(not _has_data(), reason="the notebooks need the data (`python -m skipvae data ensure`)")
def test_reexecuting_a_notebook_changes_no_file(tmp_path):
    """A second execution of a notebook (yahoo.ipynb at the smoke profile; the second reuses every run) leaves every
    file it wrote byte-identical: records, figures without timestamps or random jitter, captions."""
    pytest.importorskip("papermill")
    root = Path(runner.REPO_ROOT)
    out = results_dir("yahoo", "smoke")

    def execute() -> dict:
        subprocess.run([sys.executable, "-m", "papermill", "--no-progress-bar", str(root / "notebooks/yahoo.ipynb"),
                        str(tmp_path / "yahoo.ipynb"), "-p", "profile", "smoke"], check=True, cwd=root,
                       capture_output=True, env={**os.environ, "PYTHONPATH": str(root)})
        return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    first = execute()
    assert any(p.suffix == ".png" for p in first)
    assert execute() == first


def test_show_paper_table_says_when_no_run_has_finished(monkeypatch):
    import pandas as pd
    from IPython.display import Markdown

    from skipvae.runner import show_paper_table

    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    table = show_paper_table(pd.DataFrame(columns=["profile", "model", "seed"]), "table3")
    caption = next(x.data for x in shown if isinstance(x, Markdown))
    assert "Ours: no run has finished yet. Units:" in caption and "profile" not in caption
    assert table.attrs["profile"] is None and set(table["ELBO ours"]) == {"not yet run"}
