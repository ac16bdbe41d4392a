"""Metrics against known answers: a linear-Gaussian model has closed forms for log p(x), p(z|x) and I(x; z)."""

import json
import math

import numpy as np
import pytest
import torch

from skipvae.errors import ConfigError, DataError, TrainingError
from skipvae.linear_gaussian import LinearGaussian
from skipvae.metrics import (active_units, classification_accuracy, evaluate, gaussian_kl, iw_log_marginal, iw_nll,
                             log_normal_diag, log_standard_normal, mutual_information, nll_examples_of,
                             posterior_mean_variance,
                             posterior_means, sample_diag_gaussian, tsne_embedding)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def lg():
    """x in R^8, z in R^3, exact posterior diagonal; I(x; z) = 0.5 sum log(1 + s^2), s = 0.5, 1.75, 3."""
    return LinearGaussian.random(8, 3, seed=0)


class TensorData:
    """The data interface of skipvae (batches(split, batch_size, shuffle=False) -> (x, y), num_examples(split))
    over tensors."""

    def __init__(self, x, y=None, split="test"):
        self.x, self.y, self.split = x, y, split

    def num_examples(self, split):
        return len(self.x)

    def batches(self, split, batch_size, shuffle=False):
        assert split == self.split and not shuffle
        for i in range(0, len(self.x), batch_size):
            yield self.x[i:i + batch_size], None if self.y is None else self.y[i:i + batch_size]


def kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) summed over dimensions."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)


# ---------------------------------------------------------------------------------------------------------
# Densities and KL
# ---------------------------------------------------------------------------------------------------------

def test_gaussian_kl_known_values_and_torch_distributions():
    mu = torch.tensor([[0.0, 1.0, -2.0]])
    logvar = torch.tensor([[0.0, 0.0, math.log(4.0)]])
    expected = torch.tensor([[0.0, 0.5, 0.5 * (4 + 4 - 1 - math.log(4))]])
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(0.0, 1.0)
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, prior))


def test_log_densities_match_torch_distributions():
    g = gen()
    z, mu, logvar = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    normal = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    torch.testing.assert_close(log_normal_diag(z, mu, logvar), normal.log_prob(z).sum(-1))
    torch.testing.assert_close(log_standard_normal(z), log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z)))


def test_sample_diag_gaussian_moments():
    mu, logvar = torch.tensor([[1.0, -2.0]]).expand(20000, 2), torch.tensor([[0.0, math.log(9.0)]]).expand(20000, 2)
    z = sample_diag_gaussian(mu, logvar, gen())
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.06, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 3.0]), atol=0.06, rtol=0)


# ---------------------------------------------------------------------------------------------------------
# The linear-Gaussian model's closed forms
# ---------------------------------------------------------------------------------------------------------

def test_linear_gaussian_posterior_matches_gaussian_conditioning(lg):
    x, _ = lg.sample(6, gen(1))
    mean, logvar = lg.exact_posterior(x)
    cov_x = lg.W @ lg.W.T + torch.diag(lg.noise_var)  # Cov(x); Cov(z, x) = W^T
    torch.testing.assert_close(mean, (x - lg.b) @ torch.linalg.solve(cov_x, lg.W))
    post_cov = torch.eye(3, dtype=torch.float64) - lg.W.T @ torch.linalg.solve(cov_x, lg.W)
    torch.testing.assert_close(logvar[0].exp(), torch.diagonal(post_cov))
    torch.testing.assert_close(post_cov, torch.diag(torch.diagonal(post_cov)))


def test_linear_gaussian_mutual_information_closed_and_monte_carlo(lg):
    s = torch.linspace(0.5, 3.0, 3, dtype=torch.float64)
    assert lg.mutual_information() == pytest.approx(0.5 * torch.log1p(s ** 2).sum().item(), abs=1e-12)
    x, z = lg.sample(20000, gen(2))  # I(x; z) = E[log p(x|z) - log p(x)]
    mc = lg.log_likelihood(x, z) - lg.log_marginal(x)
    assert abs(mc.mean().item() - lg.mutual_information()) < 4 * mc.std().item() / math.sqrt(len(mc))


def test_linear_gaussian_rejects_bad_inputs():
    W = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)  # W^T W not diagonal
    model = LinearGaussian(W, torch.zeros(2, dtype=torch.float64), 1.0)
    with pytest.raises(ConfigError, match="correlated"):
        model.exact_posterior(torch.zeros(1, 2, dtype=torch.float64))
    closed_form = 0.5 * torch.logdet(torch.eye(2, dtype=torch.float64) + W.T @ W).item()  # noise_var = 1
    assert model.mutual_information() == pytest.approx(closed_form, rel=1e-12)
    with pytest.raises(ConfigError, match="positive"):
        LinearGaussian(W, torch.zeros(2, dtype=torch.float64), 0.0)
    with pytest.raises(ConfigError, match="latent_dim"):
        LinearGaussian.random(2, 3)


# ---------------------------------------------------------------------------------------------------------
# Importance-weighted NLL
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("K, chunk", [(1, 1), (3, 2), (50, 7), (200, 200)])
def test_iw_with_exact_posterior_is_log_marginal_for_any_K(lg, K, chunk):
    x, _ = lg.sample(16, gen(3))
    est = iw_log_marginal(lg, x, K, chunk, generator=gen(4))
    torch.testing.assert_close(est, lg.log_marginal(x), atol=1e-10, rtol=0)
    torch.testing.assert_close(iw_nll(lg, x, K, chunk, generator=gen(4)), -est)


@pytest.mark.parametrize("shift, logvar_shift", [(1.0, 0.0), (0.4, 0.7)])
def test_iw_with_worse_proposal_converges_from_above(lg, shift, logvar_shift):
    worse = LinearGaussian(lg.W, lg.b, lg.noise_var, proposal_shift=shift, proposal_logvar_shift=logvar_shift)
    x, _ = worse.sample(300, gen(5))
    true_nll = -worse.log_marginal(x)
    mu_q, logvar_q = worse.encode(x)
    # K = 1: the expected gap is the ELBO's, KL(q(z|x) || p(z|x))
    elbo_gap = kl_diag_gaussians(mu_q, logvar_q, *worse.exact_posterior(x)).mean().item()
    gaps, errs = {}, {}
    for K in (1, 10, 100, 1000):
        d = iw_nll(worse, x, K, chunk=100, generator=gen(K)) - true_nll
        gaps[K], errs[K] = d.mean().item(), d.std().item() / math.sqrt(len(d))
        assert gaps[K] > -3 * errs[K], f"IW-NLL below -log p(x) beyond Monte-Carlo noise at K={K}"
    assert abs(gaps[1] - elbo_gap) < 4 * errs[1]
    if shift == 1.0:  # a narrow, shifted proposal: slow but steady convergence
        assert gaps[1] > gaps[10] > gaps[100] > gaps[1000] > 0
        assert gaps[1000] < 0.15 * gaps[1]
    else:  # a wide proposal: at K = 1000 the bound is tight up to Monte-Carlo noise
        assert gaps[1] > gaps[10] > 0.1
        assert abs(gaps[1000]) < 3 * errs[1000] < 0.01


def test_iw_chunks_bound_the_model_batch():
    calls = []

    class Recording(LinearGaussian):
        def log_likelihood(self, x, z):
            calls.append((x.shape[0], z.shape[0]))
            return super().log_likelihood(x, z)

    model = Recording(*(lambda m: (m.W, m.b, m.noise_var))(LinearGaussian.random(4, 2, seed=1)))
    x, _ = model.sample(5, gen(6))
    iw_log_marginal(model, x, K=23, chunk=10)
    assert calls == [(50, 50), (50, 50), (15, 15)]


@pytest.mark.parametrize("arch", ["pixelcnn", "lstm"])
def test_iw_max_batch_splits_the_calls_and_keeps_the_numbers(arch):
    """max_batch only splits each chunk's rows into smaller likelihood calls: the same random draws, the same
    estimate bit for bit (the faster default, IW_MAX_BATCH, against one call per chunk as before)."""
    from skipvae.config import make_config
    from skipvae.models import build_model

    dataset = "yahoo" if arch == "lstm" else "mnist"
    cfg = make_config(dataset, "skip-vae", "smoke", latent_dim=3, enc_channels=4, dec_layers=2, dec_channels=4,
                      emb_dim=6, enc_hidden=5, dec_hidden=7)
    torch.manual_seed(0)
    model = build_model(cfg, vocab_size=11 if arch == "lstm" else None).eval()
    if arch == "lstm":
        x = torch.randint(3, 11, (5, 6))
        x[:, 0], x[:, -1] = 1, 2
    else:
        x = torch.bernoulli(torch.full((5, 1, 28, 28), 0.3), generator=gen(1))
    sizes, log_likelihood = [], model.log_likelihood

    def recording(x, z):
        sizes.append(x.shape[0])
        return log_likelihood(x, z)

    model.log_likelihood = recording
    split = iw_log_marginal(model, x, K=9, chunk=4, generator=gen(2), max_batch=7)
    assert sizes == [7, 7, 6, 7, 7, 6, 5]  # chunks of 4, 4, 1 samples x 5 examples, cut at 7 rows
    whole = iw_log_marginal(model, x, K=9, chunk=4, generator=gen(2), max_batch=None)
    assert sizes[7:] == [20, 20, 5]
    assert torch.equal(split, whole)


def test_iw_input_errors(lg):
    x, _ = lg.sample(4, gen(7))
    mu, logvar = lg.encode(x)
    for kwargs, match in [(dict(K=0), "K=0"), (dict(K=5, chunk=0), "chunk=0"), (dict(K=2.5), "K=2.5"),
                          (dict(K=5, mu=mu), "both mu and logvar"),
                          (dict(K=5, mu=mu[:2], logvar=logvar[:2]), r"B = 4")]:
        with pytest.raises(ConfigError, match=match):
            iw_log_marginal(lg, x, **kwargs)

    class Broken(LinearGaussian):
        def log_likelihood(self, x, z):
            return torch.full((x.shape[0],), float("nan"), dtype=x.dtype)

    with pytest.raises(TrainingError, match="NaN"):
        iw_log_marginal(Broken(lg.W, lg.b, lg.noise_var), x, K=3)
    with pytest.raises(TrainingError, match="not finite"):
        iw_log_marginal(lg, x, K=3, mu=mu * float("nan"), logvar=logvar)


# ---------------------------------------------------------------------------------------------------------
# Mutual information
# ---------------------------------------------------------------------------------------------------------

def test_mi_of_exact_posteriors_matches_closed_form(lg):
    x, _ = lg.sample(4000, gen(8))
    mu, logvar = lg.exact_posterior(x)
    estimate = mutual_information(mu, logvar, generator=gen(9))
    assert estimate == pytest.approx(lg.mutual_information(), abs=0.05)
    assert estimate <= math.log(len(x))


def test_mi_matches_brute_force_for_any_chunk():
    g = gen(10)
    mu, logvar = torch.randn(60, 5, generator=g), torch.randn(60, 5, generator=g) - 1
    z = sample_diag_gaussian(mu, logvar, g)
    log_q = log_normal_diag(z[:, None, :].double(), mu[None].double(), logvar[None].double())  # [i, j]
    brute = (log_q.diagonal() - torch.logsumexp(log_q, 1) + math.log(60)).mean().item()
    for chunk in (1, 7, 60, 1000):
        assert mutual_information(mu, logvar, z=z, chunk=chunk) == pytest.approx(brute, abs=1e-10)


def test_mi_is_zero_for_identical_posteriors_and_at_most_log_n():
    mu, logvar = torch.full((50, 4), 0.3), torch.full((50, 4), -0.5)
    assert mutual_information(mu, logvar, generator=gen(11)) == pytest.approx(0.0, abs=1e-12)
    far = torch.arange(50.0)[:, None].repeat(1, 4) * 10  # posteriors that never overlap: MI = log N
    tight = torch.full((50, 4), -10.0)
    estimate = mutual_information(far, tight, generator=gen(12))
    assert estimate <= math.log(50) + 1e-12
    assert estimate == pytest.approx(math.log(50), abs=1e-6)
    g = gen(13)
    for _ in range(5):  # any z at all: every term is <= log N
        mu, logvar, z = (torch.randn(30, 3, generator=g) * 5 for _ in range(3))
        assert mutual_information(mu, logvar, z=z) <= math.log(30) + 1e-12


def test_mi_input_errors():
    mu = torch.zeros(5, 2)
    with pytest.raises(ConfigError, match="at least 2"):
        mutual_information(mu[:1], mu[:1])
    with pytest.raises(ConfigError, match="one z per example"):
        mutual_information(mu, mu, z=torch.zeros(4, 2))
    with pytest.raises(ConfigError, match="mu and logvar"):
        mutual_information(mu, torch.zeros(5, 3))
    with pytest.raises(ConfigError, match="chunk=0"):
        mutual_information(mu, mu, chunk=0)
    with pytest.raises(TrainingError, match="not finite"):
        mutual_information(mu, torch.full((5, 2), float("inf")))


# ---------------------------------------------------------------------------------------------------------
# Active units
# ---------------------------------------------------------------------------------------------------------

def test_active_units_on_constructed_means():
    g = gen(14)
    target = torch.tensor([0.5, 0.015, 0.005, 0.0, 0.03], dtype=torch.float64)  # variances of the columns
    cols = torch.randn(200, 5, generator=g, dtype=torch.float64)
    mu = (cols - cols.mean(0)) / cols.std(0) * target.sqrt() + 3.0
    mu[:, 3] = 1.0
    torch.testing.assert_close(posterior_mean_variance(mu), target)
    assert active_units(mu, 0.01) == 3
    assert active_units(mu, 0.02) == 2
    assert active_units(mu, 0.0) == 4
    with pytest.raises(ConfigError, match="threshold"):
        active_units(mu, -0.1)
    with pytest.raises(ConfigError, match="N >= 2"):
        active_units(mu[:1])


# ---------------------------------------------------------------------------------------------------------
# evaluate()
# ---------------------------------------------------------------------------------------------------------

def test_evaluate_linear_gaussian_known_answers(lg):
    x, _ = lg.sample(600, gen(15))
    data = TensorData(x)
    lg.train()
    out = evaluate(lg, data, iw_samples=20, iw_chunk=8, n_eval_nll=100, batch_size=64, seed=1)
    assert lg.training, "evaluate must restore the model's mode"
    assert out["n_examples"] == 600 and out["nll_examples"] == 100 and out["iw_samples"] == 20
    assert out["nll"] == pytest.approx(-lg.log_marginal(x[:100]).mean().item(), abs=1e-9)
    mu, logvar = lg.exact_posterior(x)
    assert out["kl"] == pytest.approx(gaussian_kl(mu, logvar).sum(1).mean().item(), rel=1e-9)
    assert sum(out["kl_per_dim"]) == pytest.approx(out["kl"], rel=1e-12)
    assert len(out["kl_per_dim"]) == 3
    assert out["neg_elbo"] == pytest.approx(out["rec"] + out["kl"], rel=1e-12)
    # with the exact posterior the ELBO is log p(x) up to the noise of one z per example
    assert out["neg_elbo"] == pytest.approx(-lg.log_marginal(x).mean().item(), abs=0.25)
    assert out["mi"] == pytest.approx(lg.mutual_information(), abs=0.15)
    assert out["au_0.01"] == out["au_0.02"] == 3
    assert "mi_amortized" not in out and "ppl" not in out
    assert set(out["timing"]) >= {"posterior", "neg_elbo", "nll", "mi", "au", "total"}
    json.dumps(out)
    again = evaluate(lg, data, iw_samples=20, iw_chunk=8, n_eval_nll=100, batch_size=64, seed=1)
    assert {k: v for k, v in again.items() if k != "timing"} == {k: v for k, v in out.items() if k != "timing"}
    other = evaluate(lg, data, iw_samples=20, iw_chunk=8, n_eval_nll=0, batch_size=64, seed=2, limit=250)
    assert other["neg_elbo"] != out["neg_elbo"] and other["n_examples"] == 250
    assert other["nll"] is None and other["nll_examples"] == 0


def test_the_iw_nll_subset_is_the_first_or_a_seeded_random_draw_with_its_standard_error(lg):
    x, _ = lg.sample(600, gen(15))
    first = nll_examples_of(600, 100, "first", seed=1)
    assert first.sum() == 100 and first[:100].all()
    drawn = nll_examples_of(600, 100, "random", seed=1)
    assert drawn.sum() == 100 and not drawn[:100].all() and drawn[100:].any()
    assert torch.equal(drawn, nll_examples_of(600, 100, "random", seed=1))
    assert not torch.equal(drawn, nll_examples_of(600, 100, "random", seed=2))
    assert nll_examples_of(600, None, "random", seed=1).all()
    out = evaluate(lg, TensorData(x), iw_samples=20, iw_chunk=8, n_eval_nll=100, batch_size=64, seed=1,
                   nll_subset="random")
    exact = -lg.log_marginal(x[drawn]).double()  # the exact posterior: the IW estimate is exact
    assert out["nll_subset"] == "random" and out["nll_examples"] == 100
    assert out["nll"] == pytest.approx(exact.mean().item(), abs=1e-9)
    assert out["nll_se"] == pytest.approx((exact.std() / 10).item(), rel=1e-6)
    with pytest.raises(ConfigError, match="nll_subset='shortest'.*first, random"):
        nll_examples_of(600, 100, "shortest", seed=1)


def test_the_iw_nll_in_bf16_runs_the_decoder_under_autocast_and_stays_close_to_fp32():
    """nll_amp: the likelihood calls of the IW-NLL (and only they) run under bf16 autocast; the estimate moves by
    rounding only (a small PixelCNN, 8 images), while the ELBO, KL and MI are those of fp32."""
    from skipvae.config import make_config
    from skipvae.models import build_model

    torch.manual_seed(0)
    model = build_model(make_config("mnist", "vae", "smoke", latent_dim=3, dec_layers=2, dec_channels=8)).eval()
    x = torch.bernoulli(torch.full((8, 1, 28, 28), 0.3), generator=gen(3))
    seen, log_likelihood = [], model.log_likelihood

    def recording(x, z):
        seen.append(torch.is_autocast_enabled("cpu"))
        return log_likelihood(x, z)

    model.log_likelihood = recording
    fp32 = evaluate(model, TensorData(x), iw_samples=10, iw_chunk=5, batch_size=8)
    assert seen == [False] * 3  # the ELBO's call, then the IW-NLL's two chunks of 5 samples
    seen.clear()
    bf16 = evaluate(model, TensorData(x), iw_samples=10, iw_chunk=5, batch_size=8, nll_amp=True)
    assert seen == [False, True, True]
    assert bf16["nll"] != fp32["nll"] and bf16["nll"] == pytest.approx(fp32["nll"], abs=0.5)
    assert all(bf16[k] == fp32[k] for k in ("neg_elbo", "kl", "mi", "au_0.01"))


class RefinedLinearGaussian(LinearGaussian):
    """An SA-style model: a shifted encoder, and a refine() that runs gradient steps on the exact ELBO."""

    semi_amortized = True

    def refine(self, x, mu, logvar, create_graph=False):
        assert mu.requires_grad and logvar.requires_grad and torch.is_grad_enabled()
        for _ in range(200):
            mean_resid = x - mu @ self.W.T - self.b  # -ELBO = E_q[-log p(x|z)] + KL, in closed form
            loss = 0.5 * ((mean_resid ** 2 + logvar.exp() @ (self.W ** 2).T) / self.noise_var).sum() \
                + gaussian_kl(mu, logvar).sum()
            g_mu, g_lv = torch.autograd.grad(loss, [mu, logvar], create_graph=create_graph)
            mu, logvar = mu - 0.05 * g_mu, logvar - 0.05 * g_lv
        return mu, logvar


def test_evaluate_semi_amortized_reports_both_posteriors(lg):
    model = RefinedLinearGaussian(lg.W, lg.b, lg.noise_var, proposal_shift=0.5, proposal_logvar_shift=1.0)
    x, _ = model.sample(300, gen(16))
    out = evaluate(model, TensorData(x), iw_samples=5, iw_chunk=5, n_eval_nll=50, batch_size=100)
    for key in ("au_0.01_amortized", "au_0.02_amortized", "mi_amortized", "kl_amortized", "neg_elbo_amortized"):
        assert key in out
    assert out["neg_elbo"] < out["neg_elbo_amortized"] - 0.5
    # the main numbers use the refined posterior, which converged to the exact one: IW is exact again
    assert out["nll"] == pytest.approx(-model.log_marginal(x[:50]).mean().item(), abs=1e-3)
    amortized = evaluate(model, TensorData(x), iw_samples=5, iw_chunk=5, n_eval_nll=50, batch_size=100,
                         semi_amortized=False)
    assert "mi_amortized" not in amortized
    assert amortized["kl"] == pytest.approx(out["kl_amortized"], rel=1e-12)


class UniformTextModel(torch.nn.Module):
    """p(x|z) = uniform over V tokens at every target position, q(z|x) = p(z): log p(x) = -T log V exactly."""

    def __init__(self, vocab=7, latent=3):
        super().__init__()
        self.vocab, self.latent = vocab, latent
        self.scale = torch.nn.Parameter(torch.ones(()))

    def encode(self, x):
        return torch.zeros(x.shape[0], self.latent), torch.zeros(x.shape[0], self.latent)

    def log_likelihood(self, x, z):
        assert x.shape[0] == z.shape[0]
        return -(x[:, 1:] != 0).sum(1).float() * math.log(self.vocab) * self.scale

    def refine(self, x, mu, logvar, create_graph=False):
        return mu, logvar


def text_batch(lengths, vocab=7, seed=0):
    """<s>=1, words in 3..vocab-1, </s>=2, pads 0."""
    g = gen(seed)
    x = torch.zeros(len(lengths), max(lengths) + 2, dtype=torch.long)
    for i, n in enumerate(lengths):
        x[i, 0], x[i, n + 1] = 1, 2
        x[i, 1:n + 1] = torch.randint(3, vocab, (n,), generator=g)
    return x


def test_evaluate_text_per_word_and_perplexity():
    lengths = [3, 1, 5, 2, 4, 6, 2]
    out = evaluate(UniformTextModel(), TensorData(text_batch(lengths)), iw_samples=4, iw_chunk=3, n_eval_nll=4,
                   batch_size=3)
    assert out["n_tokens"] == sum(n + 1 for n in lengths)
    assert out["ppl"] == pytest.approx(7.0, rel=1e-6)
    assert out["nll_per_word"] == pytest.approx(math.log(7), rel=1e-6)
    assert out["nll"] == pytest.approx(sum(n + 1 for n in lengths[:4]) * math.log(7) / 4, rel=1e-6)
    assert out["neg_elbo_per_word"] == pytest.approx(math.log(7), rel=1e-6)
    assert out["kl"] == 0.0 and out["au_0.01"] == 0 and out["mi"] == pytest.approx(0.0, abs=1e-9)


def test_evaluate_errors(lg):
    x, _ = lg.sample(10, gen(17))
    for kwargs, match in [(dict(iw_samples=0), "iw_samples"), (dict(iw_chunk=-1), "iw_chunk"),
                          (dict(n_eval_nll=-1), "n_eval_nll"), (dict(limit=0), "limit"),
                          (dict(batch_size=0), "batch_size")]:
        with pytest.raises(ConfigError, match=match):
            evaluate(lg, TensorData(x), **kwargs)
    with pytest.raises(DataError, match="no examples"):
        evaluate(lg, TensorData(x[:0]))
    broken = UniformTextModel()
    broken.scale.data.fill_(float("nan"))
    with pytest.raises(TrainingError, match="non-finite"):
        evaluate(broken, TensorData(text_batch([2, 3])), n_eval_nll=0)


def test_posterior_means_and_labels(lg):
    x, _ = lg.sample(25, gen(18))
    labels = torch.arange(25) % 3
    mu, y = posterior_means(lg, TensorData(x, labels), batch_size=10)
    torch.testing.assert_close(mu, lg.encode(x)[0])
    assert torch.equal(y, labels)
    model = RefinedLinearGaussian(lg.W, lg.b, lg.noise_var, proposal_shift=0.5)
    refined, _ = posterior_means(model, TensorData(x, labels), refine=True, batch_size=10)
    torch.testing.assert_close(refined, model.exact_posterior(x)[0], atol=1e-4, rtol=0)
    mu_text, none = posterior_means(UniformTextModel(), TensorData(text_batch([1, 2, 3])), batch_size=2)
    assert none is None and mu_text.shape == (3, 3)


# ---------------------------------------------------------------------------------------------------------
# Classification and t-SNE
# ---------------------------------------------------------------------------------------------------------

def clusters(n_per_class, spread, seed, dim=4, classes=3):
    g = np.random.default_rng(seed)
    centers = np.eye(classes, dim) * 10
    y = np.repeat(np.arange(classes), n_per_class)
    return centers[y] + spread * g.standard_normal((len(y), dim)), y


def test_classifiers_on_separable_clusters():
    Xtr, ytr = clusters(40, 0.5, seed=0)
    Xte, yte = clusters(20, 0.5, seed=1)
    out = classification_accuracy(torch.as_tensor(Xtr), torch.as_tensor(ytr), Xte, yte)
    for name in ("logreg", "knn1", "knn5"):
        assert out[f"{name}_accuracy"] == 1.0 and out[f"{name}_stderr"] == 0.0
    assert out["n_train"] == 120 and out["n_test"] == 60


def test_classifier_stderr_is_binomial():
    Xtr, ytr = clusters(40, 8.0, seed=2)
    Xte, yte = clusters(50, 8.0, seed=3)
    out = classification_accuracy(Xtr, ytr, Xte, yte, knn_neighbors=(5,))
    p = out["knn5_accuracy"]
    assert 0.4 < p < 1.0 and "knn1_accuracy" not in out
    assert out["knn5_stderr"] == pytest.approx(math.sqrt(p * (1 - p) / 150))


def test_classifier_errors():
    X, y = clusters(5, 0.1, seed=0)
    with pytest.raises(ConfigError, match="labels"):
        classification_accuracy(X, y[:-1], X, y)
    with pytest.raises(ConfigError, match="single class"):
        classification_accuracy(X, np.zeros_like(y), X, y)
    with pytest.raises(ConfigError, match="None"):
        classification_accuracy(X, None, X, y)
    with pytest.raises(ConfigError, match="dimensions"):
        classification_accuracy(X, y, X[:, :2], y)
    with pytest.raises(ConfigError, match="nearest neighbours"):
        classification_accuracy(X, y, X, y, knn_neighbors=(50,))
    with pytest.raises(TrainingError, match="NaN"):
        classification_accuracy(X * np.nan, y, X, y)


def test_tsne_is_deterministic_and_keeps_clusters_apart():
    X, y = clusters(25, 0.5, seed=4)
    emb = tsne_embedding(torch.as_tensor(X), seed=0, perplexity=10, max_iter=500, n_threads=1)
    assert emb.shape == (75, 2) and np.isfinite(emb).all()
    np.testing.assert_array_equal(emb, tsne_embedding(X, seed=0, perplexity=10, max_iter=500, n_threads=1))
    out = classification_accuracy(emb, y, emb, y, knn_neighbors=(5,))
    assert out["knn5_accuracy"] == 1.0
    with pytest.raises(ConfigError, match="perplexity"):
        tsne_embedding(X[:5], perplexity=30)
