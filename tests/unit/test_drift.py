"""lib/drift.py: PSI and KS properties, and the one retrain decision on monitoring figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline import settings
from ltv_pipeline.lib import drift, monitoring

RNG = np.random.default_rng(7)
T = settings.drift_thresholds()


def test_psi_of_a_sample_against_itself_is_zero():
    x = RNG.gamma(2.0, 10.0, 5000)
    assert drift.psi(x, x) == pytest.approx(0.0, abs=1e-12)


def test_psi_is_small_for_two_samples_of_one_distribution_and_large_for_a_shift():
    a, b = RNG.normal(0, 1, 20000), RNG.normal(0, 1, 20000)
    assert drift.psi(a, b) < 0.01
    assert drift.psi(a, b + 1.0) > 0.25  # a one-sd shift is a major one on the PSI scale


def test_psi_grows_with_the_shift():
    a = RNG.normal(0, 1, 20000)
    values = [drift.psi(a, RNG.normal(mu, 1, 20000)) for mu in (0.1, 0.3, 0.6, 1.0)]
    assert values == sorted(values)


def test_psi_matches_the_formula_on_reference_quantile_bins():
    ref = np.arange(100, dtype=float)  # deciles: ten bins of ten
    cur = np.concatenate([np.zeros(30), np.arange(30, 100, dtype=float)])  # 30 in the first bin...
    cur = cur[:100]
    e = drift.shares(ref, drift.bin_edges(ref, 10))[:-1]
    a = drift.shares(cur, drift.bin_edges(ref, 10))[:-1]
    assert e.tolist() == [0.1] * 10
    assert a[0] == pytest.approx(0.3)
    expected = sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e) if ai > 0)
    # bins empty in the current sample are floored at PSI_EPSILON: they add a bounded term
    eps = drift.PSI_EPSILON
    floored = sum((eps - ei) * math.log(eps / ei) for ai, ei in zip(a, e) if ai == 0)
    assert drift.psi(ref, cur) == pytest.approx(expected + floored, rel=1e-3)


def test_psi_handles_a_point_mass_at_zero_as_one_bin_and_stays_finite():
    ref = np.concatenate([np.zeros(7000), RNG.gamma(2, 20, 3000)])  # 70 % zeros
    edges = drift.bin_edges(ref, 10)
    assert (edges == 0).sum() == 1  # the seven quantiles at 0 collapse into one edge
    assert drift.shares(ref, edges)[0] == pytest.approx(0.7)
    more_zeros = np.concatenate([np.zeros(9000), RNG.gamma(2, 20, 1000)])
    value = drift.psi(ref, more_zeros)
    assert math.isfinite(value) and value > 0.25
    assert math.isfinite(drift.psi(np.zeros(100), np.ones(100)))  # all mass changes bins


def test_psi_counts_values_outside_the_reference_range_and_missing_values():
    ref = RNG.uniform(0, 1, 5000)
    assert drift.psi(ref, RNG.uniform(5, 6, 5000)) > 1  # all in the open top bin
    with_missing = np.where(RNG.uniform(size=5000) < 0.3, np.nan, RNG.uniform(0, 1, 5000))
    assert drift.psi(ref, with_missing) > 0.25


def test_psi_refuses_an_empty_or_all_missing_reference():
    with pytest.raises(ValueError, match="no finite values"):
        drift.psi([np.nan, np.nan], [1.0])
    with pytest.raises(ValueError, match="at least 2"):
        drift.bin_edges([1.0, 2.0], 1)


def test_ks_is_zero_for_identical_samples_and_one_for_disjoint_ones():
    x = RNG.normal(size=1000)
    assert drift.ks(x, x) == 0.0
    assert drift.ks(x, x + 100) == 1.0
    assert 0.3 < drift.ks(x, x + 1) < 0.5  # sup |Phi(t) - Phi(t - 1)| = 0.383


def test_feature_drift_ranks_the_shifted_feature_first():
    ref = pd.DataFrame({"a": RNG.normal(size=5000), "b": RNG.gamma(2, 1, 5000)})
    cur = pd.DataFrame({"a": RNG.normal(size=5000), "b": RNG.gamma(2, 1, 5000) * 1.5})
    table = drift.feature_drift(ref, cur, ["a", "b"])
    assert table["feature"].tolist() == ["b", "a"]
    assert table.loc[0, "current_mean"] > table.loc[0, "reference_mean"] * 1.3
    with pytest.raises(ValueError, match="missing"):
        drift.feature_drift(ref, cur, ["a", "nope"])


def test_realised_error_counts_users_without_a_purchase_as_zero_and_never_invents_a_metric():
    forecasts = pd.DataFrame({"user_id": ["a", "b", "c"], "predicted_value": [10.0, 5.0, 1.0]})
    realised = pd.DataFrame({"user_id": ["a", "b"], "value": [8.0, 2.0]})
    err = monitoring.realised_error(forecasts, realised)
    assert err["n_users"] == 3 and err["total_realised"] == 10.0
    assert err["mae"] == pytest.approx((2 + 3 + 1) / 3)
    assert err["total_ratio"] == pytest.approx(1.6)
    nothing = monitoring.realised_error(forecasts, realised.iloc[:0])
    assert nothing["total_ratio"] is None and "total_ratio" in nothing["undefined"]


def figures(**over) -> dict:
    """Monitoring figures of a stable day; keyword arguments replace whole sections."""
    base = {
        "as_of": "2025-02-14", "reference_date": "2025-02-10", "horizon_days": 90,
        "features": {"monetary_mean": {"psi": 0.01}, "orders_90d": {"psi": 0.02},
                     "revenue_90d": {"psi": 0.03}},
        "predictions": {"available": True, "psi": 0.02, "reference_mean": 10.0,
                        "current_mean": 10.1, "reference_date": "2025-02-10"},
        "realised_error": {"available": True, "forecast_date": "2024-11-16", "n_users": 5000,
                           "mae": 11.0, "gini": 0.55, "total_ratio": 1.02,
                           "reference_mae": 10.0, "reference_gini": 0.58},
        "volume": {"window_days": 28, "recent_rows_per_day": 70.0,
                   "reference_rows_per_day": 72.0, "ratio": 70 / 72},
        "freshness": {"last_transaction_date": "2025-02-14", "lag_days": 0},
    }
    return base | over


def test_decide_says_no_on_stable_figures():
    assert drift.decide(figures(), T) == drift.Decision(False, [])


def test_decide_retrains_on_a_feature_past_the_psi_line():
    one = figures(features={"monetary_mean": {"psi": 0.4}, "orders_90d": {"psi": 0.01}})
    decision = drift.decide(one, T)
    assert decision.retrain
    assert decision.reasons[0].startswith("1 feature(s) drifted")
    assert "monetary_mean (PSI 0.400)" in decision.reasons[0]


def ks_row(ks: float, observed: int) -> dict:
    return {"psi": 0.06, "ks": ks, "n_reference_observed": observed, "n_current_observed": observed}


def test_decide_reads_ks_among_observed_values_only_on_enough_of_them():
    # a rate most customers do not have: PSI diluted by the missing bin, KS among the observed
    shifted = figures(features={"cart_abandonment_rate_90d": ks_row(0.33, 1500)})
    decision = drift.decide(shifted, T)
    assert decision.retrain and "cart_abandonment_rate_90d (PSI 0.060, KS 0.330)" in decision.reasons[0]
    assert not drift.decide(figures(features={"x": ks_row(0.33, T.min_ks_values - 1)}), T).retrain
    assert not drift.decide(figures(features={"x": ks_row(0.15, 5000)}), T).retrain


def test_decide_retrains_on_prediction_drift():
    pred = {**figures()["predictions"], "psi": 0.4}
    decision = drift.decide(figures(predictions=pred), T)
    assert decision.retrain and "predicted values drifted" in decision.reasons[0]


@pytest.mark.parametrize("change, phrase", [
    ({"total_ratio": 1.4}, "total predicted / realised 1.400 outside [0.8, 1.25]"),
    ({"total_ratio": 0.7}, "total predicted / realised 0.700"),
    ({"gini": 0.40}, "normalized Gini 0.400"),
    ({"mae": 14.0}, "MAE 14.00 is 40% above"),
])
def test_decide_retrains_on_matured_error_out_of_bounds(change, phrase):
    err = {**figures()["realised_error"], **change}
    decision = drift.decide(figures(realised_error=err), T)
    assert decision.retrain and any(phrase in r for r in decision.reasons)


def test_decide_ignores_matured_error_on_too_few_users_or_when_unavailable():
    err = {**figures()["realised_error"], "total_ratio": 2.0, "n_users": T.min_matured_users - 1}
    assert not drift.decide(figures(realised_error=err), T).retrain
    gone = {"available": False, "forecast_date": "2024-11-16", "note": "no forecasts"}
    assert not drift.decide(figures(realised_error=gone), T).retrain


def test_decide_holds_a_retrain_back_on_stale_data_or_collapsed_volume_and_says_why():
    drifted = {"monetary_mean": {"psi": 0.4}, "orders_90d": {"psi": 0.3}}
    stale = figures(features=drifted, freshness={"last_transaction_date": "2025-02-01", "lag_days": 13})
    decision = drift.decide(stale, T)
    assert not decision.retrain
    assert decision.reasons[0].startswith("held: the data is stale")
    assert any(r.startswith("would retrain: 2 feature(s)") for r in decision.reasons)
    low = figures(volume={"window_days": 28, "recent_rows_per_day": 10.0,
                          "reference_rows_per_day": 72.0, "ratio": 10 / 72})
    decision = drift.decide(low, T)
    assert not decision.retrain and "transaction volume fell to 0.14" in decision.reasons[0]


def test_decide_judges_the_total_ratio_against_one_and_reports_the_backtest_beside_it():
    usual = {**figures()["realised_error"], "reference_total_ratio": 0.84}
    # 1.1 is 1.3 x the backtest's bias, but backtest windows fall in other seasons
    assert not drift.decide(figures(realised_error={**usual, "total_ratio": 1.10}), T).retrain
    decision = drift.decide(figures(realised_error={**usual, "total_ratio": 1.26}), T)
    assert decision.retrain and "(the champion's backtest: 0.840)" in decision.reasons[0]


def test_features_never_observed_are_named_not_reported_as_stable():
    import numpy as np
    import pandas as pd

    from ltv_pipeline.lib import drift

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"orders_90d": rng.poisson(1.0, 500), "cart_adds_90d": np.nan})
    cur = pd.DataFrame({"orders_90d": rng.poisson(1.0, 500), "cart_adds_90d": np.nan})
    table = drift.feature_drift(ref, cur, ["orders_90d", "cart_adds_90d"])
    assert list(table["feature"]) == ["orders_90d"]
    assert table.attrs["unobserved"] == ["cart_adds_90d"]
    empty = drift.feature_drift(ref[["cart_adds_90d"]], cur[["cart_adds_90d"]], ["cart_adds_90d"])
    assert empty.empty and empty.attrs["unobserved"] == ["cart_adds_90d"]
    assert drift.decide({**figures(), "features": {}}, T).retrain is False
