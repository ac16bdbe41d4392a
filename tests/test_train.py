"""The training engine on the smoke profile: resume equals uninterrupted, records, schedules, error paths."""

import json
import math

import pytest
import torch

from skipvae.config import make_config
from skipvae.errors import ConfigError, TrainingError
from skipvae.train import LAST, RECORD, TrainState, kl_weight, load_checkpoint, train, update_lr_schedule

pytestmark = pytest.mark.usefixtures("synthetic_data")  # logic, not the real files


def smoke(**kw):
    return make_config("mnist", kw.pop("model", "vae"), "smoke", n_train=50, n_valid=25, n_test=25, **kw)


def strip_times(record):
    rec = json.loads(json.dumps(record))
    for h in rec["history"]:
        h.pop("time_s"), h.pop("examples_per_s")
    return {"metrics": {k: v for k, v in rec["metrics"].items() if k != "timing"}, "history": rec["history"],
            "best_epoch": rec["best_epoch"], "best_val": rec["best_val_neg_elbo"]}


@pytest.mark.parametrize("model", ["skip-vae", "skip-sa-vae"])
def test_resume_equals_uninterrupted(tmp_path, model):
    cfg = smoke(model=model, epochs=3)
    full = train(cfg, tmp_path / "full", progress=False)
    for _ in range(2):  # one epoch per piece, as if killed after each checkpoint
        assert train(cfg, tmp_path / "pieces", progress=False, max_epochs=1)["status"] == "paused"
    pieced = train(cfg, tmp_path / "pieces", progress=False, max_epochs=1)
    assert pieced["status"] == "finished" and pieced["epochs_completed"] == 3
    assert strip_times(pieced) == strip_times(full)
    a, b = load_checkpoint(tmp_path / "full" / LAST), load_checkpoint(tmp_path / "pieces" / LAST)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_record_has_provenance_and_curves(tmp_path):
    cfg = smoke(epochs=2)
    rec = train(cfg, tmp_path / "r", progress=False)
    on_disk = json.loads((tmp_path / "r" / RECORD).read_text())
    assert on_disk["config"] == cfg.to_dict() and rec["status"] == "finished"
    assert [h["epoch"] for h in rec["history"]] == [1, 2]
    assert 1 <= rec["best_epoch"] <= 2
    for key in ("git_commit", "seed", "profile", "device", "torch", "python"):
        assert key in rec["provenance"]
    assert rec["provenance"]["profile"] == "smoke" and rec["wall_time_s"] > 0
    for key in ("nll", "neg_elbo", "kl", "mi", "au_0.01", "au_0.02"):
        assert math.isfinite(rec["metrics"][key]), key
    # A finished run is reused, not retrained.
    assert train(cfg, tmp_path / "r", progress=False) == on_disk


def test_resume_with_other_config_is_refused(tmp_path):
    train(smoke(epochs=2), tmp_path / "r", progress=False, max_epochs=1)
    with pytest.raises(ConfigError, match="different config"):
        train(smoke(epochs=2, latent_dim=3), tmp_path / "r", progress=False)


def test_nonfinite_loss_names_epoch_and_step_and_keeps_checkpoint(tmp_path, monkeypatch):
    cfg = smoke(epochs=3)
    train(cfg, tmp_path / "r", progress=False, max_epochs=1)
    before = load_checkpoint(tmp_path / "r" / LAST)
    import skipvae.train as engine

    real = engine.run_epoch

    def poisoned(model, *args, **kwargs):
        calls = {"n": 0}
        forward = model.forward

        def bad_forward(x, beta=1.0):
            out = forward(x, beta=beta)
            calls["n"] += 1
            if calls["n"] == 2:
                out["loss"] = out["loss"] * float("nan")
            return out

        model.forward = bad_forward
        return real(model, *args, **kwargs)

    monkeypatch.setattr(engine, "run_epoch", poisoned)
    with pytest.raises(TrainingError, match="epoch 2, step 2"):
        train(cfg, tmp_path / "r", progress=False)
    after = load_checkpoint(tmp_path / "r" / LAST)
    assert after["state"]["epoch"] == 1
    for k in before["model"]:
        assert torch.equal(before["model"][k], after["model"][k])


def test_nonfinite_loss_in_the_first_epoch_does_not_promise_a_checkpoint(tmp_path, monkeypatch):
    import skipvae.train as engine

    monkeypatch.setattr(engine.torch, "isfinite", lambda t: torch.tensor(False))  # every loss is "non-finite"
    with pytest.raises(TrainingError, match="at epoch 1, step 1; no epoch had finished") as err:
        train(smoke(epochs=1), tmp_path / "r", progress=False)
    assert "checkpoint" not in str(err.value) and not (tmp_path / "r" / LAST).exists()


def test_kl_warmup_is_linear_then_one():
    cfg = make_config("yahoo", "vae", "paper")  # 10 warm-up epochs from 0.1
    assert kl_weight(cfg, 0, 0, 100) == pytest.approx(0.1)
    assert kl_weight(cfg, 5, 0, 100) == pytest.approx(0.55)
    assert kl_weight(cfg, 10, 0, 100) == 1.0 and kl_weight(cfg, 25, 3, 100) == 1.0
    assert kl_weight(make_config("mnist", "vae", "paper"), 0, 0, 10) == 1.0


def test_text_lr_schedule_halves_after_stall_then_every_epoch_and_stops():
    cfg = make_config("yahoo", "vae", "paper")  # decay after epoch 15, halve, stop below 0.03
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    state = TrainState(lr=1.0, epoch=10)
    update_lr_schedule(cfg, state, improved=False, optimizer=opt)
    assert state.lr == 1.0  # too early
    state.epoch = 16
    update_lr_schedule(cfg, state, improved=True, optimizer=opt)
    assert state.lr == 1.0
    update_lr_schedule(cfg, state, improved=False, optimizer=opt)
    assert state.lr == 0.5 and opt.param_groups[0]["lr"] == 0.5
    lrs = []
    while not state.stopped_early:
        update_lr_schedule(cfg, state, improved=True, optimizer=opt)
        lrs.append(state.lr)
    assert lrs == [0.25, 0.125, 0.0625, 0.03125, 0.015625]


def test_every_epoch_records_kl_mi_au_and_updates(tmp_path, synthetic_data):
    """The collapse-over-training curve: validation KL, MI and active units (0.01) at the end of every epoch, against
    the number of optimizer updates, in the record's history."""
    from skipvae.config import make_config
    from skipvae.data import load_dataset
    from skipvae.train import train, training_updates

    cfg = make_config("mnist", "skip-vae", "smoke", epochs=2, n_train=100, batch_size=40)
    record = train(cfg, tmp_path / "run", progress=False)
    history = record["history"]
    assert [h["updates"] for h in history] == [3, 6]  # 100 images / 40 per batch: 3 batches per epoch, one partial
    assert training_updates(cfg, load_dataset(cfg)) == history[-1]["updates"]  # the count without training
    for h in history:
        assert -0.1 <= h["val_mi"] <= math.log(cfg.n_valid) + 1e-9  # one z per example: small negatives happen
        assert 0 <= h["val_au_0.01"] <= cfg.latent_dim and isinstance(h["val_au_0.01"], int)
        assert h["val_kl"] >= 0


def test_bf16_training_keeps_fp32_state_and_resumes_exactly(tmp_path):
    """amp=True (bf16 autocast on CPU): the parameters, the Adam state and the record stay fp32 and finite, and a
    run cut into pieces ends exactly where the uninterrupted one does."""
    cfg = smoke(model="skip-vae", epochs=2, amp=True)
    full = train(cfg, tmp_path / "full", progress=False)
    assert train(cfg, tmp_path / "pieces", progress=False, max_epochs=1)["status"] == "paused"
    pieced = train(cfg, tmp_path / "pieces", progress=False, max_epochs=1)
    assert strip_times(pieced) == strip_times(full)
    assert all(math.isfinite(h["val_neg_elbo"]) for h in full["history"])
    ckpt = load_checkpoint(tmp_path / "full" / LAST)
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())
    for state in ckpt["optimizer"]["state"].values():
        assert state["exp_avg"].dtype == torch.float32 and state["exp_avg_sq"].dtype == torch.float32


def test_a_piece_shorter_than_an_epoch_still_makes_progress(tmp_path):
    """A time budget below one epoch's time: every piece trains one epoch, then pauses (it used to pause at once,
    forever, once an epoch had taken longer than the budget), and the pieces end where one uninterrupted run does."""
    cfg = smoke(model="vae", epochs=3)
    full = train(cfg, tmp_path / "full", progress=False)
    pieces, out = 0, {"status": "paused"}
    while out["status"] == "paused":
        out = train(cfg, tmp_path / "pieces", progress=False, time_budget_s=1e-6)
        pieces += 1
        assert pieces <= 4, "no progress"
    assert pieces == 3 and strip_times(out) == strip_times(full)  # one epoch a piece; the last one also evaluates


@pytest.mark.slow  # inductor compiles C++ (about half a minute)
def test_compiled_step_computes_what_the_eager_step_does(tmp_path):
    """compile_step (inductor + fused Adam, eager's noise stream): the same losses and model up to rounding, and a
    compiled run resumes like an eager one."""
    eager = train(smoke(model="skip-vae", arch="mlp", epochs=2), tmp_path / "eager", progress=False)
    cfg = smoke(model="skip-vae", arch="mlp", epochs=2, compile_step=True)
    assert train(cfg, tmp_path / "compiled", progress=False, max_epochs=1)["status"] == "paused"
    compiled = train(cfg, tmp_path / "compiled", progress=False)
    for a, b in zip(eager["history"], compiled["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_neg_elbo"] == pytest.approx(b["val_neg_elbo"], rel=1e-5)
    assert compiled["metrics"]["neg_elbo"] == pytest.approx(eager["metrics"]["neg_elbo"], rel=1e-5)


def test_the_paper_mlp_profile_compiles_its_step_and_the_reduced_ones_do_not():
    assert make_config("mnist", "vae", "paper", arch="mlp").compile_step
    assert not make_config("mnist", "vae", "cpu", arch="mlp").compile_step
    assert not make_config("mnist", "vae", "smoke", arch="mlp").compile_step
    assert not make_config("mnist", "vae", "paper").compile_step  # PixelCNN: not measured yet (issue 25)


def test_bf16_lstm_training_on_a_cpu_without_bf16_kernels_is_refused_before_the_data_loads(tmp_path, monkeypatch):
    monkeypatch.setattr("skipvae.train.cpu_has_bf16", lambda: False)
    cfg = make_config("yahoo", "vae", "smoke", amp=True)
    with pytest.raises(ConfigError, match=r"amp=True \(bf16 training\) of the LSTM needs a CPU with bf16 kernels"):
        train(cfg, tmp_path / "run", data_dir=tmp_path / "no-data-here", progress=False)
    assert not (tmp_path / "run").exists()
    cfg = make_config("yahoo", "vae", "smoke", nll_amp=True)
    with pytest.raises(ConfigError, match=r"nll_amp=True \(the IW-NLL in bf16\) of the LSTM needs a CPU with bf16"):
        train(cfg, tmp_path / "run", data_dir=tmp_path / "no-data-here", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_dry_run_says_so_when_this_cpu_cannot_train_the_config_in_bf16(monkeypatch, capsys):
    from skipvae.cli import main

    monkeypatch.setattr("skipvae.train.cpu_has_bf16", lambda: False)
    args = ["train", "--dataset", "yahoo", "--model", "vae", "--dry-run", "--profile"]
    assert make_config("yahoo", "vae", "cpu").amp and not make_config("yahoo", "vae", "smoke").amp
    assert main(args + ["cpu"]) == 2  # the cpu profile trains the LSTM in bf16
    assert "needs a CPU with bf16 kernels" in capsys.readouterr().err
    assert main(args + ["smoke"]) == 0


def test_the_partial_record_of_a_run_is_written_while_it_trains_and_removed_once_it_has_finished(tmp_path,
                                                                                                 monkeypatch):
    from synthetic import use_synthetic_data

    from skipvae.partial import export

    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    use_synthetic_data(monkeypatch)
    cfg = make_config("mnist", "vae", "smoke", arch="mlp", epochs=2)
    run = tmp_path / "sweep" / cfg.run_name()
    train(cfg, run, progress=False, max_epochs=1)
    (out,) = export(tmp_path / "sweep", "mnist")
    assert json.loads(out.read_text())["epochs_completed"] == 1 and (run / LAST).exists()
    train(cfg, run, progress=False)
    assert (run / RECORD).exists() and export(tmp_path / "sweep", "mnist") == [] and not out.exists()



def test_the_partial_record_of_a_lost_attempt_is_kept_as_lost_when_the_run_starts_over(tmp_path, monkeypatch):
    """A machine lost with its checkpoints: the run starts over, and the earlier attempt's partial record moves to
    partial/lost/ (the budget counts it) instead of being overwritten; the same attempt, further on, replaces it."""
    import shutil

    from synthetic import use_synthetic_data

    from skipvae.partial import export

    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    use_synthetic_data(monkeypatch)
    cfg = make_config("mnist", "vae", "smoke", arch="mlp", epochs=3)
    run = tmp_path / "sweep" / cfg.run_name()
    train(cfg, run, progress=False, max_epochs=2)
    (out,) = export(tmp_path / "sweep", "mnist")
    first = json.loads(out.read_text())
    shutil.rmtree(run)  # the machine is replaced: runs/ is gone
    train(cfg, run, progress=False, max_epochs=1)
    assert export(tmp_path / "sweep", "mnist") == [out] and json.loads(out.read_text())["epochs_completed"] == 1
    lost = out.parent / "lost" / f"{cfg.run_name()}.lost-at-epoch-2.json"
    assert json.loads(lost.read_text()) == first
    train(cfg, run, progress=False, max_epochs=1)  # the same attempt, one epoch on: no second lost record
    export(tmp_path / "sweep", "mnist")
    assert json.loads(out.read_text())["epochs_completed"] == 2 and len(list(lost.parent.iterdir())) == 1
