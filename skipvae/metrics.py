"""Evaluation metrics of a VAE: IW-NLL, ELBO terms, KL per dimension, mutual information, active units,
classification from posterior means, and t-SNE, plus `evaluate(model, data)` that returns them all.

Notation: prior p(z) = N(0, I), posterior q(z|x) = N(mu, diag(exp(logvar))), latent dimension D.
The functions work with any model that has `encode(x) -> (mu, logvar)`, `log_likelihood(x, z) -> [B]` and
`refine(x, mu, logvar, create_graph) -> (mu, logvar)` (see the shared conventions), and with any data
object whose `batches(split, batch_size, shuffle=False)` yields `(x, y)`, y = labels or None for text.
Text is recognized by its integer token ids: x [B, T] = <s> words </s> <pad>...
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from skipvae.config import NLL_SUBSETS
from skipvae.data.text import PAD_ID
from skipvae.errors import ConfigError, DataError, TrainingError

LOG_2PI = math.log(2 * math.pi)
AU_THRESHOLDS = (0.01, 0.02)
# Rows per model.log_likelihood call in the IW-NLL, chosen by measurement (benchmarks/bench_metrics.py --eval):
# on CPU a PixelCNN forward is much faster on 50-100 images than on the 1,000-2,500 of a whole sample chunk (whose
# activations fall out of the caches); the LSTM is no slower on 100 rows than on 1,600, and faster when loaded.
IW_MAX_BATCH = 100


# ---------------------------------------------------------------------------------------------------------
# Gaussian densities and divergences
# ---------------------------------------------------------------------------------------------------------

def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) of each dimension, [B, D]: 0.5 (mu^2 + exp(logvar) - 1 - logvar)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension (broadcasting):
    -0.5 sum_d [log 2 pi + logvar_d + (z_d - mu_d)^2 / exp(logvar_d)]."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension: -0.5 sum_d [log 2 pi + z_d^2]."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def sample_diag_gaussian(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (drawn from `generator`, or the global RNG)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + eps * torch.exp(0.5 * logvar)


# ---------------------------------------------------------------------------------------------------------
# Importance-weighted log-likelihood
# ---------------------------------------------------------------------------------------------------------

@torch.no_grad()
def iw_log_marginal(model, x: Tensor, K: int, chunk: int = 50, mu: Tensor | None = None,
                    logvar: Tensor | None = None, generator: torch.Generator | None = None,
                    max_batch: int | None = IW_MAX_BATCH) -> Tensor:
    """Importance-weighted estimate of log p(x), [B]:

        log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,   z_k ~ q(z|x).

    The proposal is (mu, logvar), by default `model.encode(x)` (pass the refined posterior of an SA model).
    The K samples are drawn `chunk` at a time: each chunk calls `model.log_likelihood` once on x repeated
    `chunk` times along the batch (B * chunk inputs) and is folded into a running logsumexp, so memory
    does not grow with K. `chunk` fixes the random draws; `max_batch` only splits each chunk's B * chunk rows
    into likelihood calls of at most that many rows (None: one call), which leaves the numbers unchanged
    (log p(x|z) of a row does not depend on the other rows of its call) and is faster (IW_MAX_BATCH).
    """
    _check_count("K", K)
    _check_count("chunk", chunk)
    if max_batch is not None:
        _check_count("max_batch", max_batch)
    if (mu is None) != (logvar is None):
        raise ConfigError("give both mu and logvar (the proposal), or neither to use model.encode(x).")
    if mu is None:
        mu, logvar = model.encode(x)
    _check_posterior(mu, logvar, batch=x.shape[0])
    B = x.shape[0]
    total = torch.full((B,), -math.inf, dtype=mu.dtype, device=mu.device)
    for start in range(0, K, chunk):
        c = min(chunk, K - start)
        eps = torch.randn((c, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
        z = mu + eps * torch.exp(0.5 * logvar)  # [c, B, D]; sample k of example b is z[k, b]
        x_rep = x.repeat(c, *([1] * (x.dim() - 1)))  # [c * B, ...]; row k * B + b is x[b]
        z_rows, step = z.reshape(c * B, -1), c * B if max_batch is None else max_batch
        log_lik = torch.cat([model.log_likelihood(x_rep[i:i + step], z_rows[i:i + step])
                             for i in range(0, c * B, step)]).reshape(c, B)
        if torch.isnan(log_lik).any():
            raise TrainingError("model.log_likelihood returned NaN during the IW-NLL: the model is broken "
                                "(diverged weights?); evaluate an earlier checkpoint.")
        log_w = log_lik.to(mu.dtype) + log_standard_normal(z) - log_normal_diag(z, mu, logvar)
        total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
    return total - math.log(K)


def iw_nll(model, x: Tensor, K: int, chunk: int = 50, mu: Tensor | None = None, logvar: Tensor | None = None,
           generator: torch.Generator | None = None) -> Tensor:
    """Importance-weighted NLL, -log p(x) estimated with K samples, nats per example [B] (see iw_log_marginal)."""
    return -iw_log_marginal(model, x, K, chunk, mu, logvar, generator)


# ---------------------------------------------------------------------------------------------------------
# Collapse diagnostics: mutual information and active units
# ---------------------------------------------------------------------------------------------------------

@torch.no_grad()
def mutual_information(mu: Tensor, logvar: Tensor, z: Tensor | None = None, chunk: int | None = None,
                       generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> float:
    """I_q(x; z) = E_x KL(q(z|x) || p(z)) - KL(q(z) || p(z)) = E_x E_q(z|x) [log q(z|x) - log q(z)], in nats.

    q(z) = (1/N) sum_j q(z|x_j) is the aggregate posterior of the N examples given (mu, logvar [N, D]).
    Estimated with one z_i ~ q(z|x_i) per example (or the given z [N, D]):

        I ~= (1/N) sum_i [log q(z_i|x_i) - log q(z_i)],   log q(z_i) = logsumexp_j log q(z_i|x_j) - log N.

    Since the sum over j includes j = i, every term is at most log N, and so is the estimate.
    Rows i are processed `chunk` at a time (default: 2^23 / N rows, a 64 MB block in float64): memory
    O(chunk * N), each chunk one matrix product (the quadratic form sum_d (z_id - mu_jd)^2 / var_jd
    expanded), computed in `dtype` (float64 by default).
    """
    _check_posterior(mu, logvar)
    N, D = mu.shape
    if N < 2:
        raise ConfigError(f"mutual_information needs at least 2 examples to form the aggregate posterior, got {N}.")
    chunk = max(1, min(N, 2**23 // N)) if chunk is None else chunk
    _check_count("chunk", chunk)
    mu, logvar = mu.to(dtype), logvar.to(dtype)
    z = sample_diag_gaussian(mu, logvar, generator) if z is None else z.to(dtype)
    if z.shape != mu.shape:
        raise ConfigError(f"z has shape {tuple(z.shape)} but mu has {tuple(mu.shape)}; give one z per example.")
    center = mu.mean(0)  # shifting z and mu together leaves z - mu unchanged and reduces cancellation
    z, mu = z - center, mu - center
    prec = torch.exp(-logvar)
    # log q(z_i|x_j) = bias_j + [z_i^2, z_i] . [-prec_j / 2, mu_j prec_j]
    bias = -0.5 * (D * LOG_2PI + logvar.sum(1) + (mu.pow(2) * prec).sum(1))  # [N]
    right = torch.cat([-0.5 * prec, mu * prec], dim=1)  # [N, 2D]
    log_q_self = log_normal_diag(z, mu, logvar)  # log q(z_i|x_i), [N]
    total = torch.zeros((), dtype=dtype, device=mu.device)
    for start in range(0, N, chunk):
        rows = slice(start, min(start + chunk, N))
        zc = z[rows]
        log_dens = torch.addmm(bias, torch.cat([zc.pow(2), zc], dim=1), right.T)  # [c, N]
        idx = torch.arange(zc.shape[0], device=mu.device)
        log_dens[idx, idx + start] = log_q_self[rows]  # the exact self term keeps each term <= log N
        log_q_agg = _logsumexp_rows(log_dens) - math.log(N)
        total += (log_q_self[rows] - log_q_agg).sum()
    return (total / N).item()


def _logsumexp_rows(a: Tensor) -> Tensor:
    """logsumexp over dim 1, overwriting `a`. Terms more than ~700 nats (float64; ~77 for float32) below the
    row's maximum are raised to that floor before exp: they change the sum by less than N e^-700 relative,
    and it avoids subnormal numbers, which make exp several times slower on CPUs."""
    floor = math.log(torch.finfo(a.dtype).tiny) + 10.0
    row_max = a.max(dim=1).values
    return row_max + a.sub_(row_max[:, None]).clamp_(min=floor).exp_().sum(1).log()


def posterior_mean_variance(mu: Tensor) -> Tensor:
    """Var_x E_q(z|x)[z] of each dimension, [D] (unbiased, over the N examples of mu [N, D])."""
    if mu.dim() != 2 or mu.shape[0] < 2:
        raise ConfigError(f"posterior means must be [N >= 2, D], got shape {tuple(mu.shape)}.")
    _check_finite("posterior means", mu)
    if mu.shape[1] == 0:  # no latent variable (the language model)
        return mu.new_zeros(0, dtype=torch.float64)
    return mu.double().var(dim=0)


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Number of dimensions d with Var_x(mu_d(x)) > threshold (0.01: He et al. 2019; 0.02: official code)."""
    if not threshold >= 0:
        raise ConfigError(f"threshold={threshold} must be >= 0 (the paper uses 0.01 and 0.02).")
    return int((posterior_mean_variance(mu) > threshold).sum().item())


# ---------------------------------------------------------------------------------------------------------
# Posterior means as features: classification and t-SNE
# ---------------------------------------------------------------------------------------------------------

CLASSIFIERS = {"mlp": "MLP (paper)", "logreg": "logistic regression", "knn1": "1-NN", "knn5": "5-NN"}


def classification_accuracy(train_x, train_y, test_x, test_y, knn_neighbors: tuple[int, ...] = (1, 5),
                            seed: int = 0, mlp_epochs: int = 20) -> dict:
    """Fit classifiers on (train_x, train_y), score them on (test_x, test_y); features standardized.

    Classifiers: the paper's MLP (`mlp_classifier`: 2 hidden layers of 1024 ReLU units, dropout 0.5), multinomial
    logistic regression, and k-nearest neighbours for each k in `knn_neighbors`. Returns
    {'<name>_accuracy': p, '<name>_stderr': sqrt(p (1 - p) / n_test)} for name in mlp, logreg, knn1, knn5, ...,
    plus 'n_train' and 'n_test'. (The stderr is the test-set sampling error only; seeds add their own spread.)
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    Xtr, ytr = _features(train_x, "train_x"), _labels(train_y, "train_y")
    Xte, yte = _features(test_x, "test_x"), _labels(test_y, "test_y")
    for X, y, name in ((Xtr, ytr, "train"), (Xte, yte, "test")):
        if len(X) != len(y) or len(X) == 0:
            raise ConfigError(f"{name}_x has {len(X)} rows but {name}_y has {len(y)} labels; "
                              f"give one label per example (and at least one example).")
    if Xtr.shape[1] != Xte.shape[1]:
        raise ConfigError(f"train features have {Xtr.shape[1]} dimensions, test features {Xte.shape[1]}.")
    if len(np.unique(ytr)) < 2:
        raise ConfigError("the training labels hold a single class; a classifier needs at least two.")
    if knn_neighbors and max(knn_neighbors) > len(Xtr):
        raise ConfigError(f"k={max(knn_neighbors)} nearest neighbours need at least that many training "
                          f"examples, got {len(Xtr)}.")
    scaler = StandardScaler().fit(Xtr)
    Xtr_s, Xte_s = scaler.transform(Xtr), scaler.transform(Xte)
    predictions = {"mlp": mlp_classifier(Xtr_s, ytr, seed=seed, epochs=mlp_epochs).predict(Xte_s)}
    classifiers = {"logreg": LogisticRegression(max_iter=2000, random_state=seed)}
    classifiers.update({f"knn{k}": KNeighborsClassifier(n_neighbors=k) for k in knn_neighbors})
    for name, clf in classifiers.items():
        predictions[name] = clf.fit(Xtr_s, ytr).predict(Xte_s)
    out: dict = {}
    for name, pred in predictions.items():
        p = float((pred == yte).mean())
        out[f"{name}_accuracy"] = p
        out[f"{name}_stderr"] = math.sqrt(p * (1.0 - p) / len(yte))
    out["n_train"], out["n_test"] = len(ytr), len(yte)
    return out


class MLPClassifier:
    """The paper's classifier of posterior means (C5): Linear(D, 1024) - ReLU - dropout 0.5 - Linear(1024, 1024) -
    ReLU - dropout 0.5 - Linear(1024, classes), trained with Adam (lr 1e-3, batch 100) on the cross-entropy for a
    fixed number of epochs. "2-layer" is read as two hidden layers, as the paper's "MLP encoder 2 x 512" counts
    hidden layers. Deterministic given `seed` on the CPU."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 1024, layers: int = 2, dropout: float = 0.5,
                 seed: int = 0):
        torch.manual_seed(seed)
        blocks, width = [], n_features
        for _ in range(layers):
            blocks += [torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
            width = hidden
        self.net = torch.nn.Sequential(*blocks, torch.nn.Linear(width, n_classes))
        self.classes = None

    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int = 20, batch_size: int = 100, lr: float = 1e-3,
            seed: int = 0) -> "MLPClassifier":
        self.classes, target = np.unique(y, return_inverse=True)
        X, target = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(target, dtype=torch.long)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        self.net.train()
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # dropout masks
            for _ in range(epochs):
                for idx in torch.randperm(len(X), generator=g).split(batch_size):
                    loss = torch.nn.functional.cross_entropy(self.net(X[idx]), target[idx])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        return self

    @torch.no_grad()
    def predict(self, X: np.ndarray) -> np.ndarray:
        self.net.eval()
        logits = torch.cat([self.net(b) for b in torch.as_tensor(X, dtype=torch.float32).split(4096)])
        return self.classes[logits.argmax(1).numpy()]


def by_classifier(flat: dict) -> dict:
    """classification_accuracy's flat keys as the records hold them: {clf: {'acc', 'se'}, 'n_train', 'n_test'}."""
    names = sorted({k.rsplit("_", 1)[0] for k in flat if k.endswith("_accuracy")})
    return ({name: {"acc": flat[f"{name}_accuracy"], "se": flat[f"{name}_stderr"]} for name in names}
            | {"n_train": flat["n_train"], "n_test": flat["n_test"]})


def mlp_classifier(X: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 20, **kwargs) -> MLPClassifier:
    """The paper's MLP classifier (`MLPClassifier`) fitted on (X, y)."""
    _check_count("epochs", epochs)
    return MLPClassifier(X.shape[1], len(np.unique(y)), seed=seed, **kwargs).fit(X, y, epochs=epochs, seed=seed)


def pca_pixel_accuracy(train_x, train_y, test_x, test_y, n_components: int = 50, seed: int = 0,
                       mlp_epochs: int = 20) -> dict:
    """The reference row of the classification study: the same classifiers on the PCA projection of the pixels
    (fitted on the training images) instead of posterior means; what a linear 50-d code of the pixels achieves."""
    from sklearn.decomposition import PCA

    Xtr, Xte = _features(_flat(train_x), "train_x"), _features(_flat(test_x), "test_x")
    if not 0 < n_components <= min(Xtr.shape):
        raise ConfigError(f"n_components={n_components} must be in [1, {min(Xtr.shape)}] (training examples and "
                          f"pixels bound it).")
    pca = PCA(n_components=n_components, random_state=seed).fit(Xtr)
    return classification_accuracy(pca.transform(Xtr), train_y, pca.transform(Xte), test_y, seed=seed,
                                   mlp_epochs=mlp_epochs)


def tsne_scores(xy, labels, k: int = 5, folds: int = 5, seed: int = 0) -> dict:
    """How well a 2-D embedding separates the classes: the silhouette score under the true labels (-1 to 1) and
    the `folds`-fold cross-validated accuracy of k-NN on the 2-D coordinates."""
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    X, y = _features(xy, "xy"), _labels(labels, "labels")
    if X.shape[1] != 2 or len(X) != len(y):
        raise ConfigError(f"xy must be [N, 2] with one label per point, got {X.shape} and {len(y)} labels.")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    knn = cross_val_score(KNeighborsClassifier(n_neighbors=k), X, y, cv=cv)
    return {"tsne_silhouette": float(silhouette_score(X, y)), f"tsne_knn{k}_accuracy": float(knn.mean())}


def _flat(x):
    return x.flatten(1) if isinstance(x, Tensor) else np.asarray(x).reshape(len(x), -1)


def tsne_embedding(means, seed: int = 0, perplexity: float = 30.0, max_iter: int = 1000,
                   n_threads: int | None = None) -> np.ndarray:
    """2-D t-SNE embedding (scikit-learn, Barnes-Hut, PCA initialization) of posterior means [N, D] -> [N, 2].

    Deterministic given `seed`. Plot it with the labels returned by `posterior_means`. `n_threads` caps the
    OpenMP threads (on a busy machine, 1 avoids the large slowdowns of oversubscribed threads).
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    X = _features(means, "means")
    if not 0 < perplexity < len(X):
        raise ConfigError(f"perplexity={perplexity} must be positive and below the number of points "
                          f"({len(X)}); lower it for small sets (about N / 3).")
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=max_iter,
                random_state=seed)
    with threadpool_limits(limits=n_threads):
        return tsne.fit_transform(X).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# Whole-split evaluation
# ---------------------------------------------------------------------------------------------------------

@torch.no_grad()
def posterior_means(model, data, split: str = "test", refine: bool = False, batch_size: int = 500,
                    limit: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor | None]:
    """Posterior means mu(x) [N, D] (on the CPU) of a split, and its labels [N] (None for text).

    refine=True: the means after the model's SVI refinement (SA models; other models return them unchanged).
    """
    device = _model_device(model)
    mus, labels = [], []
    with _eval_mode(model), _seeded(seed, device):
        for x, y in _batches(data, split, batch_size, limit):
            x = x.to(device)
            mu, logvar = model.encode(x)
            if refine:
                mu, logvar = _refined(model, x, mu, logvar)
            _check_posterior(mu, logvar, batch=x.shape[0])
            mus.append(mu.detach().cpu())
            labels.append(None if y is None else torch.as_tensor(y).cpu())
    if any(y is None for y in labels):
        return torch.cat(mus), None
    return torch.cat(mus), torch.cat(labels)


def evaluate(model, data, split: str = "test", iw_samples: int = 500, iw_chunk: int = 50,
             n_eval_nll: int | None = None, seed: int = 0, limit: int | None = None, batch_size: int = 50,
             mi_chunk: int | None = None, semi_amortized: bool | None = None, nll_subset: str = "first",
             nll_amp: bool = False) -> dict:
    """All metrics of a model on one split, as a JSON-ready dict (names as in the run records).

    Per example, in nats:
      'nll'       IW estimate with `iw_samples` samples (chunks of `iw_chunk`) on `n_eval_nll` examples
                  ('nll_examples' of them; None when n_eval_nll = 0): with nll_subset 'first' the first in the
                  split's batch order (for text, sorted by length: the shortest), with 'random' a random subset
                  drawn with `seed`; 'nll_se' is its standard error over those examples, sd / sqrt(n); with
                  `nll_amp` the decoder's products run under bf16 autocast (the weights and sums stay fp32);
      'neg_elbo'  = 'rec' + 'kl': rec = -log p(x|z) with one z ~ q(z|x), kl analytic;
      'kl_per_dim' (a list that sums to 'kl').
    Over the split: 'mi' (mutual_information), 'au_0.01' and 'au_0.02' (active_units), 'n_examples'.
    Text (x holds integer token ids) adds 'n_tokens' (words and </s>), 'nll_per_word', 'ppl' =
    exp(nll_per_word) and 'neg_elbo_per_word'. SA models (`semi_amortized`; by default read from
    `model.semi_amortized` or `model.cfg.semi_amortized`) report the refined posterior as the main numbers
    and the encoder's alongside: 'kl_amortized', 'rec_amortized', 'neg_elbo_amortized', 'mi_amortized',
    'au_0.01_amortized', 'au_0.02_amortized'. 'timing' holds the seconds spent on each metric.
    Deterministic given `seed`; runs in eval mode without gradients and restores the model's mode.
    """
    for name, value in (("iw_samples", iw_samples), ("iw_chunk", iw_chunk), ("batch_size", batch_size)):
        _check_count(name, value)
    for name, value in (("mi_chunk", mi_chunk), ("limit", limit)):
        if value is not None:
            _check_count(name, value)
    if n_eval_nll is not None and (not isinstance(n_eval_nll, int) or isinstance(n_eval_nll, bool) or n_eval_nll < 0):
        raise ConfigError(f"n_eval_nll={n_eval_nll!r} must be an integer >= 0 (0: no IW-NLL), or None for all.")
    total = data.num_examples(split) if limit is None else min(limit, data.num_examples(split))
    chosen = nll_examples_of(total, n_eval_nll, nll_subset, seed)
    device = _model_device(model)
    sa = _is_semi_amortized(model) if semi_amortized is None else bool(semi_amortized)
    posteriors = ("", "_amortized") if sa else ("",)
    sums = {p: _ElboSums() for p in posteriors}
    nll_values, nll_examples, nll_tokens, n_tokens, is_text, seen = [], 0, 0, 0, False, 0
    elbo_on_nll = 0.0  # the negative ELBO summed over exactly the examples that get the IW-NLL
    if getattr(model, "latent_dim", None) == 0:
        iw_samples = 1  # no latent variable (the language model): log p(x|z) = log p(x), one "sample" is exact
    timing = dict.fromkeys(("posterior", "neg_elbo", "nll", "mi", "au"), 0.0)
    t_start = time.perf_counter()
    with _eval_mode(model), _seeded(seed, device):
        for x, y in _batches(data, split, batch_size, limit):
            x = x.to(device)
            is_text = not torch.is_floating_point(x)  # token ids [B, T]; images are float
            tokens = (x[:, 1:] != PAD_ID).sum(1) if is_text else None
            with _timed(timing, "posterior"):
                mu0, logvar0 = model.encode(x)
                q = {"": _refined(model, x, mu0, logvar0) if sa else (mu0, logvar0), "_amortized": (mu0, logvar0)}
            with _timed(timing, "neg_elbo"):
                neg_elbo = {p: sums[p].add(model, x, *q[p]) for p in posteriors}
            pick = chosen[seen:seen + x.shape[0]].to(x.device)
            seen += x.shape[0]
            if pick.any():
                with _timed(timing, "nll"):
                    mu, logvar = q[""]
                    elbo_on_nll += float(neg_elbo[""][pick.cpu()].sum())
                    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=nll_amp):
                        lp = iw_log_marginal(model, x[pick], iw_samples, iw_chunk, mu[pick], logvar[pick])
                    nll_values.append(-lp.double().cpu())
                    nll_examples += int(pick.sum())
                    nll_tokens += int(tokens[pick].sum()) if is_text else 0
            n_tokens += int(tokens.sum()) if is_text else 0
    n = sums[""].n
    nll = torch.cat(nll_values) if nll_values else torch.zeros(0, dtype=torch.float64)
    out: dict = {"n_examples": n, "iw_samples": iw_samples, "nll_examples": nll_examples, "nll_subset": nll_subset,
                 "nll": nll.mean().item() if nll_examples else None, "seed": seed,
                 "nll_se": (nll.std() / math.sqrt(nll_examples)).item() if nll_examples > 1 else None,
                 "neg_elbo_nll_examples": elbo_on_nll / nll_examples if nll_examples else None}
    for p in posteriors:
        s = sums[p]
        mu, logvar, z = s.stacked()
        kl_per_dim = (s.kl_dim / n).tolist()
        out[f"kl{p}"], out[f"rec{p}"] = float(sum(kl_per_dim)), s.rec / n
        out[f"neg_elbo{p}"] = out[f"kl{p}"] + out[f"rec{p}"]
        if p == "":
            out["kl_per_dim"] = kl_per_dim
        with _timed(timing, "mi"):
            out[f"mi{p}"] = mutual_information(mu, logvar, z=z, chunk=mi_chunk)
        with _timed(timing, "au"):
            for threshold in AU_THRESHOLDS:
                out[f"au_{threshold}{p}"] = active_units(mu, threshold)
    if is_text:
        out["n_tokens"] = n_tokens
        out["neg_elbo_per_word"] = out["neg_elbo"] * n / n_tokens
        out["nll_per_word"] = nll.sum().item() / nll_tokens if nll_examples else None
        out["nll_tokens"] = nll_tokens
        out["nll_mean_tokens"] = nll_tokens / nll_examples if nll_examples else None  # the subset's mean length
        out["neg_elbo_per_word_nll_examples"] = elbo_on_nll / nll_tokens if nll_examples else None
        out["ppl"] = math.exp(out["nll_per_word"]) if nll_examples else None
    timing["total"] = time.perf_counter() - t_start
    out["timing"] = timing
    return out


def nll_examples_of(total: int, n_eval_nll: int | None, rule: str, seed: int) -> Tensor:
    """Which of `total` examples (in evaluate's batch order) get the IW-NLL, as a bool mask [total]: all
    (n_eval_nll None), the first n_eval_nll ('first'), or n_eval_nll drawn without replacement with a generator
    seeded by `seed` ('random')."""
    if rule not in NLL_SUBSETS:
        raise ConfigError(f"nll_subset={rule!r} is impossible; valid choices: {', '.join(NLL_SUBSETS)}.")
    mask = torch.zeros(total, dtype=torch.bool)
    if n_eval_nll is None:
        mask[:] = True
    elif rule == "first":
        mask[:n_eval_nll] = True
    else:
        mask[torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n_eval_nll]] = True
    return mask


class _ElboSums:
    """Running sums of the ELBO terms of one posterior, and its (mu, logvar, z) for MI and AU."""

    def __init__(self):
        self.n, self.rec, self.kl_dim = 0, 0.0, None
        self.mus, self.logvars, self.zs = [], [], []

    def add(self, model, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        """Add a batch; returns its negative ELBO per example [B] (float64, one z per example)."""
        _check_posterior(mu, logvar, batch=x.shape[0])
        z = sample_diag_gaussian(mu, logvar)
        log_lik = model.log_likelihood(x, z)
        if not torch.isfinite(log_lik).all():
            raise TrainingError("model.log_likelihood returned a non-finite value (NaN or inf): the model is "
                                "broken (diverged weights?); evaluate an earlier checkpoint.")
        kl = gaussian_kl(mu, logvar).detach().double()
        kl_dim = kl.sum(0).cpu()
        self.kl_dim = kl_dim if self.kl_dim is None else self.kl_dim + kl_dim
        self.rec -= log_lik.double().sum().item()
        self.n += x.shape[0]
        for store, t in ((self.mus, mu), (self.logvars, logvar), (self.zs, z)):
            store.append(t.detach().cpu())
        return (kl.sum(1) - log_lik.detach().double()).cpu()

    def stacked(self) -> tuple[Tensor, Tensor, Tensor]:
        return torch.cat(self.mus), torch.cat(self.logvars), torch.cat(self.zs)


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------

def _batches(data, split: str, batch_size: int, limit: int | None) -> Iterator[tuple[Tensor, Tensor | None]]:
    """The split's batches in order, cut after `limit` examples; DataError when there are none."""
    _check_count("batch_size", batch_size)
    if limit is not None:
        _check_count("limit", limit)
    seen = 0
    for x, y in data.batches(split, batch_size, shuffle=False):
        if limit is not None and seen + x.shape[0] > limit:
            x, y = x[: limit - seen], (None if y is None else y[: limit - seen])
        if x.shape[0] == 0:
            break
        seen += x.shape[0]
        yield x, y
    if seen == 0:
        raise DataError(f"the {split!r} split gave no examples (limit={limit}); check the data and its sizes.")


def _refined(model, x: Tensor, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
    """The SVI-refined posterior, detached: refinement needs gradients w.r.t. (mu, logvar), even in no_grad."""
    with torch.enable_grad():
        mu_r, logvar_r = model.refine(x, mu.detach().requires_grad_(True), logvar.detach().requires_grad_(True),
                                      create_graph=False)
    return mu_r.detach(), logvar_r.detach()


def _is_semi_amortized(model) -> bool:
    flag = getattr(model, "semi_amortized", None)
    if flag is None:
        flag = getattr(getattr(model, "cfg", None), "semi_amortized", False)
    return bool(flag)


def _model_device(model) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed torch's global RNG(s) for the block and restore their state afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _timed(timing: dict, key: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timing[key] += time.perf_counter() - t0


def _check_count(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r} is impossible: it must be a positive integer.")


def _check_finite(name: str, t: Tensor) -> None:
    if not torch.isfinite(t).all():
        raise TrainingError(f"the {name} are not finite (NaN or inf): the model that produced them is broken "
                            f"(diverged weights?); evaluate an earlier checkpoint or retrain with a smaller lr.")


def _check_posterior(mu: Tensor, logvar: Tensor, batch: int | None = None) -> None:
    if mu.dim() != 2 or mu.shape != logvar.shape or (batch is not None and mu.shape[0] != batch):
        raise ConfigError(f"mu and logvar must both be [B, D]{f' with B = {batch}' if batch else ''}; got "
                          f"{tuple(mu.shape)} and {tuple(logvar.shape)}.")
    _check_finite("posterior means", mu)
    _check_finite("posterior log-variances", logvar)


def _features(x, name: str) -> np.ndarray:
    X = (x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64))
    if X.ndim != 2:
        raise ConfigError(f"{name} must be a 2-D array [N, D] of features, got shape {X.shape}.")
    if not np.isfinite(X).all():
        raise TrainingError(f"{name} holds NaN or inf: the posterior means are broken (diverged model?).")
    return X


def _labels(y, name: str) -> np.ndarray:
    if y is None:
        raise ConfigError(f"{name} is None: classification needs labels (text data has none).")
    return (y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)).reshape(-1)
