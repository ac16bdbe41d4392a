"""Command-line error paths: bad arguments fail before any data is loaded, with the valid choices listed."""

import json
import subprocess
import sys

import pytest

from skipvae.cli import main


@pytest.fixture(autouse=True)
def no_data(monkeypatch, tmp_path):
    # If the CLI touched the data before validating, it would fail on this missing folder instead.
    monkeypatch.setenv("SKIPVAE_DATA", str(tmp_path / "no-such-data"))


@pytest.mark.parametrize("argv,expected", [
    (["train", "--model", "vea"], "invalid choice: 'vea' (choose from 'vae', 'skip-vae', 'sa-vae', 'skip-sa-vae', 'lm')"),
    (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["train", "--profile", "huge"], "invalid choice: 'huge'"),
])
def test_unknown_choices_exit_2_with_choices(argv, expected, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("argv,expected", [
    (["train", "--latent-dim", "0"], "latent_dim=0 is impossible"),
    (["train", "--latent-dim", "-1"], "latent_dim=-1 is impossible"),
    (["train", "--dec-layers", "0"], "dec_layers=0"),
    (["train", "--dec-layers", "3", "--dec-kernels", "3,3"], "dec_kernels has 2 sizes but dec_layers=3"),
    (["train", "--dec-kernels", "a,b"], "comma-separated integers"),
    (["train", "--dataset", "yahoo", "--arch", "pixelcnn"], "unknown arch 'pixelcnn' for dataset 'yahoo'; valid choices: lstm"),
    (["train", "--model", "sa-vae", "--svi-steps", "0"], "needs svi_steps >= 1"),
    (["evaluate", "nowhere/best.pt"], "no checkpoint at nowhere/best.pt"),
    (["sweep", "nowhere.yaml"], "no sweep file at nowhere.yaml"),
])
def test_impossible_values_fail_before_data(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err


def test_help_documents_every_train_option():
    out = subprocess.run([sys.executable, "-m", "skipvae", "train", "--help"], capture_output=True, text=True,
                         check=True).stdout
    from skipvae.cli import TRAIN_OPTIONS
    for name in TRAIN_OPTIONS:
        assert "--" + name.replace("_", "-") in out
    for flag in ("--dataset", "--arch", "--model", "--profile", "--seed", "--out", "--data-dir", "--time-budget"):
        assert flag in out


def test_split_sizes_take_all_on_the_command_line(capsys):
    main(["train", "--dataset", "mnist", "--profile", "cpu", "--n-train", "all", "--n-test", "7", "--dry-run"])
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["n_train"], cfg["n_test"]) == (None, 7)
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "mnist", "--n-train", "some", "--dry-run"])
    assert "--n-train: invalid split size 'some': an integer or 'all'" in capsys.readouterr().err
