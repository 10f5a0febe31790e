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
these sample sizes — not that they are equal. When the best configuration is tested
against k runners-up, the k p-values are one family: each verdict rests on its
Holm–Bonferroni adjusted p (``holm``), which keeps the chance of any false "worse" at
alpha rather than about k·alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

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
    # Holm-adjusted p when this test is one of ``family`` comparisons (the best against
    # each runner-up); the verdict then rests on it, so k tests keep a 5 % family-wise
    # error rate instead of k times that.
    p_adjusted: float | None = None
    family: int = 1

    @property
    def p_decisive(self) -> float:
        return self.p if self.p_adjusted is None else self.p_adjusted

    def distinguishable(self, alpha: float = ALPHA) -> bool:
        return bool(np.isfinite(self.p_decisive) and self.p_decisive < alpha)

    def verdict(self, alpha: float = ALPHA) -> str:
        if not np.isfinite(self.p):
            return f"not testable at n={self.n_a}/{self.n_b}"
        p = f"p={self.p:.3g}"
        if self.p_adjusted is not None and self.family > 1:
            p += f", Holm over {self.family}: {self.p_adjusted:.3g}"
        if self.distinguishable(alpha):
            return f"{p} < {alpha}"
        return f"not distinguishable at n={self.n_a}/{self.n_b} ({p})"


def holm(ps: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values, in the order given: the i-th smallest
    of the m finite p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)); NaN
    stays NaN and does not count in m."""
    finite = sorted((p, i) for i, p in enumerate(ps) if math.isfinite(p))
    out = [float("nan")] * len(ps)
    m, running = len(finite), 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def with_holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons of one family with their Holm-adjusted p-values filled in."""
    adjusted = holm([c.p for c in comparisons])
    n = len(comparisons)
    return [replace(c, p_adjusted=a, family=n) for c, a in zip(comparisons, adjusted)]


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
