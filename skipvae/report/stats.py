"""The interval behind every verdict: a difference of means over seeds with its 95% confidence interval.

    paired  (both groups have the same seeds, so the runs share seeds and data order):
            d_s = b_s - a_s,  mean(d) ± t_{0.975, n-1} sd(d) / sqrt(n)
    Welch   (otherwise):  mean(b) - mean(a) ± t_{0.975, nu} sqrt(var_a / n_a + var_b / n_b),
            nu = (var_a / n_a + var_b / n_b)^2 / ((var_a / n_a)^2 / (n_a - 1) + (var_b / n_b)^2 / (n_b - 1))
    level   (one group against a threshold): mean(a) ± t_{0.975, n-1} sd(a) / sqrt(n)

With zero spread the interval is the point itself (e.g. every seed keeps all 20 units active). Fewer than two values on
a side give no interval (NaN bounds).
"""

from __future__ import annotations

import math
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


def _t(df: float) -> float:
    return float(stats.t.ppf(0.5 + LEVEL / 2, df))


def difference(a: pd.Series, b: pd.Series) -> Interval:
    """mean(b) - mean(a) over seeds: paired by seed when a and b hold the same seeds (index = seed), else Welch."""
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    if len(a) and set(a.index) == set(b.index) and a.index.is_unique and b.index.is_unique:
        d = (b - a.reindex(b.index)).to_numpy()
        n = len(d)
        if n < 2:
            return Interval(float(d.mean()), math.nan, math.nan, "paired", n)
        half = _t(n - 1) * d.std(ddof=1) / math.sqrt(n)
        return Interval(float(d.mean()), float(d.mean() - half), float(d.mean() + half), "paired", n)
    n = min(len(a), len(b))
    est = float(b.mean() - a.mean()) if len(a) and len(b) else math.nan
    if n < 2:
        return Interval(est, math.nan, math.nan, "Welch", n)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return Interval(est, est, est, "Welch", n)
    nu = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = _t(nu) * math.sqrt(va + vb)
    return Interval(est, est - half, est + half, "Welch", n)


def level(a: pd.Series) -> Interval:
    """The mean of `a` over seeds with its one-sample t interval."""
    a = a.dropna().astype(float).to_numpy()
    n = len(a)
    est = float(np.mean(a)) if n else math.nan
    if n < 2:
        return Interval(est, math.nan, math.nan, "one-sample", n)
    half = _t(n - 1) * a.std(ddof=1) / math.sqrt(n)
    return Interval(est, est - half, est + half, "one-sample", n)
