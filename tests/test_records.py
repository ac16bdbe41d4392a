import json

import torch

from skipvae.records import atomic_torch_save, atomic_write_json, git_commit, provenance


def test_atomic_json_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a" / "r.json"
    atomic_write_json(p, {"x": 1, "t": torch.tensor([1.5])})
    atomic_write_json(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2}
    assert [f.name for f in p.parent.iterdir()] == ["r.json"]


def test_failed_save_keeps_previous_file(tmp_path):
    p = tmp_path / "c.pt"
    atomic_torch_save({"w": torch.ones(2)}, p)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    try:
        atomic_torch_save({"w": Unpicklable()}, p)
    except RuntimeError:
        pass
    assert torch.equal(torch.load(p, weights_only=True)["w"], torch.ones(2))
    assert [f.name for f in tmp_path.iterdir()] == ["c.pt"]


def test_provenance_fields():
    prov = provenance(3, "smoke", "cpu")
    assert prov["seed"] == 3 and prov["profile"] == "smoke" and prov["device"].startswith("cpu")
    assert prov["torch"].startswith("2.13.0")
    commit = git_commit()
    assert commit == "unknown" or len(commit.split("+")[0]) == 40


def test_same_numbers_allows_the_last_bits_of_a_float_and_nothing_else():
    from skipvae.records import same_numbers

    a = {"rows": [{"mi": 0.0009389482102929263, "n": 3, "ok": True, "name": "x"}]}
    assert same_numbers(a, {"rows": [{"mi": 0.0009389482102929264, "n": 3, "ok": True, "name": "x"}]})
    assert not same_numbers(a, {"rows": [{"mi": 0.00093895, "n": 3, "ok": True, "name": "x"}]})
    assert not same_numbers(a, {"rows": [{"mi": 0.0009389482102929263, "n": 4, "ok": True, "name": "x"}]})
    assert not same_numbers(a, {"rows": []}) and not same_numbers(a, {"rows": a["rows"], "extra": 1})
    assert not same_numbers(1.0, True) and not same_numbers(None, 0.0) and same_numbers(0.0, 0)
