"""skipvae.report on synthetic run records in a temporary results folder: the store, the tables, the quoted numbers
and every error path (the claims: tests/test_claims.py)."""

import json
import math
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from skipvae import report
from skipvae.report import tables, views
from skipvae.config import make_config
from skipvae.errors import DataError

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parent.parent


def write_record(root: Path, experiment: str, dataset: str, model: str, seed: int = 0, profile: str = "cpu",
                 arch: str | None = None, status: str = "finished", classification: dict | None = None,
                 config: dict | None = None, **values) -> Path:
    """A run record as skipvae.train writes it; `values` are config overrides (latent_dim, dec_layers) or metrics,
    `config` any other config overrides."""
    cfg_keys = {k: values.pop(k) for k in ("latent_dim", "dec_layers") if k in values} | (config or {})
    cfg = make_config(dataset, model, profile, arch=arch, seed=seed, **cfg_keys)
    metrics = {"nll": 90.0, "neg_elbo": 92.0, "rec": 90.0, "kl": 2.0, "kl_per_dim": [0.1] * cfg.latent_dim,
               "mi": 1.0, "au_0.01": 3, "au_0.02": 2, "iw_samples": 7, "n_examples": 10, "timing": {"mi": 0.1}}
    metrics.update(values)
    if classification:
        metrics["classification"] = {k: {"acc": v, "se": 0.001} for k, v in classification.items()}
    record = {"status": status, "name": cfg.run_name(), "config": cfg.to_dict(), "metrics": metrics,
              "best_epoch": 3, "epochs_completed": 4, "history": [{"epoch": 1, "val_neg_elbo": 95.0}],
              "train_time_s": 100.0 + seed, "eval_time_s": 10.0,
              "provenance": {"git_commit": "abc123", "seed": seed, "profile": profile, "device": "cpu:x86_64",
                             "python": "3.11.7", "torch": "2.13.0", "numpy": "2.4.6", "scikit_learn": "1.9.1"}}
    path = root / experiment / "runs" / f"{cfg.run_name()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def write_theory(root: Path, rows: list[dict], profile: str = "cpu") -> Path:
    path = root / "theory" / "theory.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"provenance": {"profile": profile, "git_commit": "abc123"}, "rows": rows}))
    return path


# ------------------------------------------------------------------------------------------- loading

def test_not_run_state(tmp_path):
    df = report.load_runs("mnist", tmp_path)
    assert df.empty and {"model", "profile", "seed"} <= set(df.columns)
    table, constants = report.experiment_table("mnist", tmp_path)
    assert list(table["model"]) == list(report.LATENT_MODELS) and constants == {}  # no language model on MNIST
    assert list(report.experiment_table("yahoo", tmp_path)[0]["model"]) == list(report.MODELS)
    assert (table["MI"] == "not run yet").all() and (table["NLL"] == "not run yet").all()
    assert report.run_status("mnist", tmp_path) == {"n_runs": 0, "profiles": [], "by_profile": {},
                                                    "missing": list(report.LATENT_MODELS), "notebook": False,
                                                    "ran": False}
    assert not report.run_status("theory", tmp_path)["ran"]
    assert report.summary_table(df, ("model",), ["mi"]).empty
    assert report.provenance_table(tmp_path).empty and report.timing_table(tmp_path).empty
    ledger = report.claims_ledger(tmp_path)
    assert list(ledger["claim"]) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    assert (ledger["verdict"] == report.NOT_YET).all()


def test_load_runs_flattens_and_sorts(tmp_path):
    write_record(tmp_path, "mnist", "mnist", "skip-vae", seed=1, classification={"logreg": 0.9})
    write_record(tmp_path, "mnist", "mnist", "vae", seed=0, profile="smoke")
    write_record(tmp_path, "mnist", "mnist", "vae", seed=0)
    write_record(tmp_path, "mnist", "mnist", "sa-vae", seed=0, status="paused")
    df = report.load_runs("mnist", tmp_path)
    assert list(zip(df["profile"], df["model"])) == [("cpu", "vae"), ("cpu", "skip-vae"), ("smoke", "vae")]
    assert df.loc[1, "classification.logreg.acc"] == 0.9 and df.loc[1, "timing.mi"] == 0.1
    assert df.loc[0, "provenance.torch"] == "2.13.0"
    assert df.loc[0, "epochs"] == make_config("mnist", "vae", "cpu").epochs  # config kept
    assert (df["iw_samples"] == 7).all()  # the metric (what evaluation used) wins over the config key
    assert len(report.load_runs("mnist", tmp_path, include_unfinished=True)) == 4
    status = report.run_status("mnist", tmp_path)
    assert status["by_profile"]["cpu"] == {"runs": 2, "seeds": [0, 1], "models": ["vae", "skip-vae"]}
    assert status["missing"] == ["sa-vae", "skip-sa-vae"]  # the paused sa-vae run does not count


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read run record"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"status": "finished", "name": "x", "config": {"dataset": "mnist"}, "metrics": {}}),
     "config.model"),
    (json.dumps({"status": "finished", "name": "x", "config": {}}), "lacks metrics"),
])
def test_bad_records_raise_data_error(tmp_path, content, message):
    path = tmp_path / "mnist" / "runs" / "bad.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        report.load_runs("mnist", tmp_path)
    assert str(path) in str(err.value)


def test_unknown_experiment_and_grouping_column(tmp_path):
    with pytest.raises(DataError, match="unknown experiment 'cifar'.*mnist"):
        report.load_runs("cifar", tmp_path)
    write_record(tmp_path, "mnist", "mnist", "vae")
    with pytest.raises(DataError, match="cannot group runs by \\['colour'\\]"):
        report.summary_table(report.load_runs("mnist", tmp_path), by=("colour",))


def test_results_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    assert report.results_root() == tmp_path
    monkeypatch.delenv("SKIPVAE_RESULTS")
    assert report.results_root() == REPO / "results"


# ----------------------------------------------------------------------------------------- summaries

def test_summary_table_mean_std_over_seeds(tmp_path):
    for seed, mi in enumerate([1.0, 2.0, 3.0]):
        write_record(tmp_path, "mnist", "mnist", "skip-vae", seed=seed, mi=mi)
    write_record(tmp_path, "mnist", "mnist", "vae", seed=0, mi=0.5)
    write_record(tmp_path, "mnist", "mnist", "vae", seed=0, mi=9.0, profile="smoke")  # never averaged with cpu
    s = report.summary_table(report.load_runs("mnist", tmp_path), by=("arch", "model"), metrics=["mi"])
    assert list(zip(s["profile"], s["model"])) == [("cpu", "vae"), ("cpu", "skip-vae"), ("smoke", "vae")]
    skip = s.iloc[1]
    assert skip["n_seeds"] == 3 and skip["seeds"] == [0, 1, 2]
    assert skip["mi_mean"] == pytest.approx(2.0) and skip["mi_std"] == pytest.approx(1.0)
    assert math.isnan(s.iloc[0]["mi_std"]) and s.iloc[2]["mi_mean"] == 9.0

    table, constants = report.display_table(s, ("arch", "model"), ["mi"])
    assert list(table.columns) == ["profile", "model", "seeds", "MI"]
    assert list(table["MI"]) == ["0.50", "2.00 ± 1.00", "9.00"]
    assert constants == {"arch": "pixelcnn"}


def test_experiment_table_shows_runs_with_settings_that_vary(tmp_path):
    for dim in (8, 16):
        for model in ("vae", "skip-vae"):
            write_record(tmp_path, "latent_dim", "mnist", model, latent_dim=dim, mi=dim / 8)
    table, constants = report.experiment_table("latent_dim", tmp_path, metrics=["mi", "au_0.01"])
    assert len(table) == 4 and list(table["latent dim"]) == ["8", "16", "8", "16"]
    assert list(table["model"]) == ["vae", "vae", "skip-vae", "skip-vae"]
    assert list(table["MI"]) == ["1.00", "2.00", "1.00", "2.00"] and list(table["AU (0.01)"]) == ["3.0"] * 4
    assert constants == {"dataset": "mnist", "arch": "pixelcnn", "dec_layers": 9}


def test_provenance_and_timing_tables(tmp_path):
    write_record(tmp_path, "mnist", "mnist", "vae", seed=0)
    write_record(tmp_path, "mnist", "mnist", "vae", seed=1)
    write_record(tmp_path, "yahoo", "yahoo", "vae", seed=0)
    prov = report.provenance_table(tmp_path)
    assert prov.iloc[0].to_dict() == {"profile": "cpu", "device": "cpu:x86_64", "python": "3.11.7",
                                      "torch": "2.13.0", "numpy": "2.4.6", "scikit_learn": "1.9.1",
                                      "git_commit": "abc123", "runs": 3}
    timing = report.timing_table(tmp_path).set_index("dataset")
    assert timing.loc["mnist", "runs"] == 2 and timing.loc["mnist", "train_s"] == pytest.approx(100.5)
    assert timing.loc["yahoo", "epochs"] == 4


def test_plots_have_one_panel_per_metric(tmp_path):
    for model in ("vae", "skip-vae"):
        for layers in (2, 4):
            write_record(tmp_path, "depth", "mnist", model, dec_layers=layers)
    df = report.load_runs("depth", tmp_path)
    fig = report.plot_lines(df, "dec_layers", ["mi", "au_0.01", "nll"])
    assert len(fig.axes) == 3 and len(fig.axes[0].lines) >= 2
    fig = report.plot_bars(df, ["mi"])
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) >= 2


# ------------------------------------------------------------------------------------- quoted numbers

def test_paper_numbers_are_complete_and_cited():
    numbers = report.paper_numbers()
    assert [c["id"] for c in numbers["claims"]] == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    for claim in numbers["claims"]:
        for page in claim["pages"]:
            assert (REPO / "book" / f"{page}.md").exists(), page
    for name, table in numbers["tables"].items():
        assert table.attrs["source"] in numbers["sources"].values()
        assert set(table.attrs["columns"]) <= set(table.columns), name
        assert table.attrs["experiment"] in (*report.EXPERIMENTS, "reproducibility")
    yahoo = numbers["tables"]["yahoo_zhu2020"].set_index("model")
    assert list(yahoo.columns) == ["nll", "kl", "mi", "au_0.01", "origin"] and len(yahoo) == 8  # origin: whose run
    remedies = numbers["tables"]["remedies_yahoo"]
    assert remedies.attrs["experiment"] == "remedies" and len(remedies) == 7 and remedies.attrs["setup"]
    assert set(report.paper_tables("omniglot")) == {"omniglot_he2019", "omniglot_kim2018"}


@pytest.mark.parametrize("text, message", [
    ("sources: {}\nclaims: []\n", "'tables' is missing"),
    ("sources: {a: A}\nclaims: []\ntables: {t: {experiment: mnist, source: b, columns: [nll], rows: []}}\n",
     "cites 'b'"),
    ("key: [unclosed\n", "cannot read the quoted numbers"),
])
def test_bad_paper_numbers_raise(tmp_path, text, message):
    path = tmp_path / "numbers.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        report.paper_numbers(path)


def test_theory_summary_counts_draws_and_gains(tmp_path):
    rows = [{"dim": 1, "skip_strength": s, "depth": d, "seed": 0, "mi_no_skip": 1.0, "mi_skip": 1.0 + g}
            for s, gains in ((0.1, (-0.2, 0.1)), (1.0, (0.3, 0.5))) for d, g in zip((1, 2), gains)]
    write_theory(tmp_path, rows)
    summary = report.theory_summary(tmp_path).set_index("skip_strength")
    assert summary.loc[0.1, "draws"] == 2 and summary.loc[0.1, "not lowered"] == 1
    assert summary.loc[0.1, "smallest gain"] == pytest.approx(-0.2)
    assert summary.loc[1.0, "not lowered"] == 2 and summary.loc[1.0, "mean gain"] == pytest.approx(0.4)
    assert report.theory_summary(tmp_path / "empty").empty


def test_notebook_parameters_of_an_executed_notebook(tmp_path):
    assert report.notebook_parameters("mnist", tmp_path) is None  # not executed yet
    path = tmp_path / "mnist" / "mnist.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"cells": [], "metadata": {"papermill": {"parameters": {"seeds": [0]}}}}))
    assert report.notebook_parameters("mnist", tmp_path) == {"seeds": [0]}
    path.write_text("{broken")
    with pytest.raises(DataError, match="cannot read the executed notebook"):
        report.notebook_parameters("mnist", tmp_path)


def test_the_classification_table_prints_each_rows_split(tmp_path):
    for seed in (0, 1):
        path = write_record(tmp_path, "mnist", "mnist", "vae", seed=seed, latent_dim=50, dec_layers=9,
                            classification={"mlp": 0.9, "logreg": 0.8})
        record = json.loads(path.read_text())
        record["metrics"]["classification"].update(n_train=10000 if seed else 50000, n_test=2000)
        path.write_text(json.dumps(record))
    table = report.classification_table(report.load_runs("mnist", tmp_path))
    assert table.loc[0, "split (train/test)"] == "10,000/2,000, 50,000/2,000"  # mixed splits are both shown
    assert tables.classifier_split(report.load_runs("mnist", tmp_path).drop(
        columns=["classification.n_train"])) == "–"


def test_captions_state_our_mi_ceiling_and_the_iw_nll_subset(tmp_path):
    for seed in (0, 1):
        write_record(tmp_path, "yahoo", "yahoo", "vae", seed=seed, n_examples=500, nll_examples=200, nll_tokens=8000,
                     n_tokens=30000)
    caption = report.beside_caption(report.side_by_side(report.load_runs("yahoo", tmp_path), "table4"))
    assert "log 500 = 6.21" in caption
    assert "200 of the 500 test documents (the first in length order, the shortest), mean length 40.0 tokens " \
           "against 60.0 over the whole test set" in caption
    write_record(tmp_path, "mnist", "mnist", "vae", arch="mlp", latent_dim=50, dec_layers=2, n_examples=2000,
                 nll_examples=2000, nll_subset="random")
    caption = report.beside_caption(report.side_by_side(report.load_runs("mnist", tmp_path), "table3"))
    assert "log 2,000 = 7.60" in caption and "IW-NLL is computed on" not in caption  # the whole test set
    write_record(tmp_path, "mnist", "mnist", "vae", profile="paper", arch="mlp", latent_dim=50, dec_layers=2,
                 n_examples=10000, nll_examples=10000)
    write_record(tmp_path, "mnist", "mnist", "skip-vae", arch="mlp", latent_dim=50, dec_layers=2, n_examples=2000,
                 nll_examples=500)
    both = report.load_runs("mnist", tmp_path)  # two profiles: each named, the largest first
    assert report.nll_subset_text(both) == ("at the paper profile, all 10,000 test examples; at the cpu profile, all "
                                            "2,000 test examples; at the cpu profile, 500 of the 2,000 test examples "
                                            "(the first of the split)")
    assert report.nll_subset_text(both[both["profile"] == "paper"]) == ""  # one profile, the whole test set


def test_two_configs_that_differ_in_one_field_are_two_rows_in_the_terminal_and_the_book(tmp_path, capsys):
    from skipvae.cli import main

    for seed in (0, 1, 2):
        write_record(tmp_path, "mnist", "mnist", "skip-vae", seed=seed, kl=5.0)
        write_record(tmp_path, "mnist", "mnist", "skip-vae", seed=seed, kl=2.0, config={"warmup_epochs": 2})
    assert main(["table", "mnist", "--results", str(tmp_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    ours = shown[0]
    rows = [dict(zip(ours["columns"], r)) for r in ours["rows"]]
    assert len(rows) == 2 and {r["KL"] for r in rows} == {"5.00 ± 0.00", "2.00 ± 0.00"}
    assert {r["seeds"] for r in rows} == {"3"}
    assert any("warm" in c for c in ours["columns"])  # the field that varies is a column
    book = views.results_view("mnist").table  # what the book's results-table directive renders
    assert len(book) == 2
    assert [v["title"] for v in shown][1:] == ["Table 3 beside ours (cpu)", "Table 3: ours − the paper's (cpu)",
                                              "Classification from the posterior means (C5)"]
    assert main(["table", "mnist", "--results", str(tmp_path / "nope")]) == 2
    assert "--results" in capsys.readouterr().err


def test_figures_never_pool_configs_and_their_captions_say_what_is_drawn(tmp_path):
    from skipvae.report import plots

    for seed in (0, 1):
        write_record(tmp_path, "mnist", "mnist", "vae", seed=seed, latent_dim=20, kl=1.0)
        write_record(tmp_path, "mnist", "mnist", "vae", seed=seed, latent_dim=50, kl=3.0)
    runs = report.load_runs("mnist", tmp_path)
    shown, hue = plots.bar_hue(runs, "model", None)
    assert hue == plots.CONFIG and sorted(shown[hue].unique()) == ["latent dim 20", "latent dim 50"]
    fig = report.plot_bars(shown, ["kl"], x="model", hue=hue)
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches if p.get_height() > 0)
    assert heights == [1.0, 3.0]  # one bar per config, never their mean (2.0)
    assert "Colour: config (latent dim 20; latent dim 50)" in plots.bars_caption(shown, hue)
    one = runs[runs["latent_dim"] == 20]
    assert plots.bar_hue(one, "model", None) == (one, None)
    lines, hue = plots.line_hue(runs.assign(dec_layers=runs["seed"] + 2), "dec_layers", "model")
    assert hue == plots.CONFIG and set(lines[hue]) == {"vae (latent dim 20)", "vae (latent dim 50)"}
    assert "dashed" not in plots.lines_caption(lines, hue) and "solid lines" in plots.lines_caption(lines, hue)


def test_partial_records_of_runs_still_training_are_read_with_their_curves(tmp_path):
    assert report.load_partials("mnist", tmp_path).empty
    cfg = make_config("mnist", "skip-vae", "paper", arch="mlp", seed=1)
    path = tmp_path / "mnist" / "partial" / f"{cfg.run_name()}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"status": "unfinished", "name": cfg.run_name(), "config": cfg.to_dict(),
                                "epochs_completed": 2, "planned_epochs": 100, "train_time_s": 60.0,
                                "history": [{"epoch": 1, "val_kl": 3.0}, {"epoch": 2, "val_kl": 4.0}]}))
    df = report.load_partials("mnist", tmp_path)
    assert list(df["model"]) == ["skip-vae"] and list(df["epochs_completed"]) == [2]
    assert [h["val_kl"] for h in df.loc[0, "history"]] == [3.0, 4.0] and df.loc[0, "seed"] == 1


def test_the_books_figures_are_drawn_by_the_package_with_generated_captions(tmp_path, monkeypatch):
    from skipvae.report import figures

    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    assert figures.experiment_figure("mnist") is None and figures.partial_figure("mnist") is None
    for seed in (0, 1):
        write_record(tmp_path, "mnist", "mnist", "vae", seed=seed, latent_dim=20, kl=1.0)
        write_record(tmp_path, "mnist", "mnist", "vae", seed=seed, latent_dim=50, kl=3.0)
    drawn = figures.experiment_figure("mnist", "summary", ["kl"])
    assert "Colour: config (latent dim 20; latent dim 50)" in drawn.caption
    assert (drawn.profile, drawn.seeds, drawn.n_runs) == ("cpu", [0, 1], 4)
    assert drawn.provenance_text() == "Profile: cpu; seeds 0, 1 (4 runs)."
    with pytest.raises(ValueError, match="unknown; use summary"):
        figures.experiment_figure("mnist", "pie")


def test_each_cell_of_a_paper_table_says_how_far_ours_is_from_the_papers(tmp_path):
    from skipvae.report.tables import paper_differences

    quoted = report.paper_numbers()["tables"]["table3"]
    row = quoted[(quoted["dec_layers"] == 2) & (quoted["model"] == "vae")].iloc[0]
    for seed, kl in enumerate((1.0, 2.0, 3.0)):
        write_record(tmp_path, "mnist", "mnist", "vae", seed=seed, arch="mlp", latent_dim=50, dec_layers=2,
                     kl=row["kl"] + kl)
    table = paper_differences(report.load_runs("mnist", tmp_path), "table3", profile="cpu")
    cells = table.set_index(["layers", "model"])
    # ours - paper = 1, 2, 3: mean 2 with the one-sample interval 2 ± 2.48
    assert cells.loc[("2", "vae"), "KL: ours − paper"] == "+2.00 [-0.48, +4.48]"
    assert cells.loc[("3", "vae"), "KL: ours − paper"] == "not yet run" and table.attrs["profile"] == "cpu"


def test_differences_are_shown_only_for_the_paper_tables_of_our_models():
    from skipvae.report.views import ours_rows

    tables = report.paper_numbers()["tables"]
    assert ours_rows(tables["table3"]) and ours_rows(tables["table1"])
    assert not ours_rows(tables["yahoo_zhu2020"])  # other papers' methods: no cell of ours to set against


def test_a_paper_cell_never_pools_runs_of_different_configs(tmp_path):
    from skipvae.report.tables import paper_differences

    quoted = report.paper_numbers()["tables"]["table3"]
    row = quoted[(quoted["dec_layers"] == 2) & (quoted["model"] == "vae")].iloc[0]
    for seed in range(3):  # the same cell twice: IW-NLL on 100 and on 200 examples, KL +1 and +3 from the paper's
        for nll_examples, kl in ((100, 1.0), (200, 3.0)):
            write_record(tmp_path, "mnist", "mnist", "vae", seed=seed, arch="mlp", latent_dim=50, dec_layers=2,
                         config={"n_eval_nll": nll_examples}, kl=row["kl"] + kl)
    runs = report.load_runs("mnist", tmp_path)
    table = paper_differences(runs, "table3", profile="cpu")
    cells = table[(table["layers"] == "2") & (table["model"] == "vae")].set_index("n_eval_nll")
    assert cells.loc["100", "KL: ours − paper"] == "+1.00 [+1.00, +1.00]"  # not +2.00, the pooled mean
    assert cells.loc["200", "KL: ours − paper"] == "+3.00 [+3.00, +3.00]"
    assert set(cells["seeds"]) == {"3"}
    beside = report.side_by_side(runs, "table3", profile="cpu", extra_rows=pd.DataFrame([{"model": "ref"}]))
    assert len(beside) == len(quoted) + 2  # the matched row twice, once per config, and the extra row
    assert list(beside["n_eval_nll"]) == ["100", "200"] + ["–"] * (len(quoted) - 1) + ["–"]
    unsplit = paper_differences(runs[runs["n_eval_nll"] == 100], "table3", profile="cpu")
    assert "n_eval_nll" not in unsplit.columns  # a column only where some row's runs differ in it
