"""The remedies page's tables, differences, sentences, quoted numbers and figure (skipvae.report.remedies) on
synthetic run records; the grid the notebook declares (the sweep files at each profile)."""

import math
import sys
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from skipvae import report
from skipvae.config import OBJECTIVES
from skipvae.records import atomic_write_json
from skipvae.report import remedies
from skipvae.sweepfile import load_sweep

sys.path.insert(0, str(Path(__file__).parent))
from test_report import write_record  # noqa: E402

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parent.parent
MNIST = dict(arch="mlp", latent_dim=50, dec_layers=3)


def write_cell(root, objective: str, model: str, mi: float, nll: float, seeds=(0, 1, 2), dataset="mnist",
               spread: float = 0.05, profile: str = "cpu", **config):
    """Records of one remedy x model cell: MI and NLL at the given means, +- `spread` over the seeds."""
    where = MNIST if dataset == "mnist" else {}
    extra = {"warmup_epochs": 5} if objective == "kl-anneal" else {}
    for i, seed in enumerate(seeds):
        write_record(root, "remedies", dataset, model, seed=seed, profile=profile, arch=where.get("arch"),
                     latent_dim=where.get("latent_dim", 32), dec_layers=where.get("dec_layers", 1),
                     config={"objective": objective, **extra, **config}, mi=mi + spread * (i - 1),
                     nll=nll + spread * (i - 1), kl=mi + 1, n_examples=2000, **{"au_0.01": 5 + (i % 2)})


def runs_of(root, dataset="mnist", profile=None):
    return remedies.dataset_runs(report.load_runs("remedies", root), dataset, profile)


def test_rows_follow_the_remedies_order_and_never_pool_configs(tmp_path):
    write_cell(tmp_path, "free-bits", "skip-vae", 3.0, 100.0)
    write_cell(tmp_path, "elbo", "vae", 1.0, 101.0)
    write_cell(tmp_path, "free-bits", "vae", 2.0, 102.0)
    write_cell(tmp_path, "free-bits", "vae", 2.5, 102.0, seeds=(5,), free_bits=0.5)  # another lambda: a row of its own
    rows = remedies.remedy_rows(runs_of(tmp_path))
    assert list(zip(rows["objective"], rows["model"])) == [("elbo", "vae"), ("free-bits", "vae"),
                                                          ("free-bits", "vae"), ("free-bits", "skip-vae")]
    assert "free_bits" in remedies.row_keys(rows) and sorted(rows["n_seeds"]) == [1, 3, 3, 3]
    table = remedies.remedy_table(runs_of(tmp_path))
    assert list(table.columns[:4]) == ["remedy", "model", "free_bits", "seeds"]
    assert table["remedy"].iloc[1] == "free bits (λ = 0.125 nats per dimension)"
    assert table["remedy"].iloc[2] == "free bits (λ = 0.5 nats per dimension)"
    assert table["MI"].iloc[0] == "1.00 ± 0.05" and table["MI"].iloc[2] == "2.45"


def test_not_run_table_lists_the_grid():
    empty = remedies.dataset_runs(report.load_runs("remedies", Path("/nonexistent")), "yahoo")
    table = remedies.remedy_table(empty)
    assert len(table) == 2 * len(report.EXPERIMENTS["remedies"].models) * 7 // 2
    assert list(table["model"][:2]) == ["vae", "skip-vae"] and (table["NLL"] == "not run yet").all()
    assert remedies.remedy_differences(empty) == [] and remedies.remedy_sentences([]) == []
    assert "no run has been committed yet" in remedies.remedy_caption(empty, "yahoo")


def test_differences_are_welch_intervals_judged_by_the_ledgers_rules(tmp_path):
    write_cell(tmp_path, "elbo", "vae", 1.0, 100.0)
    write_cell(tmp_path, "elbo", "skip-vae", 1.0, 100.0, spread=0.5)  # no clear difference
    write_cell(tmp_path, "bn-vae", "vae", 3.0, 101.0)  # more MI, higher NLL
    write_cell(tmp_path, "bn-vae", "skip-vae", 4.0, 99.0)  # skips add MI, lower NLL
    write_cell(tmp_path, "beta", "vae", 0.5, 100.0, seeds=(0, 1))  # two seeds: the rule cannot decide
    runs = runs_of(tmp_path)
    diffs = remedies.remedy_differences(runs)
    got = {(d.objective, d.model, d.against, d.metric): d for d in diffs}
    assert ("elbo", "skip-vae", "vae", "mi") not in got  # skip - plain already says it
    bn = got[("bn-vae", "vae", "vae", "mi")]
    a = runs[(runs["objective"] == "elbo") & (runs["model"] == "vae")].set_index("seed")["mi"]
    b = runs[(runs["objective"] == "bn-vae") & (runs["model"] == "vae")].set_index("seed")["mi"]
    assert bn.check.interval == report.difference(a, b)  # the Welch interval of stats
    assert bn.decision == remedies.ABOVE and math.isclose(bn.check.interval.estimate, 2.0)
    assert got[("bn-vae", "vae", "vae", "nll")].decision == remedies.ABOVE  # a cost
    assert got[("bn-vae", "skip-vae", "plain", "mi")].decision == remedies.ABOVE
    assert got[("bn-vae", "skip-vae", "plain", "nll")].decision == remedies.BELOW
    assert got[("bn-vae", "skip-vae", "vae", "mi")].decision == remedies.ABOVE  # the two remedies together
    assert got[("elbo", "skip-vae", "plain", "mi")].decision == remedies.UNDECIDED
    assert got[("elbo", "skip-vae", "plain", "mi")].why == "the interval contains 0"
    beta = got[("beta", "vae", "vae", "mi")]
    assert beta.decision == remedies.UNDECIDED and beta.why == "2 seeds on a side, the rule needs 3"
    table = remedies.differences_table(diffs)
    row = table[table["comparison"] == "VAE + BN-VAE − VAE"].iloc[0]
    assert row["seeds"] == "3" and row["Δ MI"].startswith("+2.00 [") and row["Δ MI"].endswith("> 0")
    assert row["gate"] == "–"

    lines = remedies.remedy_sentences(diffs)
    assert lines[0].startswith("Whether skips add information to the plain VAE cannot be decided (the interval "
                               "contains 0; MI")
    bn_line = next(line for line in lines if line.startswith("BN-VAE"))
    assert "keeps more information in $z$ than the plain VAE (MI +2.00 [" in bn_line
    assert "at a higher NLL (NLL +1.00 [" in bn_line and "skips add information to it (MI +1.00 [" in bn_line
    assert bn_line.endswith(") at a lower NLL (NLL -2.00 [" + bn_line.split("at a lower NLL (NLL -2.00 [")[1])
    beta_line = next(line for line in lines if line.startswith("The β-VAE"))
    assert "cannot be said to keep more or less information" in beta_line and "the rule needs 3" in beta_line
    summary = remedies.remedy_summary(diffs, "mnist")
    assert summary.startswith("On MNIST at the cpu profile, judged on MI: more information in $z$ than the plain "
                              "VAE: BN-VAE; not decided: the β-VAE; skips add information to: BN-VAE; skips not "
                              "decided for: the plain ELBO")


def test_gates_make_a_difference_not_tested(tmp_path):
    write_cell(tmp_path, "elbo", "vae", 7.55, 100.0, spread=0.01)  # log 2000 = 7.60: at the MI ceiling
    write_cell(tmp_path, "free-bits", "vae", 7.58, 100.0, spread=0.01)
    diffs = remedies.remedy_differences(runs_of(tmp_path))
    mi = next(d for d in diffs if d.metric == "mi")
    assert mi.decision == remedies.NOT_TESTED and mi.why.startswith("MI ceiling")
    assert "not tested at this scale: MI ceiling" in remedies.remedy_sentences(diffs)[0]
    assert next(d for d in diffs if d.metric == "nll").decision == remedies.UNDECIDED
    write_cell(tmp_path, "elbo", "vae", 1.0, 100.0, profile="smoke")
    write_cell(tmp_path, "bn-vae", "vae", 3.0, 100.0, profile="smoke")
    smoke = remedies.remedy_differences(runs_of(tmp_path, profile="smoke"))
    assert {d.decision for d in smoke} == {remedies.NOT_TESTED} and smoke[0].why.startswith("smoke profile")


def test_yahoo_differences_pass_the_unigram_floor_of_their_own_seeds(tmp_path, monkeypatch):
    write_cell(tmp_path, "elbo", "vae", 0.01, 300.0, dataset="yahoo", nll_subset="random")  # as SETTINGS
    write_cell(tmp_path, "bn-vae", "vae", 3.0, 290.0, dataset="yahoo", nll_subset="random")
    runs = runs_of(tmp_path, dataset="yahoo")

    def gates(floors):
        return {d.check.gates[0] if d.check.gates else "" for d in remedies.remedy_differences(runs, floors)}

    assert gates({0: 320.0, 1: 320.0, 2: 320.0}) == {""}  # 300 and 290 are more than 2% below 320
    worst = gates({0: 300.0, 1: 305.0, 2: 310.0})  # mean floor 305: 300 is not 2% (6.1) below it
    assert worst == {"unigram floor: NLL VAE 300.0 not 2% below the unigram model's 305.0 on the same documents"}
    assert gates({0: 320.0}) == {"unigram floor: none computed for seeds 1, 2 (execute the remedies notebook)"}
    assert {d.decision for d in remedies.remedy_differences(runs, {0: 300.0, 1: 300.0, 2: 300.0})} \
        == {remedies.NOT_TESTED}
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))  # the stored references: none yet, then each seed's
    assert gates(None) == {"unigram floor: none computed for seeds 0, 1, 2 (execute the remedies notebook)"}
    for seed in (0, 1, 2):
        atomic_write_json(tmp_path / "remedies" / "reference" / f"unigram-random-s{seed}.json",
                                       {"settings": {"profile": "cpu", "seed": seed}, "metrics": {"nll": 320.0}})
    assert report.claims.unigram_floors(runs, "cpu", "remedies") == {0: 320.0, 1: 320.0, 2: 320.0}
    assert gates(None) == {""}


def test_published_numbers_beside_ours_and_the_setup(tmp_path):
    quoted = report.paper_numbers()["tables"]["remedies_yahoo"]
    zhu = report.paper_numbers()["tables"]["yahoo_zhu2020"]
    assert quoted.attrs["experiment"] == "remedies" and quoted.attrs["keys"] == ["objective", "skip"]
    for _, row in quoted.iterrows():  # the same quotes as the Yahoo page's, typed once
        same = zhu[zhu["model"] == row["model"]].iloc[0]
        assert all(row[c] == same[c] for c in ("nll", "kl", "mi", "au_0.01", "origin"))
    assert set(quoted["objective"]) == set(OBJECTIVES) and "SA-VAE" not in set(quoted["model"])
    write_cell(tmp_path, "bn-vae", "vae", 3.0, 300.0, dataset="yahoo")
    table = report.side_by_side(report.load_runs("remedies", tmp_path), "remedies_yahoo")
    assert list(table.columns[:5]) == ["published", "from", "objective", "skips", "seeds"]
    bn = table[table["published"] == "BN-VAE (0.6)"].iloc[0]
    assert bn["skips"] == "no" and bn["seeds"] == "3" and bn["NLL paper"] == "326.70" and bn["MI ours"] == "3.00 ± 0.05"
    assert (table[table["published"] != "BN-VAE (0.6)"]["MI ours"] == "not yet run").all()

    setup = remedies.setup_differences(report.load_runs("remedies", tmp_path))
    assert list(setup.columns) == ["setting", "published", "ours (cpu)"]
    rows = dict(zip(setup["setting"], zip(setup["published"], setup["ours (cpu)"])))
    cpu = report.load_runs("remedies", tmp_path).iloc[0]
    assert rows["training documents"] == ("100,000", remedies.whole_split_text("n_train"))
    assert "9,000 without the 100k training file" in rows["training documents"][1]
    assert rows["decoder LSTM units"] == ("1,024", f"{int(cpu['dec_hidden']):,}")
    assert rows["test documents"] == ("10,000", f"{int(cpu['n_test']):,}")
    caption = remedies.setup_caption(setup)
    assert caption.startswith("Yahoo: every setting the published remedies' numbers state") and "cpu profile" in caption
    before = remedies.setup_differences(report.load_runs("remedies", Path("/nonexistent")), profile="paper")
    assert dict(zip(before["setting"], before["ours (paper)"]))["decoder LSTM units"] == "1,024"


def test_figure_one_point_per_run_and_its_caption(tmp_path):
    import matplotlib.pyplot as plt

    write_cell(tmp_path, "elbo", "vae", 1.0, 100.0)
    write_cell(tmp_path, "bn-vae", "skip-vae", 3.0, 101.0)
    write_cell(tmp_path, "elbo", "vae", 0.1, 300.0, dataset="yahoo")
    runs = report.load_runs("remedies", tmp_path)
    fig, caption = remedies.plot_mi_nll(runs)
    points = [len(c.get_offsets()) for ax in fig.axes for c in ax.collections]
    assert sum(points) == len(runs) == 9 and [ax.get_title() for ax in fig.axes] == ["Yahoo", "MNIST"]
    assert caption == ("One point per run (9 runs): MI against NLL. One panel per dataset, each with its own axes: "
                       "yahoo (3 runs); mnist (6 runs). Colour: objective (elbo; bn-vae); marker: model (vae: circle; "
                       "skip-vae: triangle). NLL (Yahoo: nats per document; MNIST: nats per image) and MI in nats, "
                       "on the test set.")
    assert fig.axes[0].get_xlabel() == "NLL (nats per document)"
    plt.close(fig)


@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_the_notebooks_grid_is_the_sweep_files(profile):
    """At the cpu and paper profiles the notebook's declared runs are the sweep files' grids (42 runs each)."""
    from skipvae.experiments import experiment

    declared = experiment("remedies").configs(profile)
    for dataset, path in (("yahoo", "sweeps/cpu_remedies_yahoo.yaml"), ("mnist", "sweeps/cpu_remedies_mnist.yaml")):
        configs = load_sweep(REPO / path, profile=profile).configs
        assert len(configs) == 42 and {c.profile for c in configs} == {profile}
        assert {c.objective for c in configs} == set(OBJECTIVES) and {c.dataset for c in configs} == {dataset}
        assert {c.key() for c in declared[dataset]} == {c.key() for c in configs}
        assert {c.model for c in configs} == set(report.EXPERIMENTS["remedies"].models)


def test_load_sweep_at_another_profile(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nbase: {dataset: mnist, arch: mlp, profile: cpu}\ngrid: {seed: [0, 1]}\n")
    assert [c.profile for c in load_sweep(path).configs] == ["cpu", "cpu"]
    assert [c.epochs for c in load_sweep(path, profile="smoke").configs] == [1, 1]
    assert pd.Series([c.profile for c in load_sweep(path, profile="paper").configs]).eq("paper").all()


def test_notebook_parameter_kinds_of_the_remedies():
    from skipvae.errors import ConfigError
    from skipvae.params import check_param

    assert check_param("datasets", ["yahoo", "mnist"], "datasets") == ["yahoo", "mnist"]
    assert check_param("objectives", list(OBJECTIVES), "objectives") == list(OBJECTIVES)
    for value, kind in ((["bn"], "objectives"), ([], "objectives"), (["cifar"], "datasets")):
        with pytest.raises(ConfigError, match=kind):
            check_param(kind, value, kind)


def test_kl_annealings_warm_up_is_the_configs_at_the_cpu_profile_at_every_profile():
    from skipvae.config import make_config
    from skipvae.experiments import experiment
    from skipvae.experiments.remedies import setting_warmup_epochs

    assert setting_warmup_epochs("yahoo") == make_config("yahoo", "vae", "cpu").warmup_epochs == 3  # the profile's own
    assert setting_warmup_epochs("mnist") == make_config("mnist", "vae", "cpu", "mlp").epochs // 2 == 5
    for profile in ("cpu", "paper"):
        for dataset, configs in experiment("remedies").configs(profile).items():
            assert {c.warmup_epochs for c in configs if c.objective == "kl-anneal"} == {setting_warmup_epochs(dataset)}


def test_the_remedies_datasets_are_declared_once_and_a_dataset_without_a_setting_is_refused():
    from skipvae.errors import ConfigError
    from skipvae.experiments import experiment
    from skipvae.experiments.remedies import DATASETS, SETTINGS

    exp = experiment("remedies")
    assert remedies.DATASETS is DATASETS == tuple(SETTINGS) == ("yahoo", "mnist")
    assert exp.default("datasets") == list(DATASETS) and set(exp.configs("cpu")) == set(DATASETS)
    with pytest.raises(ConfigError, match=r"^datasets=\['mnist', 'omniglot'\] is impossible: the remedies have no "
                                          r"setting for 'omniglot'; valid datasets: yahoo, mnist\.$"):
        exp.parameters("cpu", {"datasets": ["mnist", "omniglot"]})


def test_the_pages_views_fill_in_from_the_records(tmp_path, monkeypatch):
    """What the book's remedies-table shows (views.remedy_views) and `python -m skipvae table remedies` prints."""
    from skipvae.report import views

    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    assert [v.title for v in views.remedy_views("yahoo")] == ["Remedies on Yahoo"]  # not run yet: the grid alone
    write_cell(tmp_path, "elbo", "vae", 1.0, 100.0)
    write_cell(tmp_path, "bn-vae", "vae", 3.0, 101.0)
    shown = views.remedy_views("mnist")
    assert [v.title for v in shown] == ["Remedies on MNIST", "Remedies on MNIST: differences"]
    assert len(shown[0].table) == 2 and shown[0].caption.startswith("MNIST at the cpu profile")
    summary, *findings = shown[1].said  # shown below the table, and printed after its caption
    assert summary.startswith("On MNIST at the cpu profile, judged on MI: more information in $z$ than the plain VAE")
    assert any(line.startswith("BN-VAE keeps more information in $z$ than the plain VAE") for line in findings)
    assert shown[1].caption == remedies.DIFFERENCES_CAPTION and shown[1].to_text().endswith(findings[-1] + "\n")
    assert shown[1].to_dict()["said"] == [summary, *findings]
    titles = [v.title for v in views.experiment_views("remedies")]
    assert titles[0] == "Our runs: Skips among the remedies" and "Remedies on MNIST: differences" in titles
