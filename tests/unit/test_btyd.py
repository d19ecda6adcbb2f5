"""BTYD fitting: golden CDNOW_sample estimates, weighted fits, robust back-offs, summaries."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from lifetimes.utils import summary_data_from_transaction_data

from ltv_pipeline.lib import btyd

CDNOW_END = "1997-09-30"
# Fader, Hardie and Lee (2005) / Fader and Hardie (2013), converted from weeks to days.
PUBLISHED = {
    "bgnbd": {"r": 0.2426, "alpha": 30.895, "a": 0.7929, "b": 2.4259},
    "pareto": {"r": 0.5533, "alpha": 74.04, "s": 0.6063, "beta": 81.69},
    "gamma_gamma": {"p": 6.2496, "q": 3.7442, "v": 15.4435},
}
COLUMNS = ["user_id", "expected_purchases", "p_alive", "expected_spend", "predicted_value", "model"]


@pytest.fixture(scope="module")
def cdnow_tx() -> pd.DataFrame:
    """CDNOW_sample as shipped with lifetimes: 1997-01 to 1998-06, one row per order."""
    path = files("lifetimes") / "datasets" / "CDNOW_sample.txt"
    tx = pd.read_csv(path, sep=r"\s+", header=None, dtype={"customer_id": str, "date": str},
                     names=["customer_id", "customer_index", "date", "number_of_cds", "dollar_value"])
    tx["ts"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    return tx


@pytest.fixture(scope="module")
def cdnow(cdnow_tx) -> pd.DataFrame:
    return btyd.summary_from_transactions(cdnow_tx, CDNOW_END, "customer_id", "ts", "dollar_value")


def _summary(rows) -> pd.DataFrame:
    f, r, t, m = zip(*rows) if rows else ((), (), (), ())
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(len(f))], "frequency": list(f),
                         "recency": list(r), "T": list(t), "monetary_value": list(m)})


def _assert_valid_forecast(out: pd.DataFrame, summary: pd.DataFrame) -> None:
    assert list(out.columns) == COLUMNS
    assert out["user_id"].tolist() == summary["user_id"].tolist()
    values = out[COLUMNS[1:5]].to_numpy(float)
    assert np.isfinite(values).all() and (values >= 0).all()
    assert (out["p_alive"] <= 1).all()
    np.testing.assert_allclose(out["predicted_value"], out["expected_purchases"] * out["expected_spend"])


def test_summary_from_transactions_matches_lifetimes_on_cdnow(cdnow_tx, cdnow):
    ref = summary_data_from_transaction_data(cdnow_tx, "customer_id", "ts", "dollar_value",
                                             observation_period_end=CDNOW_END, freq="D")
    assert len(cdnow) == 2357
    ours = cdnow.set_index("user_id").sort_index()
    pd.testing.assert_frame_equal(ours, ref.sort_index(), check_dtype=False, check_names=False)


def test_summary_from_transactions_day_totals_and_cutoff_match_lifetimes():
    # same-day orders are one purchase day; a time of day on D counts, D + 1 day 00:00 does not
    tx = pd.DataFrame({
        "user_id": ["a", "a", "a", "a", "b", "b", "c", "c"],
        "ts": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 18:00", "2024-01-05 10:00",
                              "2024-01-11 00:00", "2024-01-03 00:00", "2024-01-10 23:59",
                              "2024-01-10 12:00", "2024-01-12 08:00"]),
        "amount": [10.0, 5.0, 7.0, 100.0, 3.0, 9.0, 4.0, 8.0],
    })
    ours = btyd.summary_from_transactions(tx, "2024-01-10", order_value=True)
    ref = summary_data_from_transaction_data(tx, "user_id", "ts", "amount",
                                             observation_period_end="2024-01-10", freq="D")
    pd.testing.assert_frame_equal(ours.drop(columns="mean_order_value").set_index("user_id"), ref,
                                  check_dtype=False, check_names=False)
    a = ours.set_index("user_id").loc["a"]
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (1, 4, 9, 7.0)
    assert a["mean_order_value"] == pytest.approx((15.0 + 7.0) / 2)


def test_summary_from_transactions_rejects_null_user_ids():
    tx = pd.DataFrame({"user_id": ["a", None], "ts": pd.to_datetime(["2024-01-01"] * 2), "amount": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"transactions.user_id has 1 null"):
        btyd.summary_from_transactions(tx, "2024-01-10")


@pytest.mark.parametrize("model", ["bgnbd", "pareto"])
def test_count_model_reproduces_published_cdnow_estimates(cdnow, model):
    fit = btyd.fit_btyd(cdnow, model)
    assert fit.converged and not fit.fallback and fit.penalizer == 0.0
    assert fit.params == pytest.approx(PUBLISHED[model], rel=2e-3)


def test_gamma_gamma_reproduces_published_cdnow_estimates(cdnow):
    spend = btyd.fit_gamma_gamma(cdnow)
    assert not spend.fallback and spend.n_fitted == 946
    assert spend.params == pytest.approx(PUBLISHED["gamma_gamma"], rel=2e-3)
    p, q, v = (PUBLISHED["gamma_gamma"][k] for k in "pqv")
    assert spend.population_mean == pytest.approx(p * v / (q - 1), rel=5e-3)


@pytest.mark.parametrize("model, cls, rel", [("bgnbd", BetaGeoFitter, 1e-6),
                                             ("mbgnbd", ModifiedBetaGeoFitter, 1e-6),
                                             ("pareto", ParetoNBDFitter, 1e-3)])
def test_weighted_fit_on_unique_rows_equals_unweighted_fit(cdnow, model, cls, rel):
    fit = btyd.fit_btyd(cdnow, model)
    assert fit.fitter.data.shape[0] < len(cdnow) / 2  # it really ran on the unique rows
    kwargs = {"initial_params": np.ones(4), "tol": 1e-8, "maxiter": 20000} if model == "pareto" else {}
    with np.errstate(all="ignore"):
        plain = cls().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"], **kwargs)
    assert fit.params == pytest.approx(plain.params_.to_dict(), rel=rel)


def test_predict_maps_pattern_forecasts_back_to_the_right_customers(cdnow):
    fit, spend = btyd.fit_btyd(cdnow, "bgnbd"), btyd.fit_gamma_gamma(cdnow)
    shuffled = cdnow.sample(frac=1.0, random_state=7).reset_index(drop=True)
    out = btyd.predict(fit, spend, shuffled, 90)
    _assert_valid_forecast(out, shuffled)
    assert set(out["model"]) == {"bgnbd"}
    f, r, t = (shuffled[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    expected = fit.fitter.conditional_expected_number_of_purchases_up_to_time(90, f, r, t)
    np.testing.assert_allclose(out["expected_purchases"], expected, rtol=1e-12)
    np.testing.assert_allclose(out["p_alive"], fit.fitter.conditional_probability_alive(f, r, t), rtol=1e-12)


def test_zero_value_repeat_buyer_is_left_out_of_gamma_gamma_and_gets_population_mean(cdnow):
    summary = cdnow.copy()
    victim = summary.index[summary["frequency"] > 0][0]
    summary.loc[victim, "monetary_value"] = 0.0
    spend = btyd.fit_gamma_gamma(summary)
    assert not spend.fallback and spend.n_fitted == 945
    assert any("1 repeat buyer(s) with monetary_value <= 0" in n for n in spend.notes)
    values = spend.expected_spend(summary)
    assert values[summary.index.get_loc(victim)] == pytest.approx(spend.population_mean)
    one_timers = (summary["frequency"] == 0).to_numpy()
    np.testing.assert_allclose(values[one_timers], spend.population_mean)


def test_cdnow_master_zero_value_repeat_buyer_does_not_break_gamma_gamma():
    # lifetimes' GammaGammaFitter raises on monetary_value <= 0; the full CDNOW log has one
    path = files("lifetimes") / "datasets" / "CDNOW_master.txt"
    tx = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    tx["ts"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    summary = btyd.summary_from_transactions(tx, CDNOW_END, "customer_id", "ts", "dollar_value")
    repeat = int((summary["frequency"] > 0).sum())
    spend = btyd.fit_gamma_gamma(summary)
    assert not spend.fallback and spend.n_fitted == repeat - 1
    assert "1 repeat buyer(s) with monetary_value <= 0" in spend.notes[0]
    assert np.isfinite(spend.expected_spend(summary)).all()


def test_plain_fit_failure_is_recorded_and_a_penalized_fit_gives_finite_forecasts():
    # 30 customers bought on 6 days each, the last on the observation end; 30 bought once:
    # BG/NBD's unpenalized likelihood has no interior optimum here (lifetimes: ConvergenceError).
    summary = _summary([(5, 100.0, 100.0, 20.0)] * 30 + [(0, 0.0, 100.0, 0.0)] * 30)
    fit = btyd.fit_btyd(summary, "bgnbd")
    assert fit.attempts[0]["penalizer"] == 0.0 and not fit.attempts[0]["ok"]
    assert "ConvergenceError" in fit.attempts[0]["reason"] and "scipy: " in fit.attempts[0]["reason"]
    assert fit.converged and not fit.fallback and fit.penalizer > 0
    assert fit.penalizer == next(a["penalizer"] for a in fit.attempts if a["ok"])
    out = btyd.predict(fit, btyd.fit_gamma_gamma(summary), summary, 30)
    _assert_valid_forecast(out, summary)
    assert (out["model"] == "bgnbd").all()
    assert out["expected_purchases"].iloc[0] > out["expected_purchases"].iloc[-1]


def test_when_every_penalizer_fails_the_flagged_historical_rate_model_is_used(cdnow):
    fit = btyd.fit_btyd(cdnow, "bgnbd", fit_options={"maxiter": 1})  # force every fit to fail
    assert not fit.converged and fit.fallback and fit.fitter is None and fit.penalizer is None
    assert [a["ok"] for a in fit.attempts] == [False] * len(btyd.DEFAULT_PENALIZERS)
    assert "using the historical_rate model" in fit.notes[-1]
    out = btyd.predict(fit, btyd.fit_gamma_gamma(cdnow), cdnow, 90)
    _assert_valid_forecast(out, cdnow)
    assert (out["model"] == btyd.FALLBACK).all() and (out["p_alive"] == 1.0).all()
    assert not out.attrs and not out["predicted_value"].attrs


def test_historical_rate_model_shrinks_each_rate_towards_the_population_rate():
    summary = _summary([(0, 0.0, 10.0, 0.0), (2, 5.0, 20.0, 4.0), (4, 25.0, 30.0, 6.0)])
    fit = btyd.fit_btyd(summary)  # 3 customers: below MIN_CUSTOMERS, so not fitted
    assert fit.fallback and "min_customers" in fit.notes[0]
    # population rate 6 / 60 = 0.1 per day, prior weight mean T = 20 days:
    # rate_i = (f_i + 0.1 * 20) / (T_i + 20) = 2/30, 4/40, 6/50; over 10 days x10.
    assert fit.params == pytest.approx({"rate_per_day": 0.1, "prior_days": 20.0})
    out = btyd.predict(fit, btyd.fit_gamma_gamma(summary), summary, 10)
    np.testing.assert_allclose(out["expected_purchases"], [20 / 30, 1.0, 1.2])


@pytest.mark.parametrize("rows, note", [
    ([(0, 0.0, float(t), 0.0) for t in range(10, 60)], "no repeat purchases"),
    ([(2, 10.0, 30.0, 12.5)], "min_customers"),
    ([(0, 0.0, 0.0, 0.0)] * 25, "no repeat purchases"),  # all first bought on D
    ([], "min_customers"),
])
@pytest.mark.parametrize("model", sorted(btyd.COUNT_MODELS))
def test_degenerate_summaries_give_finite_forecasts_and_a_note(rows, note, model):
    summary = _summary(rows)
    fit, spend = btyd.fit_btyd(summary, model), btyd.fit_gamma_gamma(summary)
    assert fit.fallback and any(note in n for n in fit.notes)
    assert spend.fallback and spend.notes
    out = btyd.predict(fit, spend, summary, 365)
    _assert_valid_forecast(out, summary)
    assert len(out) == len(rows)
    if not any(r[0] for r in rows):
        assert (out["expected_purchases"] == 0).all()


def test_too_few_repeat_buyers_fall_back_to_mean_positive_order_value():
    summary = _summary([(1, 3.0, 40.0, 20.0), (0, 0.0, 40.0, 0.0), (0, 0.0, 50.0, 0.0)])
    summary["mean_order_value"] = [15.0, 30.0, 0.0]  # zero-value order left out of the mean
    spend = btyd.fit_gamma_gamma(summary)
    assert spend.fallback and spend.params == {}
    assert spend.population_mean == pytest.approx(22.5)
    assert "mean of positive mean_order_value" in spend.notes[-1]
    np.testing.assert_allclose(spend.expected_spend(summary), 22.5)


def test_segment_by_fits_each_segment_when_all_are_large_enough(cdnow):
    summary = cdnow.assign(half=np.where(cdnow["user_id"].astype(int) % 2 == 0, "even", "odd"))
    fit = btyd.fit_btyd(summary, "bgnbd", segment_by="half", min_segment_customers=500)
    assert set(fit.segments) == {"even", "odd"} and fit.converged
    assert fit.segments["even"].params != fit.segments["odd"].params
    out = btyd.predict(fit, btyd.fit_gamma_gamma(summary), summary, 90)
    _assert_valid_forecast(out, summary)
    odd = (summary["half"] == "odd").to_numpy()
    f, r, t = (summary.loc[odd, c].to_numpy(float) for c in ("frequency", "recency", "T"))
    expected = fit.segments["odd"].fitter.conditional_expected_number_of_purchases_up_to_time(90, f, r, t)
    np.testing.assert_allclose(out.loc[odd, "expected_purchases"], expected, rtol=1e-12)


def test_segment_by_pools_when_a_segment_is_too_small(cdnow):
    summary = cdnow.assign(seg=np.where(np.arange(len(cdnow)) < 100, "tiny", "big"))
    fit = btyd.fit_btyd(summary, "bgnbd", segment_by="seg", min_segment_customers=500)
    assert not fit.segments and fit.converged
    assert "pooled fit" in fit.notes[0] and "'tiny': 100" in fit.notes[0]
    assert fit.params == pytest.approx(PUBLISHED["bgnbd"], rel=2e-3)


@pytest.mark.parametrize("change, rule", [
    ({"recency": 300.0}, "recency > T"),
    ({"frequency": 1.5}, "integer"),
    ({"T": np.nan}, "non-finite"),
])
def test_inconsistent_summary_is_rejected_naming_the_rule(cdnow, change, rule):
    bad = cdnow.astype({"frequency": float})
    for col, value in change.items():
        bad.loc[bad.index[0], col] = value
    with pytest.raises(ValueError, match=rule) as exc:
        btyd.fit_btyd(bad)
    assert str(bad["user_id"].iloc[0]) in str(exc.value)


def test_unknown_model_and_negative_horizon_are_rejected(cdnow):
    with pytest.raises(ValueError, match="unknown BTYD model 'bgbd'"):
        btyd.fit_btyd(cdnow, "bgbd")
    fit = btyd.fit_btyd(cdnow.head(5))
    with pytest.raises(ValueError, match="horizon_days"):
        btyd.predict(fit, btyd.fit_gamma_gamma(cdnow.head(5)), cdnow.head(5), -1)


def test_fits_pickle_and_forecast_identically_after_loading():
    import pickle

    from lifetimes.datasets import load_cdnow_summary

    summary = load_cdnow_summary(index_col=[0]).reset_index().rename(columns={"ID": "user_id"})
    summary["monetary_value"] = 10.0 + summary["frequency"]
    for model in ("bgnbd", "pareto", "mbgnbd"):
        fit = btyd.fit_btyd(summary, model=model)
        spend = btyd.fit_gamma_gamma(summary)
        before = btyd.predict(fit, spend, summary, 30)
        fit2, spend2 = pickle.loads(pickle.dumps((fit, spend)))
        after = btyd.predict(fit2, spend2, summary, 30)
        pd.testing.assert_frame_equal(before, after)
        assert fit2.params == fit.params and fit2.fitter is not None


@pytest.mark.parametrize("params", [(0.55, 0.74, 0.61, 0.82), (0.3, 2.0, 1.5, 0.4),
                                    (2.0, 0.5, 0.2, 3.0), (1.0, 1.0, 1.0, 1.0)])
def test_fast_pareto_likelihood_equals_lifetimes(cdnow, params):
    from ltv_pipeline.lib.btyd_pareto import ParetoNBDFast

    rows = cdnow.groupby(["frequency", "recency", "T"], as_index=False).size()
    args = (rows["frequency"].to_numpy().astype(int), rows["recency"].to_numpy() / 50.0,
            rows["T"].to_numpy() / 50.0, rows["size"].to_numpy(), 0.01)
    with np.errstate(all="ignore"):
        expected = ParetoNBDFitter._negative_log_likelihood(np.array(params), *args)
        got = ParetoNBDFast._negative_log_likelihood(np.array(params), *args)
    assert np.isfinite(expected) and got == pytest.approx(expected, rel=1e-12)


def test_a_fit_on_the_same_rows_is_reused_and_other_rows_refit(cdnow, monkeypatch):
    first = btyd.fit_btyd(cdnow, "bgnbd")
    calls = []
    real = btyd._fit_count
    monkeypatch.setattr(btyd, "_fit_count", lambda *a: calls.append(a) or real(*a))
    again = btyd.fit_btyd(cdnow.sample(frac=1.0, random_state=1), "bgnbd")  # same rows, new order
    assert calls == [] and again.params == first.params and again is not first
    again.notes.append("changed by a caller")
    assert "changed by a caller" not in btyd.fit_btyd(cdnow, "bgnbd").notes
    older = cdnow.assign(T=cdnow["T"] + 7)  # one week later: other patterns, a new fit
    moved = btyd.fit_btyd(older, "bgnbd")
    assert len(calls) == 1 and moved.params != first.params


def test_summary_before_every_transaction_is_empty_with_its_columns():
    tx = pd.DataFrame({"user_id": ["a", "b"], "ts": pd.to_datetime(["2024-02-01", "2024-02-03"]),
                       "amount": [1.0, 2.0]})
    out = btyd.summary_from_transactions(tx, "2024-01-31", order_value=True)
    assert out.empty
    assert list(out.columns) == ["user_id", "frequency", "recency", "T", "monetary_value",
                                 "mean_order_value"]
    one = btyd.summary_from_transactions(tx, "2024-02-01")
    assert one.to_dict("records") == [{"user_id": "a", "frequency": 0, "recency": 0.0, "T": 0.0,
                                       "monetary_value": 0.0}]


def test_pareto_starts_from_bgnbd_and_reaches_lifetimes_optimum(cdnow):
    """The Pareto/NBD search starts at BG/NBD's (r, alpha) (btyd._pareto_start), not at
    lifetimes' all-ones start; both reach the same maximum of the likelihood."""
    rows = cdnow.groupby(["frequency", "recency", "T"], as_index=False).size().rename(
        columns={"size": "w"})
    start = btyd._pareto_start(rows, 0.0, rows["T"].to_numpy(float))
    bg = btyd.fit_btyd(cdnow, "bgnbd").params
    assert start[0] == pytest.approx(bg["r"]) and start[2] == 1.0 and start[1] == start[3]
    ours = btyd._fit_count("pareto", rows, 0.0, {})
    ones = btyd._fit_count("pareto", rows, 0.0, {"initial_params": np.ones(4)})
    np.testing.assert_allclose(ours.params_.to_numpy(), ones.params_.to_numpy(), rtol=2e-3)


def test_pareto_start_reuses_the_bgnbd_fit_of_the_same_rows(cdnow, monkeypatch):
    rows = cdnow.groupby(["frequency", "recency", "T"], as_index=False).size().rename(
        columns={"size": "w"})
    fresh = btyd._pareto_start(rows, 0.0, rows["T"].to_numpy(float))
    assert btyd.fit_btyd(cdnow, "bgnbd").penalizer == 0.0
    fits = []
    real = btyd._fit_count
    monkeypatch.setattr(btyd, "_fit_count", lambda *a: fits.append(a[0]) or real(*a))
    np.testing.assert_array_equal(btyd._pareto_start(rows, 0.0, rows["T"].to_numpy(float)), fresh)
    assert fits == []


def test_spend_posterior_conditions_on_every_purchase_day_with_the_repeat_day_fit(cdnow_tx):
    summary = btyd.summary_from_transactions(cdnow_tx, CDNOW_END, "customer_id", "ts", "dollar_value",
                                             order_value=True)
    spend = btyd.fit_gamma_gamma(summary)
    # the fit is lifetimes' (repeat days): the summary's extra column does not move it
    assert spend.params == btyd.fit_gamma_gamma(summary.drop(columns="mean_order_value")).params
    f, m = summary["frequency"].to_numpy(float), summary["mean_order_value"].to_numpy(float)
    ours = spend.expected_spend(summary)
    pos = m > 0  # zero-value orders only: nothing to condition on, the population mean
    np.testing.assert_allclose(ours[pos], spend.fitter.conditional_expected_average_profit(f[pos] + 1, m[pos]),
                               rtol=1e-12)
    np.testing.assert_allclose(ours[~pos], spend.population_mean)
    # one-time buyers are no longer all at the population mean: their first order moves them
    once = f == 0
    big, small = once & (m > 2 * spend.population_mean), once & pos & (m < 0.5 * spend.population_mean)
    assert big.any() and small.any()
    assert (ours[big] > spend.population_mean).all() and (ours[small] < spend.population_mean).all()
    # without the column: lifetimes' convention (repeat days, the population mean for one-timers)
    plain = spend.expected_spend(summary.drop(columns="mean_order_value"))
    np.testing.assert_allclose(plain[once], spend.population_mean)


def test_pareto_search_stays_where_alpha_and_beta_are_within_the_ratio_bound(cdnow):
    from ltv_pipeline.lib.btyd_pareto import MAX_SCALE_RATIO, ParetoNBDFast

    rows = cdnow.groupby(["frequency", "recency", "T"], as_index=False).size()
    args = (rows["frequency"].to_numpy().astype(int), rows["recency"].to_numpy() / 50.0,
            rows["T"].to_numpy() / 50.0, rows["size"].to_numpy(), 0.0)
    inside = ParetoNBDFast._negative_log_likelihood(np.array([0.5, 1.0, 0.5, MAX_SCALE_RATIO * 0.99]), *args)
    outside = ParetoNBDFast._negative_log_likelihood(np.array([0.5, 1.0, 0.5, MAX_SCALE_RATIO * 1.01]), *args)
    assert np.isfinite(inside) and outside == np.inf


@pytest.mark.parametrize("cutoff", ["2024-06-29", "2024-09-27"])
def test_pareto_fits_regular_buyers_without_a_penalizer(cutoff):
    """Regular buyers (gamma-renewal gaps, bench/renewal_log.py) put Pareto/NBD's maximum at
    the no-dropout limit (s -> 0, beta running off along a flat ridge). At 2024-09-27,
    unbounded, the search ended where lifetimes' forecasts overflow for 1.4% of customers and
    fell through to penalizer 0.001 after 90-104 s (btyd_pareto.MAX_SCALE_RATIO); at 2024-06-29
    every restart moved beta at the same likelihood, which failed the old settle check
    (btyd.PARETO_SETTLED_NLL)."""
    from bench import renewal_log

    tx = renewal_log.simulate(101, 5000, k=3.0, rho=0.0)
    cut = pd.Timestamp(cutoff)
    summary = btyd.summary_from_transactions(tx[tx["ts"] < cut + pd.Timedelta(days=1)], cut)
    fit = btyd.fit_btyd(summary, "pareto")
    assert fit.converged and fit.penalizer == 0.0, fit.attempts
    assert [a["ok"] for a in fit.attempts] == [True]
    out = btyd.predict(fit, btyd.fit_gamma_gamma(summary), summary, 90)
    assert np.isfinite(out["expected_purchases"]).all()


def test_a_fit_whose_forecasts_overflow_for_a_few_customers_at_every_penalizer_is_kept(monkeypatch):
    """Synthetic seed 47 at 2025-09-17: lifetimes' Pareto/NBD forecasts overflow for 3
    patterns (0.1% of customers) at every penalizer; before, the whole model fell back to the
    historical rate. Now the lowest penalizer within MAX_NONFINITE_SHARE_LAST is kept and only
    those customers get the historical-rate forecast."""
    from ltv_pipeline.lib.generator import generate

    tx = generate(n_users=5000, seed=47)["transactions"]
    tx = tx[~tx["is_refund"].astype(bool)]
    cut = pd.Timestamp("2025-09-17")
    summary = btyd.summary_from_transactions(tx[tx["ts"] < cut + pd.Timedelta(days=1)], cut)
    fit_count, pareto_fits = btyd._fit_count, []
    def counting(model, *args, **kwargs):
        pareto_fits.extend([model] if model == "pareto" else [])
        return fit_count(model, *args, **kwargs)
    monkeypatch.setattr(btyd, "_fit_count", counting)
    monkeypatch.setattr(btyd, "_FITS", {})  # no fit from an earlier test
    fit = btyd.fit_btyd(summary, "pareto")
    strict = [a for a in fit.attempts if "max_nonfinite_share" not in a]
    assert [a["ok"] for a in strict] == [False] * len(btyd.DEFAULT_PENALIZERS)
    assert all(btyd.NONFINITE in a["reason"] for a in strict)
    assert fit.converged and not fit.fallback and fit.penalizer == 0.0
    assert any("non-finite forecasts for more than" in n for n in fit.notes)
    assert len(pareto_fits) == len(btyd.DEFAULT_PENALIZERS)  # the kept fit is not made again
    out = btyd.predict(fit, btyd.fit_gamma_gamma(summary), summary, 90)
    fallback = out["model"] == btyd.FALLBACK
    assert 0 < fallback.sum() <= 0.01 * len(out) and (out.loc[~fallback, "model"] == "pareto").all()
    assert np.isfinite(out["predicted_value"]).all()
