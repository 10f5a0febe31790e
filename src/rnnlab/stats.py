"""Statistics over seeds: summaries, confidence intervals and significance tests.

A design comparison in rnnlab rests on several seeds per configuration. For the
values ``x_1..x_n`` of one metric over ``n`` seeds:

* ``mean`` and the sample standard deviation ``std`` (``ddof=1``; 0 when ``n = 1``);
* a two-sided 95 % confidence interval for the mean, ``mean ± t_{0.975, n-1} · std/√n``
  (Student's t; undefined, reported as NaN, when ``n < 2``);
* ``min`` and ``max``.

Two configurations A and B are compared with Welch's two-sided t-test (unequal
variances): ``t = (mean_A − mean_B) / √(s_A²/n_A + s_B²/n_B)`` with the
Welch–Satterthwaite degrees of freedom, and the effect size Cohen's ``d`` with the
pooled standard deviation. ``p ≥ alpha`` means the two are *not distinguishable* at
these sample sizes — not that they are equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

ALPHA = 0.05


@dataclass(frozen=True)
class Summary:
    """One metric over the seeds of one configuration."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """n, mean, sample std, the t-based ``confidence`` interval of the mean, min and max.

    Non-finite values (a diverged seed) are not averaged away: they make every field
    but ``n`` NaN, so the row cannot look better than it is.
    """
    x = np.asarray([float(v) for v in values], dtype=float)
    n = int(x.size)
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, nan)
    if not np.isfinite(x).all():
        nan = float("nan")
        return Summary(n, nan, nan, nan, nan, nan, nan)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    if n > 1:
        half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        low = high = float("nan")
    return Summary(n, mean, std, low, high, float(x.min()), float(x.max()))


@dataclass(frozen=True)
class Comparison:
    """Welch's t-test of A against B, with Cohen's d (positive when A > B)."""

    n_a: int
    n_b: int
    diff: float
    t: float
    df: float
    p: float
    cohens_d: float

    def distinguishable(self, alpha: float = ALPHA) -> bool:
        return bool(np.isfinite(self.p) and self.p < alpha)

    def verdict(self, alpha: float = ALPHA) -> str:
        if not np.isfinite(self.p):
            return f"not testable at n={self.n_a}/{self.n_b}"
        if self.distinguishable(alpha):
            return f"p={self.p:.3g} < {alpha}"
        return f"not distinguishable at n={self.n_a}/{self.n_b} (p={self.p:.3g})"


def welch(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Two-sided Welch t-test of mean(a) vs mean(b); NaN p when either has n < 2."""
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    na, nb = int(xa.size), int(xb.size)
    nan = float("nan")
    if na < 2 or nb < 2 or not (np.isfinite(xa).all() and np.isfinite(xb).all()):
        diff = float(xa.mean() - xb.mean()) if na and nb else nan
        return Comparison(na, nb, diff, nan, nan, nan, nan)
    va, vb = xa.var(ddof=1), xb.var(ddof=1)
    diff = float(xa.mean() - xb.mean())
    se2 = va / na + vb / nb
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    d = diff / pooled if pooled > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    if se2 == 0:  # identical constants: no evidence either way unless the means differ
        p = 1.0 if diff == 0 else 0.0
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return Comparison(na, nb, diff, t, float(na + nb - 2), p, d)
    t = diff / math.sqrt(se2)
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    p = float(2 * _st.t.sf(abs(t), df))
    return Comparison(na, nb, diff, float(t), float(df), p, float(d))
