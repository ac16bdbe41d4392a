"""The paper's protocols (issue 11): the language model and unigram baselines, the MLP decoder's layer count,
the classification study on synthetic cases with known answers, the t-SNE scores, the ELBO on the NLL examples,
the paper tables rebuilt side by side, and the CLI's view of the paper profile."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from skipvae import report
from skipvae.cli import main
from skipvae.config import make_config
from skipvae.metrics import (MLPClassifier, classification_accuracy, evaluate, nll_examples_of, pca_pixel_accuracy,
                             tsne_scores)
from skipvae.models import build_model
from skipvae.models.unigram import UnigramModel, unigram_floor

VOCAB = 11


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class TinyText:
    """`batches(split, batch_size, shuffle)` and `num_examples(split)` over fixed token rows, as the text loaders
    give them."""

    def __init__(self, splits: dict[str, torch.Tensor]):
        self.splits = splits
        self.vocab = list(range(VOCAB))

    def num_examples(self, split):
        return len(self.splits[split])

    def batches(self, split, batch_size, shuffle=False, **_):
        x = self.splits[split]
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size], None


def rows(*docs):
    """<s> words </s> <pad>... for each list of word ids."""
    T = max(len(d) for d in docs) + 2
    x = torch.zeros(len(docs), T, dtype=torch.long)
    for r, d in enumerate(docs):
        x[r, 0], x[r, 1:len(d) + 1], x[r, len(d) + 1] = 1, torch.tensor(d), 2
    return x


# ------------------------------------------------------------------------------------- the language model

def lm(**kw):
    torch.manual_seed(0)
    cfg = make_config("yahoo", "lm", "smoke", emb_dim=6, dec_hidden=7, **kw)
    return cfg, build_model(cfg, vocab_size=VOCAB)


def test_the_language_model_is_the_decoder_without_z():
    cfg, model = lm()
    assert cfg.latent_dim == 0 and model.decoder.z_to_h0 is None
    assert model.decoder.rnns[0].input_size == 6  # the word embedding only: no z concatenated
    vae = build_model(make_config("yahoo", "vae", "smoke", emb_dim=6, dec_hidden=7), vocab_size=VOCAB)
    lm_params = {k: v.shape for k, v in model.decoder.named_parameters()}
    vae_params = {k: v.shape for k, v in vae.decoder.named_parameters() if not k.startswith("z_to_h0")}
    assert set(lm_params) == set(vae_params)  # the same network, less what z feeds


def test_the_language_model_elbo_is_its_exact_likelihood():
    _, model = lm(dropout=0.0)
    model.eval()
    x = rows([3, 4, 5], [6, 7], [8])
    out = model(x)
    assert torch.equal(out["kl"], torch.zeros(3))
    exact = model.decoder.log_likelihood(x, torch.zeros(3, 0))
    torch.testing.assert_close(-out["rec"], exact)
    data = TinyText({"test": x})
    metrics = evaluate(model, data, iw_samples=50, batch_size=2)
    assert metrics["iw_samples"] == 1  # no latent variable: one "sample" is exact
    assert metrics["nll"] == pytest.approx(metrics["neg_elbo"]) == pytest.approx(-exact.mean().item())
    assert (metrics["kl"], metrics["mi"], metrics["au_0.01"]) == (0.0, 0.0, 0)


def test_the_elbo_is_also_reported_on_the_nll_examples():
    cfg = make_config("yahoo", "vae", "smoke", latent_dim=2, emb_dim=6, enc_hidden=5, dec_hidden=7, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(cfg, vocab_size=VOCAB)
    x = rows([3, 4, 5], [6, 7], [8], [9, 10, 3, 4])
    full = evaluate(model, TinyText({"test": x}), iw_samples=4, n_eval_nll=2, batch_size=2)
    head = evaluate(model, TinyText({"test": x[:2]}), iw_samples=4, batch_size=2)
    assert full["nll_examples"] == 2 and full["nll"] == pytest.approx(head["nll"])
    assert full["neg_elbo_nll_examples"] == pytest.approx(head["neg_elbo"])  # the same documents, the same noise
    assert full["neg_elbo_nll_examples"] != pytest.approx(full["neg_elbo"])  # not the ELBO of all four
    assert full["nll_tokens"] == 4 + 3  # words and </s> of the first two documents
    assert full["neg_elbo_per_word_nll_examples"] == pytest.approx(head["neg_elbo"] * 2 / 7)
    every = evaluate(model, TinyText({"test": x}), iw_samples=4, batch_size=2)
    assert every["neg_elbo_nll_examples"] == pytest.approx(every["neg_elbo"])


# ------------------------------------------------------------------------------------- the unigram floor

def test_unigram_probabilities_and_smoothing_chosen_on_validation():
    train = rows([3, 3, 4], [3])  # targets: 3 3 4 </s> 3 </s>
    data = TinyText({"train": train, "valid": rows([3, 4]), "test": rows([3], [5])})
    model = UnigramModel(VOCAB).fit(data, alphas=(1.0,))
    p = model.log_prob.exp()
    support = VOCAB - 2  # every id but <pad> and <s>
    assert p[3].item() == pytest.approx((3 + 1) / (6 + support))
    assert p[2].item() == pytest.approx((2 + 1) / (6 + support))
    assert p[0].item() == 0 and p[1].item() == 0 and p.sum().item() == pytest.approx(1.0)
    lp = model.log_likelihood(rows([3], [5]))
    torch.testing.assert_close(lp, torch.stack([p[3].log() + p[2].log(), p[5].log() + p[2].log()]))
    # validation words all seen in training: the least smoothing wins
    assert UnigramModel(VOCAB).fit(data, alphas=(1.0, 0.1, 0.01)).alpha == 0.01
    lp = UnigramModel(VOCAB).fit(data).log_likelihood(rows([3], [5]))  # the floor's own smoothing
    first = unigram_floor(data, examples=nll_examples_of(2, 1, "first", seed=0))
    assert first["n_docs"] == 1 and first["n_tokens"] == 2  # the first document: 3 </s>
    assert first["nll"] == pytest.approx(-float(lp[0])) and first["ppl"] == pytest.approx(math.exp(first["nll"] / 2))
    second = torch.tensor([False, True])  # what a random subset may draw: the second document alone, 5 </s>
    assert unigram_floor(data, examples=second, batch_size=1)["nll"] == pytest.approx(-float(lp[1]))
    every = unigram_floor(data)
    assert every["n_docs"] == 2 and every["nll"] == pytest.approx(-float(lp.sum()) / 2)


def test_the_unigram_floor_is_scored_on_the_runs_nll_documents(tmp_path, monkeypatch):
    """The floor beside a text table is scored on the documents that get the runs' IW-NLL: the first n_eval_nll,
    or with nll_subset 'random' those drawn with the run's seed (one reference per seed)."""
    import json

    from skipvae.runner import unigram_reference
    from synthetic import use_synthetic_data

    use_synthetic_data(monkeypatch)
    monkeypatch.setattr("skipvae.runner.results_dir", lambda experiment, profile: tmp_path / experiment)
    first = unigram_reference(make_config("yahoo", "lm", "smoke", n_eval_nll=7), "yahoo")
    assert first["metrics"]["n_docs"] == 7 and "nll_subset" not in first["settings"]
    assert (tmp_path / "yahoo" / "reference" / "unigram.json").is_file()
    drawn = [unigram_reference(make_config("yahoo", "lm", "smoke", n_eval_nll=7, nll_subset="random", seed=s),
                               "yahoo") for s in (0, 1)]
    assert [d["settings"]["seed"] for d in drawn] == [0, 1] and {d["metrics"]["n_docs"] for d in drawn} == {7}
    assert len({d["metrics"]["nll"] for d in drawn + [first]}) == 3  # three different sets of documents
    stored = json.loads((tmp_path / "yahoo" / "reference" / "unigram-random-s1.json").read_text())
    assert stored["metrics"] == drawn[1]["metrics"]


# ------------------------------------------------------------------------------------- the MLP decoder

@pytest.mark.parametrize("layers", [2, 3, 4])
def test_mlp_decoder_layers_count_the_hidden_layers_that_get_skips(layers):
    cfg = make_config("mnist", "skip-vae", "smoke", arch="mlp", dec_layers=layers, mlp_hidden=6, latent_dim=3)
    model = build_model(cfg)
    dec = model.decoder
    assert len(dec.hidden) == layers and len(dec.z_skips) == layers  # Table 3's "2/3/4 layers"
    linears = [m for m in dec.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 * layers + 2  # + Linear(z -> h) in front, Linear(h -> 784) out
    enc = [m for m in model.encoder.mlp if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in enc] == [6, 6]  # the encoder: 2 hidden layers of mlp_hidden units
    paper = make_config("mnist", "skip-vae", "paper", arch="mlp", dec_layers=layers)
    assert (paper.mlp_hidden, paper.latent_dim) == (512, 50)


# ------------------------------------------------------------------------------------- classification

def clusters(n, d=4, classes=3, seed=0, separated=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = rng.normal(size=(n, d))
    if separated:
        X[:, 0] += 20.0 * y
    return X, y


def test_the_paper_classifier_architecture():
    clf = MLPClassifier(n_features=5, n_classes=10)
    shapes = [m.weight.shape for m in clf.net if isinstance(m, torch.nn.Linear)]
    assert shapes == [(1024, 5), (1024, 1024), (10, 1024)]
    assert [m.p for m in clf.net if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]
    assert sum(isinstance(m, torch.nn.ReLU) for m in clf.net) == 2


def test_classifiers_on_separable_and_on_random_labels():
    """Known answers: well-separated clusters are classified perfectly; random labels at chance."""
    X, y = clusters(600)
    out = classification_accuracy(X[:400], y[:400], X[400:], y[400:], mlp_epochs=5)
    assert {k for k in out if k.endswith("_accuracy")} == {"mlp_accuracy", "logreg_accuracy", "knn1_accuracy",
                                                           "knn5_accuracy"}
    assert all(out[f"{k}_accuracy"] == 1.0 for k in ("mlp", "logreg", "knn1", "knn5"))
    assert out["mlp_stderr"] == 0.0 and (out["n_train"], out["n_test"]) == (400, 200)
    X, y = clusters(1200, separated=False, seed=1)
    out = classification_accuracy(X[:800], y[:800], X[800:], y[800:], mlp_epochs=5)
    for k in ("mlp", "logreg", "knn5"):
        assert abs(out[f"{k}_accuracy"] - 1 / 3) < 4 * math.sqrt(2 / 9 / 400), k


def test_the_mlp_classifier_is_deterministic_given_its_seed():
    X, y = clusters(300, separated=False)
    a = classification_accuracy(X[:200], y[:200], X[200:], y[200:], seed=3, mlp_epochs=2)
    b = classification_accuracy(X[:200], y[:200], X[200:], y[200:], seed=3, mlp_epochs=2)
    assert a == b


def test_pca_reference_classifies_pixels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    pixels = (rng.random((300, 1, 28, 28)) < 0.1).astype(np.float32)
    pixels[y == 1, 0, :14] = 1.0  # class 1: the top half is ink
    out = pca_pixel_accuracy(pixels[:200], y[:200], pixels[200:], y[200:], n_components=5, mlp_epochs=3)
    assert out["logreg_accuracy"] == 1.0 and out["mlp_accuracy"] == 1.0
    with pytest.raises(Exception, match="n_components=500"):
        pca_pixel_accuracy(pixels[:200], y[:200], pixels[200:], y[200:], n_components=500)


def test_tsne_scores_separated_and_mixed():
    X, y = clusters(300, d=2)
    good = tsne_scores(X, y)
    assert good["tsne_silhouette"] > 0.6 and good["tsne_knn5_accuracy"] == 1.0
    X, y = clusters(300, d=2, separated=False)
    bad = tsne_scores(X, y)
    assert abs(bad["tsne_silhouette"]) < 0.1 and bad["tsne_knn5_accuracy"] < 0.5


# ------------------------------------------------------------------------------------- paper tables

def write(root, dataset, model, seed, arch=None, **values):
    cfg_keys = {k: values.pop(k) for k in ("latent_dim", "dec_layers") if k in values}
    cfg = make_config(dataset, model, "cpu", arch=arch, seed=seed, **cfg_keys)
    record = {"status": "finished", "name": cfg.run_name(), "config": cfg.to_dict(),
              "metrics": {"nll": 90.0, "neg_elbo": 92.0, "kl": 2.0, "mi": 1.0, "au_0.01": 3} | values}
    path = root / "latent_dim" / "runs" / f"{cfg.run_name()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_side_by_side_has_the_paper_rows_and_columns(tmp_path):
    for seed, kl in ((0, 4.0), (1, 6.0)):
        write(tmp_path, "mnist", "skip-vae", seed, latent_dim=10, kl=kl, neg_elbo=100.0 + seed)
    runs = report.load_runs("latent_dim", root=tmp_path)
    table = report.side_by_side(runs, "table1")
    quoted = report.paper_numbers()["tables"]["table1"]
    assert len(table) == len(quoted) == 10  # 5 dimensions x (VAE, Skip-VAE)
    assert list(table.columns[:3]) == ["latent dim", "model", "seeds"]
    row = table[(table["latent dim"] == "10") & (table["model"] == "skip-vae")].iloc[0]
    assert row["KL paper"] == "9.41" and row["KL ours"] == "5.00 ± 1.41" and row["seeds"] == "2"
    assert row["ELBO ours"] == "-100.50 ± 0.71"  # the paper's sign: ELBO = -neg_elbo
    missing = table[(table["latent dim"] == "2") & (table["model"] == "vae")].iloc[0]
    assert missing["KL ours"] == "not yet run" and missing["KL paper"] == "3.13"
    assert table.attrs["profile"] == "cpu"
    only = report.side_by_side(runs, "table1", where={"latent_dim": 10})
    assert list(only["latent dim"]) == ["10", "10"]


def test_text_table_has_the_lm_row_and_an_extra_floor_row():
    table = report.side_by_side(pd.DataFrame(columns=["profile", "seed", "model", "latent_dim"]), "table4",
                                extra_rows=report.floor_row({"ppl": 500.0, "nll": 185.0}))
    assert list(table["model"]) == ["lm", "vae", "skip-vae", "sa-vae", "skip-sa-vae", "sa-vae", "skip-sa-vae",
                                    "unigram (floor)"]
    assert table.iloc[0]["PPL paper"] == "61.6" and table.iloc[-1]["PPL ours"] == "500.0"
    assert (table.iloc[:-1]["PPL ours"] == "not yet run").all()


# ------------------------------------------------------------------------------------- the CLI

def test_train_help_at_the_paper_profile_shows_the_paper_settings(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--profile", "paper", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--profile paper for mnist/pixelcnn/vae" in text
    assert "[9]" in text and "(paper: 10) [10]" in text  # 9 PixelCNN layers, 10 SVI steps


@pytest.mark.parametrize("argv,expected", [
    (["--profile", "paper"], dict(dec_layers=9, svi_steps=10, latent_dim=20, model="vae")),
    (["--profile", "paper", "--arch", "mlp", "--model", "skip-vae"], dict(mlp_hidden=512, latent_dim=50,
                                                                          dec_layers=2, skip=True)),
    (["--profile", "paper", "--dataset", "yahoo", "--model", "lm"], dict(latent_dim=0, iw_samples=200,
                                                                         inference="none")),
    (["--profile", "paper", "--model", "skip_sa_vae"], dict(model="skip-sa-vae", inference="semi-amortized")),
    (["--profile", "smoke", "--skip", "on", "--inference", "semi-amortized"], dict(model="skip-sa-vae")),
])
def test_train_dry_run_prints_the_config(capsys, argv, expected):
    assert main(["train", *argv, "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert {k: cfg[k] for k in expected} == expected
