"""rnnlab.stats against hand-computed values and scipy."""

import math

import numpy as np
import pytest
from scipy import stats as st

from rnnlab.stats import holm, summarize, welch, with_holm


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


def test_holm_matches_the_step_down_by_hand():
    # sorted 0.01, 0.02, 0.03, 0.5 with m = 4: 0.04, 0.06, max(0.06, 0.06), max(., 0.5)
    adjusted = holm([0.03, 0.5, 0.01, 0.02])
    assert adjusted == pytest.approx([0.06, 0.5, 0.04, 0.06])
    # monotone in the sorted order and capped at 1; NaN kept and not counted in m
    assert holm([0.4, 0.6, float("nan")])[:2] == pytest.approx([0.8, 0.8])
    assert math.isnan(holm([0.4, float("nan")])[1]) and holm([0.4, float("nan")])[0] == 0.4
    assert holm([0.9, 0.95]) == pytest.approx([1.0, 1.0])


def test_holm_decides_the_verdict_of_a_family():
    best = [0.93, 0.931, 0.932]
    near = [0.925, 0.927, 0.928]  # alone p < 0.05; one of seven tests it is not
    alone = welch(best, near)
    assert alone.distinguishable() and alone.p < 0.05
    family = with_holm([alone] + [welch(best, [0.92, 0.93, 0.94])] * 6)
    first = family[0]
    assert first.p == alone.p and first.family == 7
    assert first.p_adjusted == pytest.approx(min(1.0, 7 * alone.p))
    assert not first.distinguishable()
    assert "Holm over 7" in first.verdict() and "not distinguishable" in first.verdict()
