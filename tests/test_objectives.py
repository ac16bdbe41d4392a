"""The collapse remedies of the `objective` axis (skipvae.objectives), each against a known answer: schedules, free
bits, beta, the BN-VAE bound, the aggressive phase; their composition with skips; config errors; a smoke run each."""

import dataclasses
import math

import pytest
import torch

from skipvae import objectives
from skipvae.config import OBJECTIVES, REMEDY_FIELDS, RunConfig, make_config
from skipvae.errors import ConfigError
from skipvae.models import MeanBatchNorm, build_model
from skipvae.objectives import (Aggressive, BetaVAE, Cyclical, Elbo, FreeBits, bn_vae_kl_bound, cyclical_weight,
                                encoder_converged, free_bits_kl, kl_per_dimension, mi_still_rising)
from skipvae.train import kl_weight, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

REMEDIES = [o for o in OBJECTIVES if o != "elbo"]


def tiny(model="vae", objective="elbo", **kw):
    return make_config("mnist", model, "smoke", arch="mlp", objective=objective, latent_dim=3, mlp_hidden=8,
                       dec_layers=2, **kw)


def images(b=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 1, 28, 28, generator=g) > 0.5).float()


def test_the_registry_names_every_objective_of_the_config():
    assert set(objectives.REGISTRY) == set(OBJECTIVES) and OBJECTIVES[0] == "elbo"
    assert set(REMEDY_FIELDS.values()) <= set(OBJECTIVES)
    for name in OBJECTIVES:
        assert isinstance(objectives.build(tiny(objective=name)), objectives.REGISTRY[name])


# --- schedules --------------------------------------------------------------------------------------------------

def test_the_elbo_is_unchanged_its_loss_is_the_models_own():
    cfg = tiny()
    model = build_model(cfg)
    out = model(images(), beta=0.3)
    obj = objectives.build(cfg)
    assert obj.loss(out, 0.3) is out["loss"] and obj.weight(0, 0, 10) == 1.0
    assert cfg.run_name() == dataclasses.replace(cfg).run_name() and cfg.label == "vae"
    assert "+" not in cfg.run_name()


def test_kl_anneal_equals_the_existing_warmup():
    text = make_config("yahoo", "vae", "paper")  # the paper's text runs: elbo with 10 warm-up epochs
    anneal = make_config("yahoo", "vae", "paper", objective="kl-anneal")
    assert anneal.warmup_epochs == text.warmup_epochs == 10  # the family's warm-up is kept
    for epoch, step in [(0, 0), (3, 7), (5, 0), (9, 99), (10, 0), (25, 3)]:
        assert kl_weight(anneal, epoch, step, 100) == kl_weight(text, epoch, step, 100)
    image = make_config("mnist", "vae", "paper", objective="kl-anneal")  # no warm-up in the family: 10 epochs
    assert (image.warmup_epochs, image.beta_start) == (10, 0.1)
    assert kl_weight(image, 0, 0, 100) == pytest.approx(0.1) and kl_weight(image, 5, 0, 100) == pytest.approx(0.55)
    assert kl_weight(image, 10, 0, 100) == 1.0
    assert make_config("mnist", "vae", "paper", objective="kl-anneal", warmup_epochs=4).warmup_epochs == 4
    assert image.key() != dataclasses.replace(image, objective="elbo").key()  # another run, by name


def test_kl_anneal_warms_up_over_at_most_half_of_a_reduced_profiles_epochs():
    """Where the family has no warm-up: KL_ANNEAL_EPOCHS at the paper's 100 epochs, half of a reduced profile's."""
    def warmup(dataset, profile, arch=None):
        return make_config(dataset, "vae", profile, arch, objective="kl-anneal").warmup_epochs

    assert (warmup("mnist", "paper", "mlp"), warmup("mnist", "cpu", "mlp"), warmup("mnist", "cpu")) == (10, 5, 2)
    assert (warmup("omniglot", "smoke"), warmup("mnist", "smoke", "mlp")) == (1, 1)  # 1 epoch: at least 1
    assert (warmup("yahoo", "cpu"), warmup("yahoo", "smoke")) == (3, 1)  # text keeps the profile's own warm-up
    assert make_config("yahoo", "sa-vae", "cpu", objective="kl-anneal").warmup_epochs == 2  # the SA models' own
    # the run's own epochs decide it, an override of them too (the profile's 100 would give 10 of 6 epochs)
    assert make_config("mnist", "vae", "paper", "mlp", objective="kl-anneal", epochs=6).warmup_epochs == 3


def test_cyclical_schedule_has_the_published_shape():
    T, M, R = 400, 4, 0.5  # 4 cycles of 100 updates, rising over the first 50
    for c in range(M):
        start = c * 100
        assert cyclical_weight(start, T, M, R) == 0.0  # every cycle starts at 0
        assert cyclical_weight(start + 25, T, M, R) == 0.5  # mid-rise
        assert cyclical_weight(start + 10, T, M, R) == pytest.approx(0.2)
        assert cyclical_weight(start + 50, T, M, R) == 1.0  # the plateau
        assert cyclical_weight(start + 99, T, M, R) == 1.0
    w = [cyclical_weight(u, T, M, R) for u in range(T)]
    assert all(0.0 <= v <= 1.0 for v in w) and sum(v == 0.0 for v in w) == M
    assert cyclical_weight(30, 100, 1, 1.0) == pytest.approx(0.3)  # R = 1: one linear rise over the run
    cfg = tiny(objective="cyclical", epochs=8)  # through the config: 2 epochs a cycle, steps within an epoch
    assert (cfg.cycles, cfg.cycle_ratio, cfg.warmup_epochs) == (4, 0.5, 0)
    assert [kl_weight(cfg, e, 0, 10) for e in range(8)] == [0.0, 1.0] * 4
    assert kl_weight(cfg, 0, 5, 10) == pytest.approx(0.5) and kl_weight(cfg, 2, 5, 10) == pytest.approx(0.5)


def test_beta_scales_the_kl_weight_and_the_loss():
    cfg = tiny(objective="beta")
    assert cfg.kl_beta == 0.4 and kl_weight(cfg, 0, 0, 1) == pytest.approx(0.4)
    warm = tiny(objective="beta", warmup_epochs=2, kl_beta=0.5)  # composes with the warm-up
    assert kl_weight(warm, 1, 0, 1) == pytest.approx(0.5 * 0.55)
    model = build_model(cfg)
    torch.manual_seed(0)
    out = model(images(), beta=objectives.build(cfg).weight(0, 0, 1))
    assert objectives.build(cfg).loss(out, 0.4).item() == pytest.approx((out["rec"] + 0.4 * out["kl"]).mean().item())


# --- free bits --------------------------------------------------------------------------------------------------

def _posterior(b=8, d=5, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    mu = (scale * torch.randn(b, d, generator=g)).requires_grad_()
    logvar = (0.3 * torch.randn(b, d, generator=g)).requires_grad_()
    return mu, logvar


def test_free_bits_equals_the_elbo_when_every_dimension_is_above_lambda():
    mu, logvar = _posterior(scale=3.0)
    per_dim = kl_per_dimension(mu, logvar).mean(0)
    lam = per_dim.min().item() * 0.9
    rec = torch.rand(8)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    out = {"rec": rec, "kl": kl, "mu": mu, "logvar": logvar, "loss": (rec + 0.7 * kl).mean()}
    assert FreeBits(lam=lam).loss(out, 0.7).item() == pytest.approx(out["loss"].item(), rel=1e-6)
    assert free_bits_kl(mu, logvar, 0.0).item() == pytest.approx(kl.mean().item(), rel=1e-6)  # lambda = 0: the KL


def test_free_bits_gives_no_encoder_gradient_in_dimensions_below_lambda():
    mu, logvar = _posterior(scale=1.0)
    with torch.no_grad():
        mu[:, :2] *= 0.01  # two dimensions near the prior
        logvar[:, :2] *= 0.01
        mu[:, 2:] += 3.0  # three far from it
    per_dim = kl_per_dimension(mu, logvar).mean(0)
    lam = 0.5
    assert (per_dim[:2] < lam).all() and (per_dim[2:] > lam).all()
    free_bits_kl(mu, logvar, lam).backward()
    assert mu.grad[:, :2].abs().max() == 0 and logvar.grad[:, :2].abs().max() == 0
    assert mu.grad[:, 2:].abs().min() > 0
    assert free_bits_kl(mu, logvar, lam).item() == pytest.approx(2 * lam + per_dim[2:].sum().item())


def test_free_bits_through_the_encoder():
    """Through a real encoder: the gradient of the free-bits KL reaches the encoder only through dimensions above
    lambda (here lambda above every dimension: no gradient at all; lambda 0: the ELBO's KL gradient)."""
    cfg = tiny(objective="free-bits", free_bits=1e6)
    model = build_model(cfg)
    out = model(images())
    free_bits_kl(out["mu"], out["logvar"], cfg.free_bits).backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in model.encoder.parameters())
    model.zero_grad()
    out = model(images())
    free_bits_kl(out["mu"], out["logvar"], 0.0).backward()
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in model.encoder.parameters())


# --- BN-VAE -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_bn_vae_batch_kl_respects_its_lower_bound(seed):
    g = torch.Generator().manual_seed(seed)
    B, D, gamma = 32, 7, 0.6
    norm = MeanBatchNorm(D, gamma).train()
    with torch.no_grad():
        norm.shift.copy_(0.3 * torch.randn(D, generator=g))
    raw = 5 * torch.randn(B, D, generator=g) + 2  # any scale and location
    logvar = torch.randn(B, D, generator=g)
    mu = norm(raw)
    batch_kl = kl_per_dimension(mu, logvar).sum(1).mean().item()
    v = raw.var(0, unbiased=False)
    bound = bn_vae_kl_bound(gamma, norm.shift.detach(), v, norm.eps)
    assert batch_kl >= bound - 1e-5
    assert bound >= D * gamma ** 2 / 2 * float((v / (v + norm.eps)).min()) - 1e-6
    assert bound == pytest.approx(D * gamma ** 2 / 2 + 0.5 * norm.shift.pow(2).sum().item(), rel=1e-4)
    tight = kl_per_dimension(mu, torch.zeros(B, D)).sum(1).mean().item()  # unit variances: equality
    assert tight == pytest.approx(bound, rel=1e-4)
    assert mu.detach().mean(0).tolist() == pytest.approx(norm.shift.tolist(), abs=1e-5)  # batch mean = the shift
    assert mu.detach().var(0, unbiased=False).tolist() == pytest.approx([gamma ** 2] * D, rel=1e-3)


@pytest.mark.parametrize("model_name", ["vae", "skip-vae", "sa-vae"])
def test_bn_vae_model_keeps_its_kl_above_the_bound(model_name):
    cfg = tiny(model_name, objective="bn-vae")
    model = build_model(cfg).train()
    assert not model.mu_norm.gamma.requires_grad and model.mu_norm.shift.requires_grad
    assert "mu_norm.gamma" not in dict(model.named_parameters())  # fixed scale: a buffer, never trained
    x = images(16)
    torch.manual_seed(0)
    out = model(x)
    raw = model.encoder(x)[0].detach()  # the encoder's own means, before the normalization
    v = raw.var(0, unbiased=False)
    bound = bn_vae_kl_bound(cfg.bn_gamma, model.mu_norm.shift, v, model.mu_norm.eps)
    if model_name != "sa-vae":  # the bound holds for the encoder's posteriors (SVI then moves them)
        assert out["kl"].mean().item() >= bound - 1e-5
    mu0, _ = model.encode(x)
    expected = (cfg.bn_gamma ** 2 * v / (v + model.mu_norm.eps)).tolist()
    assert mu0.detach().var(0, unbiased=False).tolist() == pytest.approx(expected, rel=1e-4)
    assert "mu_norm" not in dict(build_model(tiny(model_name)).named_modules())  # other models: unchanged


def test_bn_vae_survives_a_batch_of_one_and_the_uniform_init():
    norm = MeanBatchNorm(3, 0.6).train()
    assert norm(torch.randn(1, 3)).shape == (1, 3)  # no batch variance: the running statistics
    text = make_config("yahoo", "vae", "smoke", objective="bn-vae", init_uniform=0.1)
    model = build_model(text, vocab_size=23)
    assert model.mu_norm.shift.abs().max() == 0 and (model.mu_norm.gamma == 0.6).all()


# --- aggressive -------------------------------------------------------------------------------------------------

def test_the_inner_loop_stops_when_the_loss_stops_falling():
    w = objectives.AGGRESSIVE_WINDOW
    falling = [100.0 - i for i in range(4 * w)]
    assert not any(encoder_converged(falling[:n]) for n in range(1, len(falling) + 1))
    flat_then_up = [10.0] * w + [9.0] * w + [9.5] * w
    assert [n for n in range(1, 3 * w + 1) if encoder_converged(flat_then_up[:n])] == [3 * w]
    assert not encoder_converged(flat_then_up[:3 * w - 1])  # checked only at the end of a window


def test_the_aggressive_phase_ends_when_the_mi_stops_rising():
    mis, prev, phase = [0.5, 1.0, 1.2, 1.1, 2.0], 0.0, []
    for mi in mis:
        phase.append(mi_still_rising(prev, mi))
        prev = mi
    assert phase == [True, True, True, False, True]
    assert not mi_still_rising(0.0, -0.01)  # the first epoch compares with 0, as the official code


def test_training_is_aggressive_until_the_validation_mi_falls(tmp_path, synthetic_data, monkeypatch):
    import skipvae.train as engine

    real, mis = engine.validate, iter([0.2, 0.4, 0.3, 0.9, 1.5])

    def scripted(*args, **kw):
        return real(*args, **kw) | {"mi": next(mis)}

    monkeypatch.setattr(engine, "validate", scripted)
    cfg = make_config("mnist", "skip-vae", "smoke", arch="mlp", objective="aggressive", epochs=5, n_train=50,
                      n_valid=25, n_test=25, aggressive_steps=4)
    history = train(cfg, tmp_path / "r", progress=False, evaluate_test=False)["history"]
    assert [h["aggressive"] for h in history] == [True, True, True, False, False]
    steps = [h["inner_steps"] for h in history]
    assert steps[:3] == [2 * 4] * 3 and steps[3:] == [0, 0]  # 2 batches an epoch, the cap of 4 each (< 2 windows)
    assert all(h["updates"] == 2 * h["epoch"] for h in history)  # decoder updates: the batches


def test_aggressive_inner_updates_leave_the_decoder_alone(synthetic_data):
    from skipvae.data import load_dataset
    from skipvae.train import aggressive_encoder_updates, make_optimizer

    cfg = make_config("mnist", "vae", "smoke", arch="mlp", objective="aggressive", n_train=50, aggressive_steps=3)
    model = build_model(cfg)
    data = load_dataset(cfg)
    batches = list(data.batches("train", cfg.batch_size, epoch=0, seed=0))
    opt = make_optimizer(cfg, model)
    dec = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    enc = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    n = aggressive_encoder_updates(model, batches, opt, cfg, objectives.build(cfg), 1.0, torch.device("cpu"),
                                   torch.Generator().manual_seed(0))
    assert n == 3
    assert all(torch.equal(dec[k], v) for k, v in model.decoder.state_dict().items())
    assert any(not torch.equal(enc[k], v) for k, v in model.encoder.state_dict().items())


# --- composition with skips -------------------------------------------------------------------------------------

@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("model_name", ["vae", "skip-vae", "sa-vae", "skip-sa-vae"])
def test_every_remedy_composes_with_skips(objective, model_name):
    """The decoder (and so the skip wiring) is the elbo model's; with skips every z-skip layer gets a gradient from
    the remedy's loss, without skips there are none."""
    if objective == "aggressive" and "sa-vae" in model_name:
        with pytest.raises(ConfigError, match="SVI already refines"):
            tiny(model_name, objective=objective)
        return
    cfg = tiny(model_name, objective=objective, **({"epochs": 4} if objective == "cyclical" else {}))
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.manual_seed(0)
    plain = build_model(tiny(model_name))
    extra = {k for k in model.state_dict() if k not in plain.state_dict()}
    bn = {"mu_norm.gamma", "mu_norm.shift", "mu_norm.running_mean", "mu_norm.running_var"}
    assert extra == (bn if objective == "bn-vae" else set())
    for k, v in plain.decoder.state_dict().items():
        assert torch.equal(model.decoder.state_dict()[k], v), k
    obj = objectives.build(cfg)
    w = obj.weight(1, 1, 2)
    out = model(images(), beta=w)
    obj.loss(out, w).backward()
    if cfg.skip:
        assert len(model.decoder.z_skips) == cfg.dec_layers
        assert all(m.weight.grad.abs().sum() > 0 for m in model.decoder.z_skips)
    else:
        assert model.decoder.z_skips is None
    assert model.decoder.z_in.weight.grad.abs().sum() > 0


# --- config -----------------------------------------------------------------------------------------------------

def test_labels_and_run_names_show_the_objective():
    for objective in REMEDIES:
        cfg = make_config("mnist", "skip-vae", "smoke", objective=objective)
        assert cfg.label == f"skip-vae+{objective}" and cfg.model == "skip-vae"
        assert f"-skip-vae+{objective}-z" in cfg.run_name() and cfg.to_dict()["model"] == "skip-vae"
        assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert make_config("mnist", "skip-vae", "smoke").label == "skip-vae"


def test_remedy_parameters_at_their_defaults_change_no_key():
    cfg = make_config("mnist", "vae", "smoke", objective="free-bits")
    assert "free_bits" not in cfg.identity() and "kl_beta" not in cfg.identity()
    assert cfg.key() != make_config("mnist", "vae", "smoke", objective="free-bits", free_bits=0.5).key()


@pytest.mark.parametrize("kwargs,match", [
    (dict(objective="free-bit"), "unknown objective 'free-bit'; valid choices: elbo, kl-anneal, cyclical"),
    (dict(objective="free-bits", free_bits=-0.1), "free_bits=-0.1 is impossible: it must be >= 0"),
    (dict(objective="cyclical", cycle_ratio=0.0), "cycle_ratio=0.0 is impossible: it must be in (0, 1]"),
    (dict(objective="cyclical", cycle_ratio=1.5), "cycle_ratio=1.5 is impossible: it must be in (0, 1]"),
    (dict(objective="cyclical", cycles=0), "cycles=0 is impossible: it must be a positive integer"),
    (dict(objective="cyclical", cycles=2.5), "cycles=2.5 is impossible: it must be an integer"),
    (dict(objective="cyclical", warmup_epochs=3), "warmup_epochs=3 is impossible with objective 'cyclical'"),
    (dict(objective="bn-vae", bn_gamma=0.0), "bn_gamma=0.0 is impossible: it must be > 0"),
    (dict(objective="bn-vae", bn_gamma=-1.0), "bn_gamma=-1.0 is impossible: it must be > 0"),
    (dict(objective="beta", kl_beta=1.0), "kl_beta=1.0 is impossible: it must be in (0, 1) (1 is the elbo)"),
    (dict(objective="beta", kl_beta=0.0), "kl_beta=0.0 is impossible"),
    (dict(objective="aggressive", aggressive_steps=0), "aggressive_steps=0 is impossible"),
    (dict(objective="kl-anneal", warmup_epochs=0), "warmup_epochs=0 is impossible with objective 'kl-anneal'"),
    (dict(free_bits=0.5), "free_bits=0.5 is impossible with objective 'elbo': it is a parameter of objective "
                          "'free-bits' only"),
    (dict(objective="beta", cycles=3), "cycles=3 is impossible with objective 'beta'"),
    (dict(model="sa-vae", objective="aggressive"), "objective 'aggressive' is impossible for model 'sa-vae'"),
])
def test_bad_objectives_and_parameters_raise_one_line(kwargs, match):
    args = dict(dataset="mnist", model="vae", profile="smoke") | kwargs
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as e:
        make_config(**args)
    assert "\n" not in str(e.value)


def test_the_language_model_takes_the_elbo_only():
    assert make_config("yahoo", "lm", "smoke").objective == "elbo"
    with pytest.raises(ConfigError, match="impossible for model 'lm'"):
        make_config("yahoo", "lm", "smoke", objective="free-bits")


# --- one smoke run per remedy -----------------------------------------------------------------------------------

@pytest.mark.parametrize("objective", REMEDIES)
def test_every_remedy_trains_and_records_the_true_elbo(tmp_path, synthetic_data, objective):
    cfg = make_config("mnist", "skip-vae", "smoke", arch="mlp", objective=objective, epochs=2, n_train=50,
                      n_valid=25, n_test=25, **({"aggressive_steps": 3} if objective == "aggressive" else {}))
    rec = train(cfg, tmp_path / cfg.run_name(), progress=False)
    assert rec["status"] == "finished" and rec["config"]["objective"] == objective
    assert rec["name"] == cfg.run_name() and f"+{objective}" in rec["name"]
    for h in rec["history"]:
        assert h["val_neg_elbo"] == pytest.approx(h["val_rec"] + h["val_kl"])  # beta 1, whatever the remedy
        assert math.isfinite(h["train_loss"])
    assert math.isfinite(rec["metrics"]["neg_elbo"]) and math.isfinite(rec["metrics"]["nll"])
    assert rec["metrics"]["neg_elbo"] == pytest.approx(rec["metrics"]["rec"] + rec["metrics"]["kl"], rel=1e-5)
    if objective == "free-bits":  # the training loss is the remedy's, not the ELBO's
        assert all(h["train_loss"] >= h["train_rec"] + 2 * 0.125 for h in rec["history"])
    if objective == "aggressive":
        assert rec["history"][0]["aggressive"] and rec["history"][0]["inner_steps"] == 2 * 3


def test_remedies_compose_with_semi_amortized_inference(tmp_path, synthetic_data):
    cfg = make_config("mnist", "skip-sa-vae", "smoke", arch="mlp", objective="free-bits", epochs=1, n_train=50,
                      n_valid=25, n_test=25)
    rec = train(cfg, tmp_path / "r", progress=False, evaluate_test=False)
    h = rec["history"][0]
    assert h["val_neg_elbo"] == pytest.approx(h["val_rec"] + h["val_kl"]) and math.isfinite(h["train_loss"])
    assert isinstance(objectives.build(cfg), FreeBits) and issubclass(Aggressive, Elbo)
    assert issubclass(Cyclical, Elbo) and issubclass(BetaVAE, Elbo)


def test_the_command_line_selects_a_remedy_and_its_parameters(capsys):
    import json

    from skipvae.cli import main

    main(["train", "--dataset", "mnist", "--profile", "smoke", "--objective", "cyclical", "--cycles", "2",
          "--dry-run"])
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["objective"], cfg["cycles"], cfg["warmup_epochs"], cfg["model"]) == ("cyclical", 2, 0, "vae")
    assert main(["train", "--dataset", "mnist", "--profile", "smoke", "--kl-beta", "0.5", "--dry-run"]) == 2
    assert "kl_beta=0.5 is impossible with objective 'elbo'" in capsys.readouterr().err
