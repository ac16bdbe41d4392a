"""Tests of skipvae.data: the real files in the data directory, and every error path on temporary folders."""

from __future__ import annotations

import gzip
import http.server
import shutil
import socket
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from skipvae.config import RunConfig, make_config
from skipvae.data import (BOS_ID, EOS_ID, PAD_ID, all_required_ok, check_data, fetch_data, format_check_table,
                          load_dataset, load_mnist, load_omniglot, load_yahoo, pad_batch, resolve_data_dir)
from skipvae.data import cache, manifest, mnist, omniglot, paths, yahoo
from skipvae.errors import ConfigError, DataError


def _real_data_dir() -> Path | None:
    try:
        return resolve_data_dir()
    except DataError:
        return None


DATA = _real_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="no data directory (set SKIPVAE_DATA or run "
                                                     "`python -m skipvae data fetch`)")


@pytest.fixture(scope="module")
def mnist_data():
    return load_mnist()


@pytest.fixture(scope="module")
def omniglot_builds(tmp_path_factory):
    """Build Omniglot once into an empty cache, then load it again from that cache: (built, cached, seconds)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKIPVAE_CACHE", str(tmp_path_factory.mktemp("cache")))
        built = load_omniglot()
        start = time.perf_counter()
        cached = load_omniglot()
        return built, cached, time.perf_counter() - start


@pytest.fixture(scope="module")
def yahoo_data():
    return load_yahoo()


def copy_dataset(dst_root: Path, dataset: str) -> Path:
    """A writable copy of one dataset folder of the real data under dst_root; returns dst_root."""
    shutil.copytree(DATA / dataset, dst_root / dataset)
    for p in (dst_root / dataset).iterdir():
        p.chmod(0o644)
    return dst_root


# ---------------------------------------------------------------- data directory


def test_resolve_order_explicit_then_env_then_dot_data_then_shared(tmp_path, monkeypatch):
    for name in ("explicit", "env", "cwd/data", "cwd2/shared/data"):
        (tmp_path / name / "mnist").mkdir(parents=True)
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path / "repo")
    monkeypatch.setenv("SKIPVAE_DATA", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path / "cwd")
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("SKIPVAE_DATA")
    assert resolve_data_dir() == tmp_path / "cwd" / "data"
    shutil.rmtree(tmp_path / "cwd" / "data")
    # ../shared/data relative to the repository root, i.e. the parent of the repo: tmp_path/shared/data
    (tmp_path / "shared" / "data" / "yahoo").mkdir(parents=True)
    assert resolve_data_dir() == tmp_path / "shared" / "data"
    shutil.rmtree(tmp_path / "shared")
    # then ../shared/data relative to the current directory
    (tmp_path / "cwd2" / "x").mkdir()
    monkeypatch.chdir(tmp_path / "cwd2" / "x")
    assert resolve_data_dir() == tmp_path / "cwd2" / "shared" / "data"


def test_resolve_nothing_found_lists_places_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIPVAE_DATA", raising=False)
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path / "a" / "repo")
    (tmp_path / "a" / "b" / "data").mkdir(parents=True)  # an empty ./data does not count
    monkeypatch.chdir(tmp_path / "a" / "b")
    with pytest.raises(DataError, match="tried") as e:
        resolve_data_dir()
    assert "./data" in str(e.value) and "SKIPVAE_DATA" in str(e.value) and "data fetch" in str(e.value)


def test_explicit_or_env_dir_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="--data-dir"):
        resolve_data_dir(tmp_path / "nope")
    monkeypatch.setenv("SKIPVAE_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="SKIPVAE_DATA"):
        resolve_data_dir()


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_CACHE", str(tmp_path / "c"))
    assert paths.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


# ---------------------------------------------------------------- manifest and check


@needs_data
def test_check_data_all_required_files_ok():
    rows = check_data()
    by_file = {r["file"]: r for r in rows}
    assert len(rows) == 12 and all_required_ok(rows)
    for name in ("train-images-idx3-ubyte.gz", "images_background.npz", "alphabets.tsv", "vocab.txt.gz"):
        assert by_file[name]["status"] == "OK"
    assert by_file["train-images-idx3-ubyte.gz"]["expected"] == (
        "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609")
    table = format_check_table(rows)
    assert table.splitlines()[0].split() == ["dataset", "file", "status"]
    assert len(table.splitlines()) == 2 + len(rows)


@needs_data
def test_check_data_reports_missing_bad_and_optional(tmp_path):
    root = copy_dataset(tmp_path, "mnist")
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    p = root / "mnist" / "train-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-10])
    (root / "omniglot").mkdir()
    (root / "omniglot" / "chardata.mat").write_bytes(b"not the real file")
    status = {r["file"]: r["status"] for r in check_data(root)}
    assert status["t10k-labels-idx1-ubyte.gz"] == "MISSING"
    assert status["train-labels-idx1-ubyte.gz"] == "BAD CHECKSUM"
    assert status["train-images-idx3-ubyte.gz"] == "OK"
    assert status["yahoo.train.txt.gz"] == "OPTIONAL: absent"
    assert status["chardata.mat"] == "BAD CHECKSUM"
    assert not all_required_ok(check_data(root))


def test_unknown_dataset_names_the_valid_ones(tmp_path):
    with pytest.raises(DataError, match="mnist, omniglot, yahoo"):
        manifest.entries("cifar")
    with pytest.raises(DataError, match="valid datasets"):
        load_dataset(RunConfig(dataset="cifar"), tmp_path)


def test_text_checksum_is_of_the_uncompressed_text(tmp_path):
    (tmp_path / "a.txt").write_text("hello\n")
    with gzip.open(tmp_path / "b.txt.gz", "wt") as f:
        f.write("hello\n")
    assert manifest.file_digest(tmp_path / "a.txt", of="text") == manifest.file_digest(tmp_path / "b.txt.gz", of="text")
    assert manifest.file_digest(tmp_path / "b.txt.gz", of="file") != manifest.file_digest(tmp_path / "a.txt")
    (tmp_path / "c.txt.gz").write_bytes((tmp_path / "b.txt.gz").read_bytes()[:-6])
    with pytest.raises(DataError, match="gzip"):
        manifest.file_digest(tmp_path / "c.txt.gz", of="text")


# ---------------------------------------------------------------- MNIST


@needs_data
def test_mnist_splits_shapes_dtypes_and_known_labels(mnist_data):
    d = mnist_data
    assert [d.num_examples(s) for s in ("train", "valid", "test")] == [50000, 10000, 10000]
    x, y = d.split_tensors("train")
    assert x.shape == (50000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(x * 255, (x * 255).round())  # gray levels are pixel / 255
    assert y[0] == 5 and d.labels("test")[0] == 7  # the first training digit is a 5, the first test digit a 7
    counts = torch.bincount(d.labels("train"), minlength=10) + torch.bincount(d.labels("valid"), minlength=10)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert d.labels("test").unique().tolist() == list(range(10)) and d.num_classes == 10


@needs_data
def test_mnist_valid_is_the_last_10000_training_images(mnist_data):
    labels = mnist.read_idx(DATA / "mnist" / "train-labels-idx1-ubyte.gz")
    images = mnist.read_idx(DATA / "mnist" / "train-images-idx3-ubyte.gz")
    assert torch.equal(mnist_data.labels("valid"), torch.from_numpy(labels[50000:].astype(np.int64)))
    assert torch.equal(mnist_data.gray("valid")[-1, 0], torch.from_numpy(images[-1] / np.float32(255)))


@needs_data
def test_training_binarization_is_fresh_per_epoch_and_reproducible(mnist_data):
    def first(epoch, seed):
        return next(iter(mnist_data.batches("train", 64, epoch=epoch, seed=seed)))

    x, y = first(3, 1)
    assert x.shape == (64, 1, 28, 28) and y.shape == (64,) and set(x.unique().tolist()) == {0.0, 1.0}
    x2, y2 = first(3, 1)
    assert torch.equal(x, x2) and torch.equal(y, y2)  # a resumed run sees the same batch
    assert not torch.equal(x, first(4, 1)[0]) and not torch.equal(x, first(3, 2)[0])
    # same images, new bits: unshuffled batches of two epochs differ only by the draw
    a = next(iter(mnist_data.batches("train", 500, epoch=0, shuffle=False)))[0]
    b = next(iter(mnist_data.batches("train", 500, epoch=1, shuffle=False)))[0]
    gray = mnist_data.gray("train")[:500]
    assert not torch.equal(a, b) and abs(a.mean() - gray.mean()) < 0.01 and abs(b.mean() - gray.mean()) < 0.01
    assert torch.all(a[gray == 0] == 0) and torch.all(a[gray == 1] == 1)


@needs_data
def test_test_bits_are_fixed_across_calls_seeds_instances_and_subsets(mnist_data):
    a = torch.cat([x for x, _ in mnist_data.batches("test", 1000, seed=0)])
    b = torch.cat([x for x, _ in mnist_data.batches("test", 300, seed=7, epoch=5)])
    assert torch.equal(a, b) and torch.equal(a, mnist_data.split_tensors("test")[0])
    assert set(a.unique().tolist()) == {0.0, 1.0}
    small = load_mnist(n_test=100)
    assert torch.equal(small.split_tensors("test")[0], a[:100])
    assert abs(a.mean() - mnist_data.gray("test").mean()) < 0.005
    assert not torch.equal(mnist_data.split_tensors("valid")[0][:100], a[:100])


@needs_data
def test_limit_subsets_and_argument_errors(mnist_data):
    sizes = [len(x) for x, _ in mnist_data.batches("train", 50, limit=120)]
    assert sizes == [50, 50, 20]
    labels = torch.cat([y for _, y in mnist_data.batches("valid", 40, limit=100)])
    assert torch.equal(labels, mnist_data.labels("valid")[:100])
    assert load_mnist(n_train=10, n_valid=20, n_test=30).num_examples("valid") == 20
    with pytest.raises(ConfigError, match="exceeds"):
        load_mnist(n_train=60000)
    with pytest.raises(ConfigError, match="valid splits"):
        mnist_data.num_examples("dev")
    with pytest.raises(ConfigError, match="batch_size"):
        next(mnist_data.batches("train", 0))
    with pytest.raises(ConfigError):
        mnist_data.eval_bits("train")


@needs_data
def test_mnist_missing_file_names_it_and_the_fix(tmp_path):
    root = copy_dataset(tmp_path, "mnist")
    (root / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is missing") as e:
        load_mnist(root)
    assert "data fetch" in str(e.value) and "data check" in str(e.value)


@needs_data
def test_truncated_gzip_is_a_checksum_error_and_a_parse_error(tmp_path):
    root = copy_dataset(tmp_path, "mnist")
    p = root / "mnist" / "train-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(DataError, match="wrong checksum") as e:
        load_mnist(root)
    assert "train-labels-idx1-ubyte.gz" in str(e.value)
    with pytest.raises(DataError, match="not a valid gzip"):
        load_mnist(root, verify=False)


def test_idx_header_and_body_must_agree(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(range(10))))
    assert mnist.read_idx(p).tolist() == list(range(10))
    p.write_bytes(gzip.compress((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(4)))
    with pytest.raises(DataError, match="truncated"):
        mnist.read_idx(p)
    p.write_bytes(gzip.compress(b"\x00\x00\x00\x07rest"))
    with pytest.raises(DataError, match="magic"):
        mnist.read_idx(p)


# ---------------------------------------------------------------- Omniglot


def test_area_weights_known_values_and_invariants():
    assert np.allclose(omniglot.area_weights(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    assert np.allclose(omniglot.area_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    w = omniglot.area_weights(105, 28)
    assert np.allclose(w.sum(1), 1) and np.allclose(w.sum(0), 28 / 105)
    rng = np.random.default_rng(0)
    images = rng.random((3, 105, 105)) < 0.1
    small = omniglot.area_downsample(images)
    assert small.shape == (3, 28, 28) and np.allclose(small.mean((1, 2)), images.mean((1, 2)), atol=1e-6)
    assert np.allclose(omniglot.area_downsample(np.ones((1, 105, 105), bool)), 1)
    k = omniglot.to_levels(small)  # exact multiples of 1/225
    assert np.allclose(k / 225, small, atol=1e-5)


@needs_data
def test_omniglot_splits_labels_values(omniglot_builds):
    d = omniglot_builds[0]
    assert [d.num_examples(s) for s in ("train", "valid", "test")] == [22345, 2000, 8115]
    x, y = d.split_tensors("train")
    assert x.shape == (22345, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and torch.allclose(x * 225, (x * 225).round(), atol=1e-4)
    assert d.num_classes == 50 and d.labels("test").unique().tolist() == list(range(50))
    # Arcadian (alphabet 0) has 26 characters: 15 drawings each in train + valid, 5 in test
    n_arcadian = int((d.labels("train") == 0).sum() + (d.labels("valid") == 0).sum())
    assert n_arcadian == 26 * 15 and int((d.labels("test") == 0).sum()) == 26 * 5
    assert set(d.split_tensors("valid")[0].unique().tolist()) == {0.0, 1.0}


@needs_data
def test_omniglot_build_preserves_total_ink(omniglot_builds):
    d = omniglot_builds[0]
    raw_ink = sum(float((~omniglot.read_raw_npz(DATA / "omniglot" / f"images_{s}.npz")).sum())
                  for s in omniglot.SETS) / (32460 * 105 * 105)
    built = torch.cat([d.gray(s).flatten() for s in ("train", "valid", "test")]).double().mean()
    assert 0.07 < raw_ink < 0.09 and abs(float(built) - raw_ink) < 1e-6


@needs_data
def test_omniglot_cached_load_is_identical_and_fast(omniglot_builds):
    built, cached, seconds = omniglot_builds
    for s in ("train", "valid", "test"):
        assert torch.equal(built.gray(s), cached.gray(s)) and torch.equal(built.labels(s), cached.labels(s))
    assert torch.equal(built.split_tensors("test")[0], cached.split_tensors("test")[0])
    assert seconds < 2.0


@needs_data
def test_corrupt_npz_is_a_data_error(tmp_path):
    root = copy_dataset(tmp_path, "omniglot")
    p = root / "omniglot" / "images_evaluation.npz"
    p.write_bytes(p.read_bytes()[:100_000])
    with pytest.raises(DataError, match="wrong checksum"):
        load_omniglot(root)
    with pytest.raises(DataError, match="corrupt or truncated"):
        omniglot.read_raw_npz(p)


def test_alphabet_table_must_cover_every_character(tmp_path):
    p = tmp_path / "alphabets.tsv"
    p.write_text("alphabet\tset\tnpz_first_index\tnpz_last_index\nA\tbackground\t0\t1\n")
    with pytest.raises(DataError, match="50 alphabets"):
        omniglot.read_alphabets(p, {"background": 3, "evaluation": 0})
    p.write_text("name\tset\nA\tbackground\n")
    with pytest.raises(DataError, match="not a valid alphabet table"):
        omniglot.read_alphabets(p, {"background": 3, "evaluation": 0})


def _fake_chardata(path: Path, n_train: int, n_test: int) -> np.ndarray:
    """A chardata.mat-like file; returns the first training image (row-major 28x28)."""
    image = np.arange(784, dtype=np.float32).reshape(28, 28) / 783
    data = np.zeros((784, n_train), np.float32)
    data[:, 0] = image.flatten(order="F")  # column-major 784-vectors, as in Burda's file
    target = np.zeros((50, n_train), np.uint8)
    target[7, :] = 1
    testtarget = np.zeros((50, n_test), np.uint8)
    testtarget[3, :] = 1
    scipy.io.savemat(path, dict(data=data, target=target, testdata=np.zeros((784, n_test), np.float32),
                                testtarget=testtarget), do_compression=True)
    return image


def test_chardata_is_read_column_major_with_alphabet_labels(tmp_path):
    image = _fake_chardata(tmp_path / "chardata.mat", 4, 2)
    train_x, train_y, test_x, test_y = omniglot.read_chardata(tmp_path / "chardata.mat")
    assert train_x.shape == (4, 28, 28) and test_x.shape == (2, 28, 28)
    assert np.array_equal(train_x[0], image) and train_y.tolist() == [7] * 4 and test_y.tolist() == [3, 3]
    (tmp_path / "bad.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match="chardata"):
        omniglot.read_chardata(tmp_path / "bad.mat")


def test_chardata_with_wrong_md5_is_refused_and_used_unverified(tmp_path):
    (tmp_path / "omniglot").mkdir()
    _fake_chardata(tmp_path / "omniglot" / "chardata.mat", omniglot.N_VALID + 5, 3)
    with pytest.raises(DataError, match="21ecaf34373511aa7691cf2e0802aa3d"):
        load_omniglot(tmp_path)
    d = load_omniglot(tmp_path, verify=False)
    assert [d.num_examples(s) for s in ("train", "valid", "test")] == [5, 2000, 3]
    assert "chardata.mat" in d.notes and set(d.labels("train").tolist()) == {7}


# ---------------------------------------------------------------- cache


def test_cache_builds_once_and_rebuilds_when_corrupt(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5, dtype=np.uint8), "b": np.eye(2)}

    first = cache.cached_arrays("t", "k1", build, folder=tmp_path)
    again = cache.cached_arrays("t", "k1", build, folder=tmp_path)
    assert len(calls) == 1 and np.array_equal(first["a"], again["a"]) and np.array_equal(again["b"], np.eye(2))
    path = tmp_path / "t-k1.npz"
    path.write_bytes(b"garbage")
    cache.cached_arrays("t", "k1", build, folder=tmp_path)
    assert len(calls) == 2
    np.savez(path, a=np.zeros(5, np.uint8), b=np.eye(2), **{cache.DIGEST_KEY: np.array("0" * 64)})
    assert np.array_equal(cache.cached_arrays("t", "k1", build, folder=tmp_path)["a"], np.arange(5))
    assert len(calls) == 3
    cache.cached_arrays("t", "k2", build, folder=tmp_path)  # another key, another build
    assert len(calls) == 4 and not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------- Yahoo


@needs_data
def test_yahoo_vocab_ids_and_round_trip(yahoo_data):
    v = yahoo_data.vocab
    assert len(v) == 19997 + 3
    assert (v.itos[PAD_ID], v.itos[BOS_ID], v.itos[EOS_ID]) == ("<pad>", "<s>", "</s>")
    assert v.stoi["why"] == 3 and v.unk_id == 3 + 26  # _UNK is line 27 of vocab.txt
    sentence = "why is the sky blue ?"
    ids = v.encode(sentence)
    assert len(ids) == 6 and v.unk_id not in ids and v.decode(ids) == sentence
    assert v.decode([BOS_ID] + ids + [EOS_ID, PAD_ID, PAD_ID]) == sentence
    assert v.encode("why zzqxjunknown") == [3, v.unk_id]


@needs_data
def test_yahoo_splits_and_token_counts(yahoo_data):
    d = yahoo_data
    assert [d.num_examples(s) for s in ("train", "valid", "test")] == [9000, 1000, 10000]
    assert d.num_tokens("test") == 788_673 + 10_000  # words of the test file (SOURCE.md) plus one </s> each
    assert d.num_tokens("train") + d.num_tokens("valid") == 790_680 + 10_000
    assert "validation file" in d.notes


@needs_data
def test_yahoo_batches_are_padded_length_sorted_and_complete(yahoo_data):
    seen, longest_so_far = 0, 0
    for x, y in yahoo_data.batches("valid", 32):
        assert y is None and x.dtype == torch.long and torch.all(x[:, 0] == BOS_ID)
        lengths = (x != PAD_ID).sum(1)
        assert torch.all((x == EOS_ID).sum(1) == 1) and torch.all(x[torch.arange(len(x)), lengths - 1] == EOS_ID)
        assert x.shape[1] == int(lengths.max())  # padded to the batch's longest document, no further
        assert int(lengths.min()) >= longest_so_far  # evaluation batches: sorted by length, short to long
        longest_so_far = int(lengths.max())
        seen += len(x)
    assert seen == 1000


@needs_data
def test_yahoo_training_order_depends_only_on_seed_and_epoch(yahoo_data):
    def epoch(e, seed=0):
        return [x for x, _ in yahoo_data.batches("train", 64, epoch=e, seed=seed, limit=640)]

    a, b, c = epoch(2), epoch(2), epoch(3)
    assert len(a) == 10 and all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(p.shape == q.shape and torch.equal(p, q) for p, q in zip(a, c))
    # each of the first 640 documents appears once: its words, <s> and </s>
    assert sum(int((x != PAD_ID).sum()) for x in a) == sum(len(d) + 2 for d in yahoo_data.documents("train")[:640])


@needs_data
def test_yahoo_max_len_truncates_and_keeps_split_sizes():
    d = load_yahoo(max_len=10)
    assert d.num_examples("test") == 10000 and max(len(doc) for doc in d.documents("test")) == 10
    x, _ = next(iter(d.batches("test", 8)))
    assert x.shape[1] <= 12
    with pytest.raises(ConfigError, match="max_len"):
        load_yahoo(max_len=0)


@needs_data
def test_yahoo_train_file_with_wrong_md5_is_refused(tmp_path):
    root = copy_dataset(tmp_path, "yahoo")
    (root / "yahoo" / "yahoo.train.txt").write_text("why is the sky blue ?\nhello world\n")
    with pytest.raises(DataError, match="yahoo.train.txt"):
        load_yahoo(root)
    d = load_yahoo(root, verify=False)  # unverified, the standard split is used
    assert d.num_examples("train") == 2 and d.num_examples("valid") == 10000
    assert d.vocab.decode(d.documents("train")[0]) == "why is the sky blue ?"


def test_truncated_text_gzip_is_a_data_error(tmp_path):
    p = tmp_path / "v.txt.gz"
    p.write_bytes(gzip.compress(b"a b c\n" * 1000)[:50])
    with pytest.raises(DataError, match="truncated or corrupt"):
        yahoo.read_lines(p)


def test_pad_batch_layout():
    x = pad_batch([[5, 6, 7], [9]])
    assert x.tolist() == [[BOS_ID, 5, 6, 7, EOS_ID], [BOS_ID, 9, EOS_ID, PAD_ID, PAD_ID]]


# ---------------------------------------------------------------- load_dataset


@needs_data
def test_load_dataset_respects_config_sizes():
    d = load_dataset(make_config("mnist", "vae", "smoke"))
    assert [d.num_examples(s) for s in ("train", "valid", "test")] == [100, 50, 50]
    t = load_dataset(make_config("yahoo", "vae", "smoke"))
    assert t.num_examples("train") == 64 and max(len(doc) for doc in t.documents("train")) <= 20


# ---------------------------------------------------------------- fetch


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_from_unreachable_url_fails_fast(tmp_path, monkeypatch):
    port = _closed_port()
    for name, entry in manifest.entries("mnist").items():  # never the internet in tests
        monkeypatch.setitem(entry, "url", f"http://127.0.0.1:{port}/{name}")
    start = time.perf_counter()
    with pytest.raises(DataError, match="could not download") as e:
        fetch_data(tmp_path, timeout=2, datasets=["mnist"])
    assert time.perf_counter() - start < 5 and "offline" in str(e.value)
    assert not list((tmp_path / "mnist").iterdir())  # no partial file left


def test_fetch_into_an_unwritable_place_is_a_data_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="cannot create"):
        fetch_data(tmp_path / "file" / "data")


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@needs_data
def test_fetch_downloads_verifies_gzips_text_and_skips_verified(tmp_path, monkeypatch, local_server):
    served, base = local_server
    for name, entry in manifest.entries("yahoo").items():
        monkeypatch.setitem(entry, "url", f"{base}/{name[:-3]}")
        if not entry.get("optional"):
            (served / name[:-3]).write_bytes(gzip.decompress((DATA / "yahoo" / name).read_bytes()))
    out = tmp_path / "out"
    written = fetch_data(out, datasets=["yahoo"])
    assert sorted(p.name for p in written) == ["vocab.txt.gz", "yahoo.test.txt.gz", "yahoo.valid.txt.gz"]
    rows = check_data(out, datasets=["yahoo"])
    assert all_required_ok(rows) and [r["status"] for r in rows].count("OK") == 3
    assert fetch_data(out, datasets=["yahoo"]) == []  # present and verified: skipped
    assert not [p for p in (out / "yahoo").iterdir() if ".part" in p.name]


@needs_data
def test_fetch_writes_packaged_alphabets_and_refuses_wrong_files(tmp_path, monkeypatch, local_server):
    served, base = local_server
    for name in ("images_background.npz", "images_evaluation.npz"):
        monkeypatch.setitem(manifest.entries("omniglot")[name], "url", f"{base}/{name}")
        shutil.copy(DATA / "omniglot" / name, served / name)
    out = tmp_path / "out"
    assert len(fetch_data(out, datasets=["omniglot"])) == 3
    assert (out / "omniglot" / "alphabets.tsv").read_bytes() == (DATA / "omniglot" / "alphabets.tsv").read_bytes()
    (out / "omniglot" / "images_evaluation.npz").unlink()
    (served / "images_evaluation.npz").write_bytes(b"not the npz")
    with pytest.raises(DataError, match="wrong checksum"):
        fetch_data(out, datasets=["omniglot"])
    assert sorted(p.name for p in (out / "omniglot").iterdir()) == ["alphabets.tsv", "images_background.npz"]


# `python -m skipvae data ensure` (what `make test` runs first): keep a verified folder, else fetch, else fail fast.

def _no_implicit_data(monkeypatch, tmp_path):
    """Run from an empty folder whose repository root has no ../shared/data either."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SKIPVAE_DATA", raising=False)
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path / "repo")


@needs_data
def test_ensure_keeps_a_verified_folder_without_fetching(monkeypatch):
    from skipvae.data.fetch import ensure_data

    def fetch(_):
        raise AssertionError("fetched although a verified data folder exists")

    assert ensure_data(DATA, fetch=fetch) == (DATA.resolve(), [])


@needs_data
def test_ensure_fetches_into_dot_data_when_none_is_found_then_verifies(monkeypatch, tmp_path):
    from skipvae.data.fetch import ensure_data

    _no_implicit_data(monkeypatch, tmp_path)
    calls = []

    def fetch(data_dir):  # stands in for the download: copies the verified files
        calls.append(data_dir)
        shutil.copytree(DATA, tmp_path / "data")
        return [tmp_path / "data"]

    root, written = ensure_data(fetch=fetch)
    assert calls == [None] and root == (tmp_path / "data").resolve() and written == [tmp_path / "data"]


def test_ensure_with_a_bad_fetch_result_is_a_data_error(monkeypatch, tmp_path):
    from skipvae.data.fetch import ensure_data

    _no_implicit_data(monkeypatch, tmp_path)

    def fetch(data_dir):
        (tmp_path / "data" / "mnist").mkdir(parents=True)
        (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"wrong")
        return []

    with pytest.raises(DataError, match="does not pass its checksums"):
        ensure_data(fetch=fetch)


def test_ensure_offline_exits_nonzero_within_seconds_with_the_fetch_message(monkeypatch, tmp_path, capsys):
    from skipvae.cli import main

    _no_implicit_data(monkeypatch, tmp_path)
    port = _closed_port()
    for dataset in manifest.dataset_names():
        for name, entry in manifest.entries(dataset).items():  # never the internet in tests
            if entry.get("url"):
                monkeypatch.setitem(entry, "url", f"http://127.0.0.1:{port}/{name}")
    start = time.perf_counter()
    assert main(["data", "ensure"]) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - start < 10
    assert err.startswith("error: could not download") and "offline" in err and "Traceback" not in err


@needs_data
def test_cpu_profile_keeps_yahoo_documents_no_shorter_than_the_test_mean(yahoo_data):
    # issue 15: the cpu profile cuts documents no shorter than the test documents' mean length (78.9 words)
    from skipvae.config import make_config

    mean_words = np.mean([len(doc) for doc in yahoo_data.documents("test")])
    assert 78 < mean_words <= make_config("yahoo", "vae", "cpu").max_len
