"""lib/intervals: the quantile members' calibration map (fitted on held-out rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import intervals


def sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, q): a zero-inflated value whose purchase probability and spend both rise with a
    hidden x, and a p90 forecast shrunk to the middle like a regularised quantile booster's:
    q = max(true 0.9-quantile, 1) ** 0.6 (too low at the top)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=n)
    p_buy = 0.05 + 0.9 * x
    mu = 2.0 + 2.5 * x
    buys = rng.uniform(size=n) < p_buy
    y = np.where(buys, rng.lognormal(mu, 0.7, size=n), 0.0)
    # P(Y <= t) = 1 - p_buy + p_buy * Phi((log t - mu) / 0.7): the 0.9-quantile is 0 while
    # p_buy <= 0.1, else exp(mu + 0.7 * Phi^-1(1 - 0.1 / p_buy)).
    from scipy.stats import norm

    with np.errstate(divide="ignore", invalid="ignore"):
        true_q = np.where(p_buy > 0.1, np.exp(mu + 0.7 * norm.ppf(1 - 0.1 / p_buy)), 0.0)
    return y, np.maximum(true_q, 1.0) ** 0.6


def above_by_decile(y: np.ndarray, bound: np.ndarray, by: np.ndarray) -> pd.Series:
    dec = pd.qcut(pd.Series(by).rank(method="first"), 10, labels=False)
    return pd.Series(y > bound).groupby(dec).mean()


def test_the_map_restores_the_tail_share_in_every_bin_on_fresh_rows():
    y_fit, q_fit = sample(20_000, seed=1)
    qmap = intervals.fit_quantile_map(q_fit, y_fit, 0.9)
    assert qmap is not None and len(qmap["factors"]) == intervals.N_BINS
    y, q = sample(20_000, seed=2)
    raw = above_by_decile(y, q, q)
    mapped = above_by_decile(y, intervals.apply_quantile_map(q, qmap), q)
    assert raw.iloc[-1] > 0.3  # the shrunk forecast misses the top badly ...
    assert abs(mapped.iloc[-1] - 0.1) < 0.03  # ... the mapped one does not
    # Where more than 10% buy the share above the bound is 10% in every decile, within noise.
    assert (mapped[mapped.index >= 2] - 0.1).abs().max() < 0.04
    # A factor grows towards the top, where the raw forecast is shrunk the most.
    assert qmap["factors"][-1] > 1.5 > qmap["factors"][0]


def test_where_the_quantile_falls_on_the_zeros_the_bound_is_the_boosters_or_zero():
    """90% of a bin buying nothing: any p90 below the smallest purchase is as right as 0, so the
    booster's own p90 stays; a p90 above purchases is moved; p10 of such a bin is 0."""
    rng = np.random.default_rng(0)
    q = rng.uniform(1, 2, size=2_000)
    y = np.where(rng.uniform(size=2_000) < 0.05, 50.0, 0.0)
    upper = intervals.fit_quantile_map(q, y, 0.9)
    assert upper["factors"] == [1.0] * intervals.N_BINS
    np.testing.assert_array_equal(intervals.apply_quantile_map(q, upper), q)
    assert intervals.fit_quantile_map(q * 100, y, 0.9)["factors"] == [0.0] * intervals.N_BINS
    lower = intervals.fit_quantile_map(q, y, 0.1)
    np.testing.assert_array_equal(intervals.apply_quantile_map(q, lower), 0.0)


def test_the_lower_bound_is_mapped_with_its_own_alpha():
    """Every customer buys (no atom at 0); a p10 forecast that overshoots, by more at the top."""
    def draw(seed):
        rng = np.random.default_rng(seed)
        mu = rng.uniform(1, 4, size=20_000)
        return rng.lognormal(mu, 0.7), np.exp(mu) * (1 + mu)

    y_fit, q_fit = draw(3)
    qmap = intervals.fit_quantile_map(q_fit, y_fit, 0.1)
    y, q = draw(4)
    low = intervals.apply_quantile_map(q, qmap)
    dec = pd.qcut(pd.Series(q).rank(method="first"), 10, labels=False)
    raw, below = pd.Series(y < q).groupby(dec).mean(), pd.Series(y < low).groupby(dec).mean()
    assert raw.min() > 0.5
    assert (below - 0.1).abs().max() < 0.03
    assert (low < q).all()


def test_too_few_rows_give_no_map_and_the_forecasts_stay():
    q = np.linspace(0.5, 5, 150)
    assert intervals.fit_quantile_map(q, q * 2, 0.9) is None
    assert intervals.fit_quantile_map(np.r_[np.zeros(500), q], np.ones(650), 0.9) is None
    np.testing.assert_array_equal(intervals.apply_quantile_map(q, None), q)
    assert "no calibration map" in intervals.describe(None)


def test_zero_and_non_finite_forecasts_are_left_out_and_stay_zero():
    rng = np.random.default_rng(5)
    q = np.r_[np.zeros(300), rng.uniform(1, 10, size=1_000), [np.nan, np.inf]]
    y = np.r_[rng.uniform(0, 100, size=300), q[300:1300] * 2, [1.0, 1.0]]
    qmap = intervals.fit_quantile_map(q, y, 0.9)
    assert qmap is not None
    assert np.allclose(qmap["factors"], 2.0)  # the zero rows' large labels did not enter
    out = intervals.apply_quantile_map(np.array([0.0, 4.0]), qmap)
    assert out[0] == 0.0 and out[1] == pytest.approx(8.0)
