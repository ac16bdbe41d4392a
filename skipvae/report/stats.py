"""The interval behind every verdict: a difference of means over seeds with its 95% confidence interval.

    Welch   (primary): mean(b) - mean(a) ± t_{0.975, nu} sqrt(var_a / n_a + var_b / n_b), Welch-Satterthwaite nu
            (scipy.stats.ttest_ind(equal_var=False)): a VAE and a Skip-VAE of one seed share the data order but not
            their parameters, so pairing by seed is not justified by design
    paired  (shown beside, only where the seeds' values correlate positively): d_s = b_s - a_s,
            mean(d) ± t_{0.975, n-1} sd(d) / sqrt(n)   (scipy.stats.ttest_rel)
    level   (one group against a threshold): mean(a) ± t_{0.975, n-1} sd(a) / sqrt(n)

With zero spread the interval is the point itself (e.g. every seed keeps all 20 units active). Fewer than two values on
a side give no interval (NaN bounds).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval and how it was computed ('paired', 'Welch' or 'one-sample')."""
    estimate: float
    low: float
    high: float
    method: str
    n: int  # seeds (pairs, or the smaller group)

    def excludes_above(self, bound: float) -> bool:
        """The whole interval lies above `bound`."""
        return bool(self.low > bound)

    def excludes_below(self, bound: float) -> bool:
        """The whole interval lies below `bound`."""
        return bool(self.high < bound)

    def text(self, digits: int = 2) -> str:
        if math.isnan(self.low):
            return f"{self.estimate:+.{digits}f} (no interval: n = {self.n})"
        return (f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}] "
                f"({self.method}, n = {self.n})")


def welch(a: pd.Series, b: pd.Series) -> Interval:
    """mean(b) - mean(a) over seeds with the Welch (unpaired, unequal-variance) 95% interval of
    scipy.stats.ttest_ind(b, a, equal_var=False): the primary interval of every two-group check."""
    a, b = a.dropna().astype(float).to_numpy(), b.dropna().astype(float).to_numpy()
    n = min(len(a), len(b))
    est = float(b.mean() - a.mean()) if len(a) and len(b) else math.nan
    if n < 2:
        return Interval(est, math.nan, math.nan, "Welch", n)
    if a.var(ddof=1) + b.var(ddof=1) == 0:
        return Interval(est, est, est, "Welch", n)  # no spread at all: the interval is the point
    with warnings.catch_warnings():  # nearly equal seeds: scipy warns of precision loss, the interval stays valid
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(LEVEL)
    return Interval(est, float(ci.low), float(ci.high), "Welch", n)


def paired(a: pd.Series, b: pd.Series) -> Interval | None:
    """The paired interval of b - a over the seeds both groups have (index: seed), or None when fewer than 3 seeds
    pair up or the pairs show no positive correlation (then pairing by seed is not justified by the records)."""
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    seeds = sorted(set(a.index) & set(b.index)) if a.index.is_unique and b.index.is_unique else []
    if len(seeds) < 3:
        return None
    x, y = a.loc[seeds].to_numpy(), b.loc[seeds].to_numpy()
    if x.std() == 0 or y.std() == 0 or not np.corrcoef(x, y)[0, 1] > 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_rel(y, x).confidence_interval(LEVEL)
    return Interval(float((y - x).mean()), float(ci.low), float(ci.high), "paired", len(seeds))


difference = welch  # the primary interval (ledger v2, 2026-12-02)


def level(a: pd.Series) -> Interval:
    """The mean of `a` over seeds with its one-sample t interval (scipy.stats.ttest_1samp's)."""
    a = a.dropna().astype(float).to_numpy()
    n = len(a)
    est = float(np.mean(a)) if n else math.nan
    if n < 2:
        return Interval(est, math.nan, math.nan, "one-sample", n)
    if a.var(ddof=1) == 0:
        return Interval(est, est, est, "one-sample", n)  # no spread at all: the interval is the point
    ci = stats.ttest_1samp(a, 0.0).confidence_interval(LEVEL)
    return Interval(est, float(ci.low), float(ci.high), "one-sample", n)
