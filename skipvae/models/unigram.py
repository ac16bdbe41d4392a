"""The unigram model of text: the floor every text decoder must beat.

    p(x) = prod_t p(x_t),   p(w) = (count(w) + alpha) / (N + alpha V')   (additive smoothing)

over the targets of each document (its words and </s>), counted on the training documents; V' = the vocabulary
without <pad> and <s>, which are never targets. `alpha` is chosen from ALPHAS by the NLL of the validation split
(add-one smoothing, alpha = 1, is far too strong for a 20k-word vocabulary on a few thousand documents). A decoder
whose NLL is no better than this has learned nothing
about word order, let alone about z.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from skipvae.data.text import BOS_ID, PAD_ID

ALPHAS = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)


class UnigramModel:
    """`fit(data)` counts the training targets; `log_likelihood(x)` [B] sums log p(w) over each row's targets."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.log_prob: Tensor | None = None
        self.alpha: float | None = None

    def fit(self, data, batch_size: int = 500, alphas=ALPHAS) -> "UnigramModel":
        """Count the training targets; keep the smoothing in `alphas` with the best validation NLL."""
        counts = self.counts(data, "train", batch_size)
        valid = self.counts(data, "valid", batch_size)
        best = None
        for alpha in alphas:
            log_prob = self.smoothed_log_prob(counts, alpha)
            nll = -float((valid * log_prob.masked_fill(valid == 0, 0.0)).sum())
            if best is None or nll < best[0]:
                best = (nll, alpha, log_prob)
        _, self.alpha, self.log_prob = best
        return self

    def counts(self, data, split: str, batch_size: int = 500) -> Tensor:
        counts = torch.zeros(self.vocab_size, dtype=torch.float64)
        for x, _ in data.batches(split, batch_size, shuffle=False):
            targets = x[:, 1:].flatten()
            counts += torch.bincount(targets[targets != PAD_ID], minlength=self.vocab_size).double()
        return counts

    def smoothed_log_prob(self, counts: Tensor, alpha: float) -> Tensor:
        """log p(w) = log (count(w) + alpha) / (N + alpha V'); -inf for <pad> and <s>."""
        support = torch.ones(self.vocab_size, dtype=torch.bool)
        support[[PAD_ID, BOS_ID]] = False  # never a target
        smoothed = torch.where(support, counts + alpha, torch.zeros_like(counts))
        return (smoothed / smoothed.sum()).log()

    def log_likelihood(self, x: Tensor) -> Tensor:
        """log p(x) [B] = sum over the targets x[:, 1:] != <pad> of log p(w)."""
        if self.log_prob is None:
            raise RuntimeError("call fit(data) before log_likelihood")
        targets = x[:, 1:]
        lp = self.log_prob[targets].masked_fill(targets == PAD_ID, 0.0)
        return lp.sum(1)


def unigram_floor(data, split: str = "test", examples: Tensor | None = None, batch_size: int = 500) -> dict:
    """NLL per document and per word, and perplexity, of the unigram model fitted on `data`'s training split, on
    the documents of `split` that `examples` marks (a bool mask in batch order, as metrics.nll_examples_of gives
    the documents that get the IW-NLL; None: all of them)."""
    model = UnigramModel(len(data.vocab)).fit(data, batch_size)
    nll, tokens, docs, seen = 0.0, 0, 0, 0
    for x, _ in data.batches(split, batch_size, shuffle=False):
        if examples is not None:
            x, seen = x[examples[seen:seen + len(x)]], seen + len(x)
        nll -= float(model.log_likelihood(x).sum())
        tokens += int((x[:, 1:] != PAD_ID).sum())
        docs += len(x)
    return {"nll": nll / docs, "nll_per_word": nll / tokens, "ppl": math.exp(nll / tokens), "n_docs": docs,
            "n_tokens": tokens, "alpha": model.alpha}
