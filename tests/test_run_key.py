"""The stable run key and the record schema: committed records are found by their key, a new config field with a
default changes no key, and an older record is read through one explicit migration."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from skipvae.config import RunConfig, field_defaults, make_config
from skipvae.errors import DataError
from skipvae.records import SCHEMA_VERSION, RunRecord, migrate

RESULTS = Path(__file__).resolve().parent.parent / "results"
COMMITTED = sorted(RESULTS.glob("*/runs/*.json"))

# The defaults every committed key was computed against. Changing one would make old records describe another run
# under the same key: add a new field instead (its default reproducing the old behaviour).
PINNED_DEFAULTS = {
    'dataset': 'mnist', 'arch': 'pixelcnn', 'skip': False, 'inference': 'amortized', 'objective': 'elbo',
    'profile': 'paper', 'seed': 0, 'latent_dim': 20, 'enc_channels': 64, 'dec_layers': 8, 'dec_channels': 32,
    'dec_kernels': None, 'mlp_hidden': 1024, 'emb_dim': 512, 'enc_hidden': 1024, 'dec_hidden': 1024, 'dropout': 0.5,
    'max_len': 200, 'init_uniform': None, 'svi_steps': 10, 'svi_lr': 1.0, 'svi_momentum': 0.5, 'svi_clip': 5.0,
    'optimizer': 'adam', 'lr': 0.001, 'batch_size': 50, 'epochs': 100, 'grad_clip': 5.0, 'warmup_epochs': 0,
    'beta_start': 0.1, 'cycles': 4, 'cycle_ratio': 0.5, 'free_bits': 0.125, 'kl_beta': 0.4, 'bn_gamma': 0.6,
    'aggressive_steps': 100, 'lr_decay_after': None, 'lr_decay': 0.5, 'min_lr': 0.03, 'n_train': None, 'n_valid': None,
    'n_test': None, 'iw_samples': 500, 'iw_chunk': 50, 'n_eval_nll': None, 'clf_n_train': None, 'clf_n_test': None,
    'clf_epochs': 20, 'amp': False, 'notes': '', 'extra': {},
}


def test_no_default_of_an_existing_field_changed():
    now = field_defaults()
    changed = {k: (v, now[k]) for k, v in PINNED_DEFAULTS.items() if k in now and now[k] != v}
    assert not changed, f"defaults changed (pinned, now): {changed}"
    assert set(PINNED_DEFAULTS) <= set(now), f"fields removed: {set(PINNED_DEFAULTS) - set(now)}"


def test_there_are_committed_records():
    assert len(COMMITTED) > 100


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_committed_record_is_found_by_its_key(path):
    record = json.loads(path.read_text())
    assert record["schema_version"] == SCHEMA_VERSION
    assert RunConfig.from_dict(record["config"]).run_name() == record["name"] == path.stem
    RunRecord.from_dict(record, path)  # the schema check the reader uses


def test_a_new_field_with_a_default_changes_no_committed_key():
    extended = dataclasses.make_dataclass("Extended", [("future_knob", float, dataclasses.field(default=0.0))],
                                          bases=(RunConfig,))
    for path in COMMITTED:
        record = json.loads(path.read_text())
        assert extended.from_dict(record["config"]).run_name() == record["name"], path
    base = make_config("mnist", "vae", "cpu", arch="mlp")
    same = extended.from_dict(base.to_dict())
    other = dataclasses.replace(same, future_knob=0.5)
    assert same.key() == base.key() and other.key() != base.key()


def test_the_key_hashes_identity_and_non_defaults_only():
    a = make_config("mnist", "vae", "cpu", arch="mlp")
    assert a.key() == dataclasses.replace(a, notes="another description").key()  # a description is no setting
    assert a.key() != dataclasses.replace(a, seed=1).key() != dataclasses.replace(a, amp=True).key()
    assert set(a.identity()) >= {"dataset", "arch", "skip", "inference", "objective", "profile", "seed"}
    assert "enc_channels" not in a.identity()  # at its default
    assert a.same_run(a.to_dict()) and not a.same_run(dataclasses.replace(a, seed=1).to_dict())
    assert not a.same_run({"dataset": "mnist", "colour": "red"})  # unreadable config: not the same run


def _v1(cfg: RunConfig) -> dict:
    return {"status": "finished", "name": "old-name-0123456789ab", "config": cfg.to_dict(), "metrics": {"kl": 1.0}}


def test_migration_from_v1_renames_and_records_the_step():
    cfg = make_config("mnist", "skip-vae", "cpu", arch="mlp", seed=2)
    old = _v1(cfg)
    new = migrate(old)
    assert old["name"] == "old-name-0123456789ab" and "schema_version" not in old  # the input is unchanged
    assert new["name"] == cfg.run_name() and new["schema_version"] == SCHEMA_VERSION
    assert new["migrations"] == [{"from": 1, "to": 2, "change": new["migrations"][0]["change"],
                                  "old_name": "old-name-0123456789ab"}]
    assert migrate(new) is new  # current: untouched


@pytest.mark.parametrize("change,match", [
    (dict(schema_version=99), "schema_version 99; this code reads 1 to"),
    (dict(schema_version=SCHEMA_VERSION, metrics=[1]), "'metrics' must be a JSON object"),
    (dict(schema_version=SCHEMA_VERSION, colour="red"), "unknown keys \\['colour'\\]"),
    (dict(schema_version=SCHEMA_VERSION, name=None, config=None), "lacks config.dataset"),
])
def test_bad_records_are_refused_with_the_path(change, match):
    record = _v1(make_config("mnist", "vae", "smoke")) | change
    with pytest.raises(DataError, match=match):
        RunRecord.from_dict(record, "some/path.json")


def test_migrate_results_rewrites_old_records_once(tmp_path):
    from skipvae.report.store import load_runs, migrate_results

    cfg = make_config("mnist", "vae", "cpu", arch="mlp")
    folder = tmp_path / "mnist" / "runs"
    folder.mkdir(parents=True)
    (folder / "old-name-0123456789ab.json").write_text(json.dumps(_v1(cfg)))
    moved = migrate_results(tmp_path)
    assert [(a.name, b.name) for a, b in moved] == [("old-name-0123456789ab.json", f"{cfg.run_name()}.json")]
    assert [p.name for p in folder.iterdir()] == [f"{cfg.run_name()}.json"]
    assert migrate_results(tmp_path) == []  # idempotent
    assert list(load_runs("mnist", tmp_path)["name"]) == [cfg.run_name()]


def test_tables_keyed_by_run_follow_their_records_to_the_new_key(tmp_path):
    from skipvae.report.store import migrate_results, rekey_run_tables

    cfg = make_config("mnist", "vae", "cpu", arch="mlp")
    folder = tmp_path / "mnist" / "runs"
    folder.mkdir(parents=True)
    old = _v1(cfg)["name"]
    (folder / f"{old}.json").write_text(json.dumps(_v1(cfg)))
    tsne = tmp_path / "mnist" / "tsne.csv"  # cells pandas would retype: an int column with a gap, a zero-padded code
    tsne.write_text(f"run,x,label,code\n{old},0.5,3,007\n{old},1.25,,010\nanother-run,2.0,1,001\n")
    migrate_results(tmp_path)
    assert rekey_run_tables(tmp_path) == [tsne]
    assert tsne.read_text() == (f"run,x,label,code\n{cfg.run_name()},0.5,3,007\n{cfg.run_name()},1.25,,010\n"
                                f"another-run,2.0,1,001\n")  # only the run names changed
    assert rekey_run_tables(tmp_path) == []  # idempotent
    (folder / "broken.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="broken.json holds a list, expected a JSON object"):
        rekey_run_tables(tmp_path)
