"""Forecast metrics on small hand-worked examples, perfect and reversed rankings, edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import metrics as m

# Worked example: 4 customers, 100 of actual value.
ACTUAL = [10.0, 0.0, 30.0, 60.0]
PRED = [30.0, 4.0, 20.0, 50.0]
# errors 20, 4, 10, 10 -> MAE 44/4, RMSE sqrt((400 + 16 + 100 + 100) / 4), WAPE 44/100.
# By prediction (desc) the actuals come 60, 10, 30, 0: value shares .6, .7, 1, 1 at customer
# shares .25, .5, .75, 1 -> area .25 * (.3 + .65 + .85 + 1) = .7, Gini 2 * .7 - 1 = .4.
# Perfect order 60, 30, 10, 0: shares .6, .9, 1, 1 -> area .75, Gini .5. Normalized: .8.
# Ranks actual (2, 1, 3, 4), predicted (3, 1, 2, 4): sum d^2 = 2, rho = 1 - 6*2/(4*15) = .8.


def test_hand_worked_example():
    assert m.mae(ACTUAL, PRED) == pytest.approx(11.0)
    assert m.rmse(ACTUAL, PRED) == pytest.approx(np.sqrt(154.0))
    assert m.wape(ACTUAL, PRED) == pytest.approx(0.44)
    assert m.total_ratio(ACTUAL, PRED) == pytest.approx(1.04)
    assert m.normalized_gini(ACTUAL, PRED) == pytest.approx(0.8)
    assert m.spearman(ACTUAL, PRED) == pytest.approx(0.8)


def test_gains_curve_hand_worked_points():
    curve = m.gains_curve(ACTUAL, PRED)
    np.testing.assert_allclose(curve["share_customers"], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve["share_value"], [0, 0.6, 0.7, 1.0, 1.0])


def test_top_decile_share_reads_the_gains_curve_pro_rata():
    # 10% of 4 customers is 0.4 of the top customer, who holds 60%: 0.4 * 0.6
    assert m.top_decile_share(ACTUAL, PRED) == pytest.approx(0.24)
    actual = np.arange(1.0, 21.0)  # 20 customers: the top decile is exactly 19 and 20
    assert m.top_decile_share(actual, actual) == pytest.approx(39 / 210)
    assert m.top_decile_share(actual, -actual) == pytest.approx(3 / 210)


def test_perfect_predictions():
    actual = np.arange(1.0, 21.0)
    result = m.evaluate(actual, actual, p10=actual - 1, p90=actual + 1)
    assert result["mae"] == 0 and result["rmse"] == 0 and result["wape"] == 0
    assert result["gini"] == pytest.approx(1.0)
    assert result["spearman"] == pytest.approx(1.0)
    assert result["decile_calibration_error"] == pytest.approx(0.0)
    assert result["total_ratio"] == pytest.approx(1.0)
    assert result["p10_p90_coverage"] == 1.0


def test_reversed_ranking_gives_negative_gini_and_spearman():
    assert m.normalized_gini(ACTUAL, [-v for v in ACTUAL]) == pytest.approx(-1.0)
    assert m.spearman(ACTUAL, [-v for v in ACTUAL]) == pytest.approx(-1.0)
    # any worse-than-random order is negative: 0, 10 first, then 60, 30
    assert m.normalized_gini(ACTUAL, [3.0, 4.0, 1.0, 2.0]) < 0


def test_gini_is_invariant_to_scale_and_increasing_transforms():
    rng = np.random.default_rng(3)
    actual = rng.gamma(0.5, 40.0, size=500)
    pred = actual + rng.normal(0, 30, size=500)
    base = m.normalized_gini(actual, pred)
    assert 0.2 < base < 0.99
    assert m.normalized_gini(actual, 7.5 * pred) == pytest.approx(base)
    assert m.normalized_gini(actual, np.exp(pred / 50)) == pytest.approx(base)
    assert m.normalized_gini(3.0 * actual, pred) == pytest.approx(base)


def test_ties_in_predictions_count_as_one_block_in_any_row_order():
    # 60 first, then a block of (10, 0, 30): (0,0) -> (.25,.6) -> (1,1), straight through the
    # block: area .25*.3 + .75*(.6+1)/2 = .675, Gini .35, normalized .35 / .5 = .7
    pred = [1.0, 1.0, 1.0, 2.0]
    assert m.normalized_gini(ACTUAL, pred) == pytest.approx(0.7)
    order = [2, 1, 3, 0]
    assert m.normalized_gini(np.take(ACTUAL, order), np.take(pred, order)) == pytest.approx(0.7)
    np.testing.assert_allclose(m.gains_curve(ACTUAL, pred)["share_value"], [0, 0.6, 1.0])


def test_constant_predictions_carry_no_ranking_information():
    actual = [0.0, 0.0, 0.0, 4.0]
    const = [1.0, 1.0, 1.0, 1.0]
    assert m.normalized_gini(actual, const) == 0.0
    assert m.spearman(actual, const) == 0.0
    # one tied block -> one decile whose means match (1 = 1): perfectly calibrated on average
    table = m.decile_table(actual, const)
    assert table[["n", "mean_predicted", "mean_actual"]].to_numpy().tolist() == [[4, 1.0, 1.0]]
    assert m.decile_calibration_error(actual, const) == 0.0


def test_decile_table_and_calibration_error_hand_worked():
    actual = np.arange(1.0, 21.0)
    table = m.decile_table(actual, 2 * actual)
    assert table["decile"].tolist() == list(range(1, 11))
    assert (table["n"] == 2).all()
    np.testing.assert_allclose(table["mean_actual"], np.arange(1.5, 21, 2))
    np.testing.assert_allclose(table["mean_predicted"], 2 * np.arange(1.5, 21, 2))
    # each decile is off by its own mean actual; with equal deciles that averages to the
    # overall mean actual, so the error (divided by the mean actual) is exactly 1
    assert m.decile_calibration_error(actual, 2 * actual) == pytest.approx(1.0)
    assert m.total_ratio(actual, 2 * actual) == pytest.approx(2.0)


def test_calibration_error_with_a_forecasts_deciles_matches_for_its_monotone_maps():
    rng = np.random.default_rng(4)
    score = np.round(rng.gamma(0.5, 20.0, 5000), 1)  # ties, zeros among them
    actual = rng.poisson(score / 10) * 12.0
    deciles = m.prediction_deciles(score)
    for gamma, k in ((1.0, 1.0), (1.4, 0.3), (2.0, 0.05)):
        mapped = k * score ** gamma
        assert m.decile_calibration_error(actual, mapped, deciles) == pytest.approx(
            m.decile_calibration_error(actual, mapped), rel=1e-12)
    table = m.decile_table(actual, score)  # the same means as the table's, by decile
    by_table = np.mean(np.abs(table["mean_predicted"] - table["mean_actual"])) / actual.mean()
    assert m.decile_calibration_error(actual, score) == pytest.approx(by_table, rel=1e-12)
    # another forecast's deciles are another grouping: the shortcut is only for monotone maps
    assert m.decile_calibration_error(actual, score, m.prediction_deciles(actual)) != pytest.approx(
        m.decile_calibration_error(actual, score))


def test_interval_coverage_counts_bounds_as_inside():
    # 1 in [0, 2] yes; 2 in [2.5, 3] no; 3 in [3, 3] yes; 4 in [5, 6] no
    assert m.interval_coverage([1, 2, 3, 4], [0, 2.5, 3, 5], [2, 3, 3, 6]) == 0.5
    with pytest.raises(ValueError, match=r"p10 > p90 at 1 position"):
        m.interval_coverage([1, 2], [0, 3], [2, 2])


def test_all_zero_actuals_raise_undefined_for_value_metrics():
    zeros, pred = [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]
    assert m.mae(zeros, pred) == pytest.approx(2.0)  # still defined
    for metric in (m.wape, m.normalized_gini, m.top_decile_share, m.decile_calibration_error,
                   m.total_ratio, m.gains_curve):
        with pytest.raises(m.UndefinedMetricError, match="sum to 0"):
            metric(zeros, pred)
    with pytest.raises(m.UndefinedMetricError, match="all actual values are equal"):
        m.spearman(zeros, pred)


def test_equal_positive_actuals_make_gini_undefined_not_nan():
    with pytest.raises(m.UndefinedMetricError, match="normalizer is 0"):
        m.normalized_gini([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])


def test_evaluate_raises_on_undefined_by_default_and_can_omit():
    zeros, pred = [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]
    with pytest.raises(m.UndefinedMetricError):
        m.evaluate(zeros, pred)
    result = m.evaluate(zeros, pred, on_undefined="omit")
    assert set(result) == {"mae", "rmse"}
    assert all(np.isfinite(v) for v in result.values())


def test_evaluate_returns_every_metric_as_a_finite_float():
    result = m.evaluate(pd.Series(ACTUAL, index=[9, 8, 7, 6]), np.array(PRED))
    assert set(result) == set(m.METRICS)
    assert all(isinstance(v, float) and np.isfinite(v) for v in result.values())
    assert result["gini"] == pytest.approx(0.8)
    assert "p10_p90_coverage" not in result


@pytest.mark.parametrize("actual, predicted, needle", [
    ([], [], "actual is empty"),
    ([1.0, 2.0], [1.0], "inputs differ in length"),
    ([1.0, np.nan], [1.0, 2.0], r"actual has 1 NaN/inf value\(s\), e.g. at positions \[1\]"),
    ([1.0, 2.0], [np.inf, 2.0], "predicted has 1 NaN/inf"),
    ([[1.0, 2.0]], [[1.0, 2.0]], "1-dimensional"),
])
def test_invalid_inputs_raise_value_error_with_a_clear_message(actual, predicted, needle):
    with pytest.raises(ValueError, match=needle) as exc:
        m.evaluate(actual, predicted)
    assert not isinstance(exc.value, m.UndefinedMetricError)


def test_evaluate_requires_both_interval_bounds():
    with pytest.raises(ValueError, match="both p10 and p90"):
        m.evaluate(ACTUAL, PRED, p10=PRED)


def _zero_inflated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    actual = np.where(rng.random(n) < 0.3, rng.gamma(1.0, 50.0, n), 0.0)
    return actual, actual * rng.lognormal(0.0, 1.0, n) + rng.random(n)


def test_weighted_gini_with_unit_weights_is_normalized_gini_ties_included():
    actual, pred = _zero_inflated(500, 1)
    for p in (pred, np.round(pred, -1), np.ones(500)):  # distinct, tied blocks, constant
        one = np.ones((1, 500))
        got = m._weighted_gini(actual, p, one)[0] / m._weighted_gini(actual, actual, one)[0]
        assert got == pytest.approx(m.normalized_gini(actual, p), abs=1e-12)


def test_gini_bootstrap_is_paired_and_centred_on_the_sample_gini():
    actual, pred = _zero_inflated(3000, 2)
    reps = m.gini_bootstrap(actual, {"p": pred, "same_order": np.sqrt(pred), "rounded": np.round(pred, -1)})
    assert list(reps.columns) == ["p", "same_order", "rounded"] and len(reps) == 50
    assert (reps["p"] - reps["same_order"]).abs().max() < 1e-12  # same ranking, same replicates
    assert reps["p"].std() > 0.001
    assert (reps["p"] - reps["rounded"]).std() < reps["p"].std()  # pairing removes shared noise
    assert reps["p"].mean() == pytest.approx(m.normalized_gini(actual, pred), abs=3 * reps["p"].std())


def test_gini_bootstrap_noise_shrinks_with_customers_also_past_max_rows():
    small, large = _zero_inflated(2000, 3), _zero_inflated(32000, 3)
    se_small = m.gini_bootstrap(*small[:1], {"p": small[1]}, n_boot=200)["p"].std()
    se_large = m.gini_bootstrap(*large[:1], {"p": large[1]}, n_boot=200)["p"].std()
    se_capped = m.gini_bootstrap(*large[:1], {"p": large[1]}, n_boot=200, max_rows=2000)["p"].std()
    assert 0.15 < se_large / se_small < 0.4  # sqrt(2000 / 32000) = 0.25
    assert 0.6 < se_capped / se_large < 1.6  # the subset stands in for all 32000


def test_total_ratio_bootstrap_uses_the_gini_replicates_and_shrinks_with_customers():
    actual, pred = _zero_inflated(3000, 5)
    reps = m.total_ratio_bootstrap(actual, {"p": pred, "exact": actual, "double": 2 * pred})
    assert len(reps) == 50 and np.allclose(reps["exact"], 1.0)  # the actual total, reweighted
    assert np.allclose(reps["double"], 2 * reps["p"])
    assert reps["p"].mean() == pytest.approx(m.total_ratio(actual, pred), abs=3 * reps["p"].std())
    # the same customers and weights as gini_bootstrap draws for the seed
    idx, w = m._replicate_weights(3000, 50, 0, 50_000)
    assert reps["p"].iloc[7] == pytest.approx((w[7] @ pred[idx]) / (w[7] @ actual[idx]))
    small, large = _zero_inflated(2000, 6), _zero_inflated(32000, 6)
    se_small = m.total_ratio_bootstrap(*small[:1], {"p": small[1]}, n_boot=200)["p"].std()
    se_large = m.total_ratio_bootstrap(*large[:1], {"p": large[1]}, n_boot=200)["p"].std()
    se_capped = m.total_ratio_bootstrap(*large[:1], {"p": large[1]}, n_boot=200, max_rows=2000)["p"].std()
    assert 0.15 < se_large / se_small < 0.4  # sqrt(2000 / 32000) = 0.25
    assert 0.6 < se_capped / se_large < 1.6


def test_gini_bootstrap_validates_every_prediction_against_actual():
    actual, pred = _zero_inflated(100, 4)
    with pytest.raises(ValueError, match="differ in length"):
        m.gini_bootstrap(actual, {"p": pred, "short": pred[:-1]})
    with pytest.raises(ValueError, match=r"predictions\['p'\] has 1 NaN"):
        m.gini_bootstrap(actual, {"p": np.r_[pred[:-1], np.nan]})


def test_share_above_p90_overall_and_in_the_top_decile():
    actual = np.arange(20.0)  # customer i realises i
    predicted = np.arange(20.0)  # top decile: customers 18 and 19
    p90 = np.full(20, 17.5)
    assert m.share_above_p90(actual, p90) == pytest.approx(2 / 20)
    assert m.share_above_p90(actual, p90, predicted) == 1.0  # both top customers exceed it
    assert m.share_above_p90(actual, p90, -predicted) == 0.0  # reversed: the top are 0 and 1
    result = m.evaluate(actual, predicted, p10=np.zeros(20), p90=p90)
    assert result["share_above_p90"] == pytest.approx(0.1)
    assert result["share_above_p90_top_decile"] == 1.0
    # Tied predictions leave the top decile empty: undefined, omitted on request.
    with pytest.raises(m.UndefinedMetricError, match="top prediction decile"):
        m.share_above_p90(actual, p90, np.ones(20))
    omitted = m.evaluate(actual, np.ones(20), p10=np.zeros(20), p90=p90, on_undefined="omit")
    assert "share_above_p90_top_decile" not in omitted and "share_above_p90" in omitted
