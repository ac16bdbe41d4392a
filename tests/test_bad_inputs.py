"""Every bad input of the CLI, the sweep files and the notebooks' parameters is refused before any data loads:
exit code 2, one line naming the parameter, the value and what is allowed, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skipvae.cli import main
from skipvae.errors import ConfigError
from skipvae.params import check_notebook_parameters, check_param


@pytest.fixture(autouse=True)
def no_data(monkeypatch, tmp_path):
    # had the data been touched before validation, this missing folder would fail first with another message
    monkeypatch.setenv("SKIPVAE_DATA", str(tmp_path / "no-such-data"))


def sweep_file(tmp_path, **fields) -> str:
    spec = {"name": "t", "base": {"dataset": "mnist", "profile": "smoke"}, "grid": {"model": ["vae"]}}
    for key, value in fields.items():
        if key in ("base", "name"):
            spec[key] = value
        else:
            spec["base"][key] = value
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


TRAIN = ["train", "--profile", "smoke"]
CLI_CASES = [
    (TRAIN + ["--seed", "-1"], ["seed=-1", "[0, "]),
    (TRAIN + ["--lr", "nan"], ["lr=nan", "finite number > 0"]),
    (TRAIN + ["--lr", "-1"], ["lr=-1.0", "> 0"]),
    (TRAIN + ["--device", "nope"], ["device='nope'", "valid devices"]),
    (TRAIN + ["--batch-size", "500"], ["batch_size=500", "n_train=100"]),
    (TRAIN + ["--dropout", "inf"], ["dropout=inf", "finite"]),
    (TRAIN + ["--time-budget", "-5"], ["time_budget=-5.0", "> 0"]),
    (["sweep", "nowhere.yaml", "--slurm", "foo"], ["--slurm 'foo'", "KEY=VALUE"]),
    (["sweep", "nowhere.yaml", "--piece-seconds", "0"], ["piece_seconds=0.0"]),
    (["evaluate", "README.md", "--iw-samples", "0"], ["iw_samples=0", "positive integer"]),
    (["evaluate", "README.md"], ["README.md is not a readable checkpoint"]),
    # issue 28: sizes checked against the manifest's split sizes before any data loads, the right parameter blamed
    (TRAIN + ["--n-train", "60000"], ["n_train=60000", "at most 50000"]),
    (TRAIN + ["--n-train", "1e12"], ["n_train=1000000000000", "at most 50000"]),
    (TRAIN + ["--dataset", "yahoo", "--n-train", "100001"], ["n_train=100001", "at most 100000"]),
    (TRAIN + ["--n-test", "10001"], ["n_test=10001", "at most 10000"]),
    (TRAIN + ["--n-train", "all", "--batch-size", "60000"], ["batch_size=60000", "50000 examples"]),
    (TRAIN + ["--n-eval-nll", "20000"], ["n_eval_nll=20000", "at most 10000"]),
    (TRAIN + ["--svi-steps", "-1"], ["svi_steps=-1", "non-negative integer"]),
    (TRAIN + ["--n-train", "-1"], ["n_train=-1", "positive integer"]),
    (TRAIN + ["--n-train", "0"], ["n_train=0", "positive integer"]),
    (["sweep", "nowhere.yaml", "--out", "README.md"], ["out='README.md'", "is a file"]),
    (TRAIN + ["--out", "README.md"], ["out='README.md'", "is a file"]),
    (TRAIN + ["--out", "README.md/runs"], ["out='README.md/runs'", "inside README.md, which is a file"]),
]
SWEEP_CASES = [
    (dict(lr="fast"), ["lr='fast'", "finite number"]),
    (dict(dropout="x"), ["dropout='x'", "finite number"]),
    (dict(seed="abc"), ["seed='abc'", "integer"]),
    (dict(seed=-2), ["seed=-2"]),
    (dict(latent_dim=True), ["latent_dim=True"]),
    (dict(base=[1, 2]), ["base=[1, 2]", "mapping"]),
    (dict(name=[1]), ["name=[1]", "string"]),
]


@pytest.mark.parametrize("argv,words", CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_refuses(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    for word in words:
        assert word in err, (word, err)


def checkpoint(path, weights_of=None, **config):
    """A best.pt of a smoke MLP run whose weights are those of the config `weights_of` (default: its own)."""
    import torch

    from skipvae.config import make_config
    from skipvae.models import build_model

    cfg = make_config("mnist", "vae", "smoke", arch="mlp", **config)
    torch.save({"config": cfg.to_dict(), "model": build_model(weights_of or cfg).state_dict()}, path)
    return str(path)


def evaluate_cases():
    from skipvae.config import make_config

    other = make_config("mnist", "vae", "smoke", arch="mlp", latent_dim=7)
    return [  # (checkpoint maker, extra arguments, words): all refused before any data loads
        (lambda p: checkpoint(p, weights_of=other), [], ["holds the weights of another model", "mnist-mlp-vae-z4"]),
        (lambda p: checkpoint(p, weights_of=make_config("mnist", "skip-vae", "smoke", arch="pixelcnn")), [],
         ["holds the weights of another model"]),
        (lambda p: checkpoint(p), ["--out", "{tmp}"], ["out=", "is a folder"]),
        (lambda p: checkpoint(p), ["--out", "README.md/m.json"], ["inside README.md, which is a file"]),
        (lambda p: str(p.parent), [], ["no checkpoint at", "best.pt or last.pt"]),
    ]


@pytest.mark.parametrize("case", range(len(evaluate_cases())))
def test_evaluate_refuses_before_the_data_loads(case, tmp_path, capsys):
    make, extra, words = evaluate_cases()[case]
    path = make(tmp_path / "best.pt")
    assert main(["evaluate", path, *[a.format(tmp=tmp_path) for a in extra]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, (word, err)


def test_cli_refuses_cuda_where_there_is_none(capsys):
    import torch

    if torch.cuda.is_available():
        assert main(TRAIN + ["--device", f"cuda:{torch.cuda.device_count()}"]) == 2
    else:
        assert main(TRAIN + ["--device", "cuda"]) == 2
    assert "device=" in capsys.readouterr().err


@pytest.mark.parametrize("fields,words", SWEEP_CASES, ids=[str(f) for f, _ in SWEEP_CASES])
def test_sweep_file_refuses(fields, words, tmp_path, capsys):
    assert main(["sweep", sweep_file(tmp_path, **fields), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "runs").exists()


REPO = Path(__file__).resolve().parent.parent
PAPER_CASES = [  # a paper-profile start on a machine without a GPU (issue 28): refused unless --confirm-long
    ["train", "--profile", "paper"],
    ["train", "--profile", "paper", "--arch", "mlp", "--no-progress"],
    ["sweep", str(REPO / "sweeps" / "paper_table3_mlp.yaml"), "--jobs", "2", "--threads-per-run", "1",
     "--piece-seconds", "3600"],
    ["sweep", str(REPO / "sweeps" / "mnist_paper.yaml"), "--executor", "submitit-local"],
]


@pytest.fixture
def no_gpu(monkeypatch, tmp_path):
    """No CUDA device, and a results folder with one finished paper-profile MLP VAE record of 2 hours (the budget
    model's estimate of its shape)."""
    import json

    import torch

    from skipvae.config import make_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    record = {"status": "finished", "config": make_config("mnist", "vae", "paper", arch="mlp", seed=9).to_dict(),
              "wall_time_s": 7200.0}
    (tmp_path / "results" / "mnist" / "runs").mkdir(parents=True)
    (tmp_path / "results" / "mnist" / "runs" / "r.json").write_text(json.dumps(record))


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("argv", PAPER_CASES, ids=[" ".join(a[:2]) + f" {i}" for i, a in enumerate(PAPER_CASES)])
def test_the_paper_profile_without_a_gpu_needs_confirmation(argv, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: profile='paper' on a machine without a GPU: ") and err.count("\n") == 1, err
    assert "--confirm-long to start anyway" in err and ("by the budget model" in err or "no estimate" in err), err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))


ESTIMATES = [  # (argv, words of the estimate): from the record of the fixture, else none
    (["train", "--profile", "paper", "--arch", "mlp", "--seed", "3"],
     ["1 run(s) at the paper profile: about 2.0 h on one CPU thread by the budget model"]),
    (["train", "--profile", "paper", "--arch", "mlp", "--model", "skip-vae"], ["no estimate", "likely days"]),
    (["sweep", str(REPO / "sweeps" / "paper_table3_mlp.yaml")],
     ["18 run(s) at the paper profile: at least 6.0 h on one CPU thread", "of the 3 run(s) with an estimate); no "
      "estimate for 15 run(s) (15 with no record of their model at any scale)"]),
]


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("argv,words", ESTIMATES, ids=[" ".join(a[:4]) for a, _ in ESTIMATES])
def test_the_refusal_gives_the_budget_models_estimate(argv, words, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)


@pytest.mark.usefixtures("no_gpu")
def test_confirm_long_starts_the_paper_profile_with_its_estimate_on_stderr(tmp_path, capsys, monkeypatch):
    import skipvae.sweep
    import skipvae.train

    started = []
    monkeypatch.setattr(skipvae.train, "train", lambda cfg, *a, **k: started.append(cfg) or {"status": "paused"})
    monkeypatch.setattr(skipvae.sweep, "run_parallel", lambda todo, *a: started.extend(c for c, _ in todo) or {})
    argv = ["train", "--profile", "paper", "--arch", "mlp", "--seed", "3", "--out", str(tmp_path), "--confirm-long"]
    assert main(argv) == 0
    sweep = ["sweep", str(REPO / "sweeps" / "paper_table3_mlp.yaml"), "--jobs", "2", "--out", str(tmp_path),
             "--confirm-long"]
    assert main(sweep) == 0
    err = capsys.readouterr().err
    assert err.count("on a machine without a GPU") == 2 and err.count("starting (--confirm-long)") == 2, err
    assert "about 2.0 h" in err and len(started) == 1 + 18


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("argv", [["train", "--profile", "paper", "--dry-run"],
                                  ["sweep", str(REPO / "sweeps" / "mnist_paper.yaml"), "--dry-run"]],
                         ids=["train", "sweep"])
def test_a_dry_run_of_the_paper_profile_needs_no_confirmation(argv, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path)]) == 0
    assert "confirm-long" not in capsys.readouterr().err


def test_the_paper_profile_on_a_gpu_needs_no_confirmation(tmp_path, capsys, monkeypatch):
    import torch

    import skipvae.train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(skipvae.train, "train", lambda cfg, *a, **k: {"status": "paused"})
    assert main(["train", "--profile", "paper", "--arch", "mlp", "--out", str(tmp_path)]) == 0
    assert "confirm-long" not in capsys.readouterr().err


def test_a_real_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "skipvae", *TRAIN, "--seed", "-1", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "seed=-1" in proc.stderr
    assert not list(tmp_path.iterdir())  # no empty run folder


# A notebook's parameters (what `papermill -p` / `-y` gives), checked by the same validators.
SPEC = {"profile": "profile", "seeds": "seeds", "sa_seeds": "seeds", "models": "models", "latent_dims": "positive_ints",
        "force": "bool", "extra_seeds": "extra_seeds", "threads": "optional_positive_int", "grid": "model_grid"}
NOTEBOOK_CASES = [
    ({"profile": "nope"}, ["profile='nope'", "smoke, cpu, paper"]),
    ({"models": ["nope"]}, ["models=['nope']", "'nope' is not", "skip-vae"]),
    ({"seeds": 3}, ["seeds=3", "list of non-negative integer seeds"]),
    ({"seeds": [0, -1]}, ["seeds=[0, -1]"]),
    ({"latent_dims": [32, 0]}, ["latent_dims=[32, 0]", "positive integers"]),
    ({"force": "yes"}, ["force='yes'", "true or false"]),
    ({"extra_seeds": {64: [1, "a"]}}, ["extra_seeds[64]"]),
    ({"extra_seeds": {"sixty": [1]}}, ["extra_seeds="]),
    ({"grid": {"vea": [32]}}, ["grid key='vea'", "valid choices"]),
    ({"grid": {"vae": [-1]}}, ["grid['vae']="]),
    ({"threads": 0}, ["threads=0"]),
    ({"sedes": [0]}, ["unknown notebook parameter(s) ['sedes']", "valid parameters: profile"]),
]


@pytest.mark.parametrize("given,words", NOTEBOOK_CASES, ids=[str(g) for g, _ in NOTEBOOK_CASES])
def test_notebook_parameters_refused(given, words):
    with pytest.raises(ConfigError) as err:
        check_notebook_parameters(given, SPEC)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_good_notebook_parameters_pass_unchanged():
    given = {"profile": "smoke", "seeds": [0, 1], "models": ["vae", "skip-vae"], "latent_dims": [32, 64],
             "force": False, "extra_seeds": {64: [1, 2]}, "threads": None}
    assert check_notebook_parameters(given, SPEC) == given
    assert check_param("seeds", (0,), "seeds") == [0]


@pytest.mark.parametrize("args,words", [
    (["-p", "profile", "nope"], "profile='nope' is impossible: valid choices: smoke, cpu, paper"),
    (["-p", "seeds", "3"], "seeds=3 is impossible: it must be a non-empty list"),
    (["-p", "colour", "red"], "unknown notebook parameter(s) ['colour']"),
    (["-y", "models: [nope]"], "models=['nope'] is impossible"),
])
def test_papermill_refuses_bad_parameters_in_the_first_cells(args, words, tmp_path):
    """A real papermill execution: the notebook stops at `start`, before any data loads, naming the parameter."""
    import subprocess
    import sys

    from skipvae.records import REPO_ROOT

    done = subprocess.run([sys.executable, "-m", "papermill", "--no-progress-bar", "--log-output",
                           str(REPO_ROOT / "notebooks/omniglot.ipynb"), str(tmp_path / "out.ipynb"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode != 0
    assert words in done.stdout + done.stderr
    import json

    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    failed = [c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1 and "start(EXPERIMENT" in "".join(failed[0]["source"])  # the cell after the parameters
    later = cells[cells.index(failed[0]) + 1:]
    assert all(c.get("execution_count") is None for c in later if c["cell_type"] == "code")  # nothing else ran


def test_papermill_json_keys_and_table4_grids_are_read_as_meant():
    assert check_param("extra_seeds", {"64": [1]}, "extra_seeds") == {64: [1]}  # papermill's JSON keys are strings
    grid = {"lm": [0], "vae": [32], "sa-vae": [32, 64]}
    assert check_param("grid", grid, "model_grid") == grid
    assert check_param("lstm_depths", [], "positive_ints_or_none") == []
