import pytest

from skipvae.config import MODELS, PROFILES, RunConfig, make_config
from skipvae.errors import ConfigError


def test_paper_defaults_match_the_paper():
    c = make_config("mnist", "skip-vae", "paper")
    assert (c.latent_dim, c.dec_layers, c.dec_channels, c.batch_size, c.epochs, c.lr) == (20, 9, 32, 50, 100, 1e-3)
    assert c.kernels == [3] * 9 and c.skip and not c.semi_amortized and c.iw_samples == 500
    assert make_config("mnist", "vae", "paper", dec_layers=8).kernels == [3] * 8  # the official code's depth
    m = make_config("mnist", "vae", "paper", arch="mlp")  # the weak model of Table 3 and the classification study
    assert (m.mlp_hidden, m.latent_dim, m.dec_layers) == (512, 50, 2)
    t = make_config("yahoo", "sa-vae", "paper")
    assert (t.arch, t.latent_dim, t.dec_hidden, t.optimizer, t.lr, t.warmup_epochs, t.svi_steps, t.iw_samples) == \
        ("lstm", 32, 1024, "sgd", 1.0, 10, 10, 200)
    assert t.semi_amortized and not t.skip
    assert make_config("omniglot", "skip-sa-vae", "paper").svi_steps == 10


@pytest.mark.parametrize("name,skip,inference", [("vae", False, "amortized"), ("skip-vae", True, "amortized"),
                                                 ("sa-vae", False, "semi-amortized"),
                                                 ("skip-sa-vae", True, "semi-amortized"), ("lm", False, "none")])
def test_model_identity_is_three_fields_and_the_name_is_derived(name, skip, inference):
    c = make_config("yahoo", name, "smoke")
    assert (c.skip, c.inference, c.objective, c.model) == (skip, inference, "elbo", name)
    assert c.semi_amortized == (inference == "semi-amortized") and c.has_latent == (name != "lm")
    assert make_config("yahoo", "vae", "smoke", skip=skip, inference=inference,
                       latent_dim=0 if name == "lm" else None).model == name  # the axes alone give the same model
    assert name in c.run_name() and c.to_dict()["model"] == name


def test_old_names_and_old_records_still_work():
    assert make_config("mnist", "skip_sa_vae", "smoke").model == "skip-sa-vae"
    new = make_config("mnist", "skip-sa-vae", "smoke")
    old = {k: v for k, v in new.to_dict().items() if k not in ("skip", "inference", "objective")}
    assert RunConfig.from_dict(old) == new  # a record written before the axes existed: `model` only
    with pytest.raises(ConfigError, match="disagree"):
        RunConfig.from_dict(new.to_dict() | {"model": "vae"})


def test_the_language_model_has_no_latent_variable_and_exists_for_text_only():
    lm = make_config("yahoo", "lm", "paper")
    assert lm.latent_dim == 0 and not lm.skip and lm.dec_hidden == 1024
    with pytest.raises(ConfigError, match="text only"):
        make_config("mnist", "lm", "smoke")
    with pytest.raises(ConfigError, match="latent_dim=0"):
        make_config("yahoo", "lm", "smoke", latent_dim=8)
    with pytest.raises(ConfigError, match="no model has skip=True and inference='none'"):
        make_config("yahoo", "lm", "smoke", skip=True)
    with pytest.raises(ConfigError, match="skip='yes' is impossible"):
        make_config("yahoo", "vae", "smoke", skip="yes")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("dataset,arch", [("mnist", "pixelcnn"), ("mnist", "mlp"), ("omniglot", "pixelcnn"),
                                          ("yahoo", "lstm")])
def test_every_profile_builds(profile, dataset, arch):
    for model in MODELS:
        if model == "lm" and arch != "lstm":
            continue
        c = make_config(dataset, model, profile, arch=arch)
        assert c.profile == profile and c.arch == arch
        if profile != "paper":
            assert c.notes, "reduced profiles must say what they reduce"


def test_overrides_win_and_key_changes():
    a = make_config("mnist", "vae", "smoke")
    b = make_config("mnist", "vae", "smoke", latent_dim=7)
    assert b.latent_dim == 7 and a.key() != b.key()
    assert a.key() == make_config("mnist", "vae", "smoke").key()


def test_round_trip_dict():
    c = make_config("omniglot", "skip-sa-vae", "cpu", dec_kernels=[5, 3] + [3] * 7)
    assert RunConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("kwargs,match", [
    (dict(model="vea"), "unknown model 'vea'; valid choices: vae, skip-vae, sa-vae, skip-sa-vae, lm"),
    (dict(dataset="cifar"), "unknown dataset 'cifar'; valid choices: mnist, omniglot, yahoo"),
    (dict(profile="huge"), "unknown profile"),
    (dict(arch="lstm"), "unknown arch 'lstm' for dataset 'mnist'; valid choices: pixelcnn, mlp"),
    (dict(latent_dim=0), "latent_dim=0 is impossible"),
    (dict(latent_dim=-3), "latent_dim=-3 is impossible"),
    (dict(dec_layers=0), "dec_layers=0"),
    (dict(dec_kernels=[3, 3]), "dec_kernels has 2 sizes but dec_layers=9"),
    (dict(dec_kernels=[4] * 9), "odd and >= 3"),
    (dict(model="sa-vae", svi_steps=0), "needs svi_steps >= 1"),
    (dict(dropout=1.0), "dropout"),
    (dict(batch_size=0), "batch_size=0"),
    (dict(not_an_option=1), "unknown config option"),
])
def test_impossible_configs_raise(kwargs, match):
    args = dict(dataset="mnist", model="vae", profile="paper") | kwargs
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace("[", r"\[")):
        make_config(**args)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown config keys"):
        RunConfig.from_dict({"dataset": "mnist", "colour": "red"})


def test_cpu_pixelcnn_runs_share_one_budget_and_classify_on_their_own_splits():
    # Table 1 at latent 20, Table 2 at 9 layers and the MNIST page's pair are one run each (one config key)
    table1 = make_config("mnist", "skip-vae", "cpu", arch="pixelcnn", latent_dim=20, seed=1)
    table2 = make_config("mnist", "skip-vae", "cpu", arch="pixelcnn", dec_layers=9, seed=1)
    assert table1.key() == table2.key() == make_config("mnist", "skip-vae", "cpu", seed=1).key()
    cfg = make_config("mnist", "vae", "cpu")
    assert (cfg.clf_n_train, cfg.clf_n_test) == (cfg.n_train, cfg.n_test)  # the run's data is reused
    assert make_config("mnist", "vae", "paper").clf_n_train is None  # the paper: the whole splits


def test_semi_amortized_models_get_their_own_cut_of_the_cpu_profile_only_where_one_is_set():
    vae, lm = make_config("yahoo", "vae", "cpu"), make_config("yahoo", "lm", "cpu")
    for name in ("sa-vae", "skip-sa-vae"):
        sa = make_config("yahoo", name, "cpu")
        assert (sa.n_train, sa.epochs, sa.warmup_epochs, sa.lr_decay_after) == (2000, 4, 2, 3)
        assert "semi-amortized" in sa.notes
        # the same test documents, sizes and SVI steps as the VAE rows: only the training budget differs
        for k in ("n_test", "n_eval_nll", "max_len", "dec_hidden", "emb_dim", "svi_steps", "iw_samples"):
            assert getattr(sa, k) == getattr(vae, k), k
    assert (vae.n_train, vae.epochs) == (lm.n_train, lm.epochs) == (None, 8)
    assert make_config("yahoo", "vae", "cpu", inference="semi-amortized").n_train == 2000  # the axis, not the name
    assert make_config("yahoo", "sa-vae", "cpu", n_train=500).n_train == 500  # overrides still win
    for profile in ("paper", "smoke"):  # no cut there
        assert make_config("yahoo", "sa-vae", profile).n_train == make_config("yahoo", "vae", profile).n_train
    assert make_config("mnist", "sa-vae", "cpu").n_train == make_config("mnist", "vae", "cpu").n_train


def test_all_asks_for_the_whole_split_where_none_means_no_override():
    cfg = make_config("mnist", "vae", "cpu", clf_n_train="all", n_test="all", n_train=None)
    assert (cfg.clf_n_train, cfg.n_test) == (None, None)  # the whole splits
    assert cfg.n_train == make_config("mnist", "vae", "cpu").n_train == 10000  # None: the profile's value stays
    with pytest.raises(ConfigError, match=r"epochs='all' is impossible: only the split sizes .*n_train"):
        make_config("mnist", "vae", "cpu", epochs="all")
