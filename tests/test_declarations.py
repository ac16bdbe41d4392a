"""Each experiment declared once (skipvae/experiments/<name>.py): its parameters, its runs per profile and the sweep
files generated from them; every committed record is one of its experiment's declared runs."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from skipvae.cli import main
from skipvae.errors import ConfigError
from skipvae.experiments import EXPERIMENTS, experiment, sweep_files
from skipvae.experiments.declaration import (FORCE, Block, Experiment, Param, Sweep, block, first_only, sweep_spec,
                                            sweep_text)
from skipvae.notebook import annotation, parameters_cell
from skipvae.params import check_notebook_parameters, check_param
from skipvae.records import REPO_ROOT
from skipvae.report.budget import load_plan, row_runs
from skipvae.sweepfile import expand_sweep, load_sweep

SWEEPS = REPO_ROOT / "sweeps"
PLANS = ("cpu_plan", "scale_plan")  # budget plans, not sweeps


def committed_records(name: str) -> list[dict]:
    folder = REPO_ROOT / "results" / name / "runs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def test_every_sweep_file_is_what_its_declaration_generates():
    assert main(["sweeps", "--check"]) == 0
    committed = {p.stem for p in SWEEPS.glob("*.yaml")} - set(PLANS)
    assert committed == set(sweep_files())  # no sweep file is typed by hand
    for stem, text in sweep_files().items():
        assert text.startswith("# Generated from skipvae/experiments/")
        assert len(load_sweep(SWEEPS / f"{stem}.yaml").configs) == int(re.search(r"(\d+) runs\.", text)[1])


def test_a_stale_sweep_file_is_reported_and_rewritten(tmp_path, capsys):
    assert main(["sweeps", "--write", "--dir", str(tmp_path)]) == 0
    stale = tmp_path / "cpu_table1.yaml"
    stale.write_text(stale.read_text().replace("seed: [0, 1, 2]", "seed: [0]"))
    assert main(["sweeps", "--check", "--dir", str(tmp_path)]) == 1
    assert "cpu_table1.yaml is not what its declaration generates" in capsys.readouterr().err
    assert main(["sweeps", "--dir", str(tmp_path)]) == 0
    assert stale.read_text() == sweep_files()["cpu_table1"]


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_committed_record_is_a_declared_run_of_its_experiment(name):
    records = committed_records(name)
    by_profile = Counter(r["config"]["profile"] for r in records)
    for profile in by_profile:
        declared = {c.run_name() for c in experiment(name).all_configs(profile)}
        assert {r["name"] for r in records if r["config"]["profile"] == profile} <= declared


def test_the_declared_cpu_runs_have_records_except_the_plan_rows_not_run_and_the_runs_planned_next():
    not_run = {c.run_name() for row, configs in row_runs(load_plan(SWEEPS / "cpu_plan.yaml")) if row.get("not_run")
               for c in configs or []}
    not_run |= {c.run_name() for _, configs in row_runs(load_plan(SWEEPS / "scale_plan.yaml")) for c in configs or []}
    for name, exp in EXPERIMENTS.items():
        have = {r["name"] for r in committed_records(name)}
        missing = {c.run_name() for c in exp.all_configs("cpu")} - have - not_run
        assert missing == set(), name


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_the_declared_defaults_are_valid_parameters_and_the_notebook_cell_is_generated(name):
    exp = experiment(name)
    given = {"profile": "cpu", **exp.defaults(), **({"threads": 0} if exp.threads else {})}
    assert check_notebook_parameters(given, exp.spec).keys() == given.keys()
    notebook = json.loads((REPO_ROOT / exp.notebook).read_text())
    cell = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "".join(cell["source"]) == parameters_cell(name)  # names from the declaration; no value typed twice
    code = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert f'EXPERIMENT = "{name}"' in code and "out_dir, params = start(EXPERIMENT, globals(), _names)" in code


def test_every_force_parameter_is_the_shared_one():
    forces = {name: next(p for p in exp.params if p.name == "force") for name, exp in EXPERIMENTS.items()}
    assert len(forces) == len(EXPERIMENTS)
    assert {name: (p.kind, p.default) for name, p in forces.items()} == {n: ("bool", False) for n in EXPERIMENTS}
    assert forces["mnist"] is FORCE and forces["theory"].about.startswith("rewrite theory.json")


def test_no_helper_is_defined_in_more_than_one_notebook():
    defined = Counter()
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        defined.update(set(re.findall(r"^def (\w+)\(", code, re.M)))
    assert [name for name, n in defined.items() if n > 1] == []


def test_the_smoke_profile_reduces_and_the_defaults_are_copies():
    mnist = experiment("mnist")
    smoke = mnist.parameters("smoke")
    assert smoke["seeds"] == [0] and smoke["mlp_layers"] == [2] and mnist.parameters("cpu")["seeds"] == [0, 1, 2]
    mnist.defaults()["seeds"].append(7)
    assert mnist.defaults()["seeds"] == [0, 1, 2]


def test_an_unknown_parameter_or_block_is_one_config_error_naming_it():
    mnist = experiment("mnist")
    with pytest.raises(ConfigError, match=r"^unknown parameter seedz=\[0\] of experiment 'mnist'; valid parameters: "
                                          r"seeds, sa_seeds, force, models, "):
        mnist.configs("cpu", {"seedz": [0]})
    with pytest.raises(ConfigError, match=r"^unknown parameter 'seedz' of experiment 'mnist'; valid parameters: seeds"):
        mnist.default("seedz")
    with pytest.raises(ConfigError, match=r"^sweep x: unknown block 'pixelcnm' of experiment 'mnist' at profile "
                                          r"'cpu'; its blocks there: pixelcnn, mlp, classification\.$"):
        sweep_spec(mnist, Sweep("x", "cpu", "A typo.", blocks=("pixelcnm",)))
    with pytest.raises(ConfigError, match=r"^sweep x: experiment 'theory' has no runs at profile 'cpu'"):
        sweep_spec(experiment("theory"), Sweep("x", "cpu", "No runs."))


def test_a_parameter_of_no_known_kind_is_one_config_error_naming_it():
    with pytest.raises(ConfigError, match=r"^parameter 'n' of experiment 'toy' has default None and "
                                          r"kind='positive_int'; a default of None needs one of the kinds "
                                          r"optional_positive_int, optional_seeds\.$"):
        annotation("toy", Param("n", "positive_int", None, "a size"))
    assert annotation("toy", Param("n", "optional_positive_int", None, "a size")) == "int | None"
    assert annotation("toy", Param("n", "positive_int", 3, "a size")) == "int"
    with pytest.raises(ConfigError, match=r"^n=3 has the unknown parameter kind 'positve_int'; valid kinds: int, "):
        check_param("n", 3, "positve_int")
    with pytest.raises(ConfigError, match=r"^n=3 has the unknown parameter kind 'positve_int'"):
        check_param("n", 3, "optional_positve_int")


def test_a_parameter_changes_the_runs_of_its_block_only():
    latent = experiment("latent_dim")
    assert len(latent.all_configs("cpu")) == 30
    fewer = latent.configs("cpu", {"latent_dims": [20], "seeds": [0, 1]})["pixelcnn"]
    assert sorted((c.latent_dim, c.model, c.seed) for c in fewer) == [
        (20, m, s) for m in ("skip-vae", "vae") for s in (0, 1)]
    extra = latent.configs("cpu", {"latent_dims": [100], "seeds": [0], "extra_seeds": {"100": [0, 1]}})
    assert sorted(c.seed for c in extra["pixelcnn"]) == [0, 0, 1, 1]  # papermill's string keys; seed 0 once
    depth = experiment("depth").configs("cpu", {"omniglot_depths": [], "lstm_depths": None})
    assert set(depth) == {"mnist"}  # an empty part is no block


def test_block_and_sweep_spec_semantics():
    assert block("x", {"a": 1}, {"seed": []}) is None
    b = block("x", {"dataset": "mnist"}, {"seed": []}, {"seed": [0, 1]})
    assert b == Block("x", {"dataset": "mnist"}, ({"seed": [0, 1]},))
    assert first_only({"s": [3, 4], "t": [5]}, "s") == {"s": [3], "t": [5]}

    def two_parts(profile, p):
        return [block("a", {"dataset": "mnist", "arch": "mlp", "profile": profile}, {"seed": p["seeds"]}),
                block("b", {"dataset": "mnist", "arch": "pixelcnn", "profile": profile},
                      {"model": ["vae"], "seed": p["seeds"]})]

    exp = Experiment("toy", "Toy", ("model",), params=(Param("seeds", "seeds", [0, 1], "seeds"),),
                     make_blocks=two_parts)
    spec = sweep_spec(exp, Sweep("toy_cpu", "cpu", "A toy.", order=("seed",)))
    assert spec == {"name": "toy-cpu", "base": {"dataset": "mnist", "profile": "cpu"},
                    "grid": [{"seed": [0, 1], "arch": ["mlp"]}, {"seed": [0, 1], "arch": ["pixelcnn"],
                                                                 "model": ["vae"]}]}
    text = sweep_text(exp, Sweep("toy_cpu", "cpu", "A toy.", params={"seeds": [3]}))
    assert "A toy. 2 runs." in text
    assert {c.seed for c in expand_sweep({"base": {}, "grid": [{"seed": [3]}]}).configs} == {3}
    assert max(len(line) for line in text.splitlines()) <= 120


def test_the_paper_scale_sweeps_hold_the_runs_that_are_training():
    """The paper-scale runs started from the sweep files keep their keys: the generated files hold the same runs."""
    table3 = {c.run_name() for c in load_sweep(SWEEPS / "paper_table3_mlp.yaml").configs}
    assert "mnist-mlp-vae-z50-l2-s0-b0ea48340d3c" in table3 and len(table3) == 18
    assert [c.dec_layers for c in load_sweep(SWEEPS / "paper_table3_mlp.yaml").configs[:6]] == [2] * 6


def test_the_notebook_shows_its_parameters():
    from skipvae.notebook import parameters_table

    table = parameters_table("mnist", {**experiment("mnist").defaults(), "seeds": [0]})
    row = table[table["parameter"] == "seeds"].iloc[0]
    assert (row["value"], row["default"]) == ("[0]", "[0, 1, 2]") and row["meaning"] == "seeds per model"
    assert (table[table["parameter"] == "force"].iloc[0]["default"]) == ""


def test_start_gives_the_notebook_the_values_its_profile_uses(monkeypatch):
    import IPython.display

    from skipvae.notebook import start

    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: None)
    exp = experiment("theory")
    namespace = {"profile": "smoke", **exp.defaults()}
    _, params = start("theory", namespace, set())
    assert params == exp.parameters("smoke") and len(params["seeds"]) == 3 and len(params["depths"]) == 3


def test_the_figure_only_depths_get_exactly_the_figure_seeds():
    depth = experiment("depth").configs("cpu", {"figure_seeds": [0, 5]})["mnist"]
    assert {c.seed for c in depth if c.dec_layers == 2} == {0, 5}
    assert {c.seed for c in depth if c.dec_layers == 1} == {0, 1, 2}


def test_the_sa_models_get_every_seed_at_the_paper_profile_and_the_first_at_the_reduced_ones():
    def sa_seeds(name, profile, **params):
        runs = experiment(name).all_configs(profile, params)
        return {(c.model, c.latent_dim): sorted({r.seed for r in runs if (r.model, r.latent_dim) ==
                                                 (c.model, c.latent_dim)}) for c in runs if c.semi_amortized}

    paper = sa_seeds("yahoo", "paper")
    assert set(paper) == {(m, d) for m in ("sa-vae", "skip-sa-vae") for d in (32, 64)}
    assert set(map(tuple, paper.values())) == {(0, 1, 2)}
    assert set(map(tuple, sa_seeds("yahoo", "cpu").values())) == {(0,)} == set(map(tuple, sa_seeds("mnist",
                                                                                             "smoke").values()))
    assert set(map(tuple, sa_seeds("omniglot", "paper", seeds=[4, 5]).values())) == {(4, 5)}
    assert set(map(tuple, sa_seeds("omniglot", "cpu", seeds=[4, 5]).values())) == {(4,)}
    assert set(map(tuple, sa_seeds("mnist", "paper", sa_seeds=[7]).values())) == {(7,)}  # given: kept
    assert sorted({c.seed for c in load_sweep(SWEEPS / "yahoo_paper.yaml").configs if c.semi_amortized}) == [0, 1, 2]
