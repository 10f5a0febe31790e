"""rnnlab.stats against hand-computed values and scipy."""

import math

import numpy as np
import pytest
from scipy import stats as st

from rnnlab.stats import summarize, welch


def test_summary_matches_hand_computed_values():
    s = summarize([0.90, 0.92, 0.94])
    assert s.n == 3
    assert s.mean == pytest.approx(0.92)
    assert s.std == pytest.approx(0.02)  # sqrt(((-.02)^2 + 0 + .02^2) / 2)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t_{0.975, 2}
    assert (s.ci_low, s.ci_high) == pytest.approx((0.92 - half, 0.92 + half))
    assert (s.min, s.max) == (0.90, 0.94)


def test_one_seed_has_no_interval_and_a_diverged_seed_poisons_the_row():
    one = summarize([0.5])
    assert one.std == 0.0 and math.isnan(one.ci_low) and one.mean == 0.5
    bad = summarize([0.9, float("nan"), 0.8])
    assert bad.n == 3 and math.isnan(bad.mean)


def test_welch_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.9, 0.01, 5), rng.normal(0.88, 0.03, 4)
    c = welch(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert c.t == pytest.approx(ref.statistic)
    assert c.p == pytest.approx(ref.pvalue)
    pooled = math.sqrt((4 * a.var(ddof=1) + 3 * b.var(ddof=1)) / 7)
    assert c.cohens_d == pytest.approx((a.mean() - b.mean()) / pooled)


def test_verdicts():
    assert welch([1.0, 1.1, 0.9], [5.0, 5.1, 4.9]).distinguishable()
    close = welch([0.90, 0.91, 0.92], [0.905, 0.915, 0.895])
    assert not close.distinguishable()
    assert "not distinguishable at n=3/3" in close.verdict()
    assert "not testable" in welch([1.0], [2.0, 3.0]).verdict()
