"""rfm_stack, its day-table backtest fallback and the model-age cadence (small synthetic logs)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import backtest, backtest_days, btyd, cadence, generator, stack

AS_OF, H = date(2025, 6, 30), 60


@pytest.fixture(scope="module")
def days() -> pd.DataFrame:
    t = generator.generate(n_users=600, seed=11)["transactions"]
    t = t[~t["is_refund"]]
    d = (t.assign(activity_date=t["ts"].dt.floor("D"))
         .groupby(["user_id", "activity_date"], as_index=False)["amount"].sum()
         .rename(columns={"amount": "revenue"}))
    return d.assign(is_purchase_day=True)


@pytest.fixture(scope="module")
def model(days) -> stack.RFMStack:
    return stack.train_stack(days, AS_OF, H)


def test_summary_at_matches_lifetimes_definitions(days):
    cutoff = date(2024, 12, 31)
    got = stack.summary_at(days, cutoff).set_index("user_id")
    tx = days.rename(columns={"activity_date": "ts", "revenue": "amount"})
    want = btyd.summary_from_transactions(tx, cutoff).set_index("user_id")
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)


def test_planted_future_row_changes_nothing(days, model):
    planted = pd.DataFrame({"user_id": [days["user_id"].iloc[0]] * 2, "is_purchase_day": True,
                            "activity_date": pd.to_datetime([AS_OF + timedelta(days=1),
                                                             AS_OF + timedelta(days=40)]),
                            "revenue": [1e6, 1e6]})
    other = stack.train_stack(pd.concat([days, planted], ignore_index=True), AS_OF, H)
    summary = stack.summary_at(days, AS_OF)
    assert other.training_cutoffs == model.training_cutoffs
    np.testing.assert_allclose(other.predict(summary, H)["predicted_value"],
                               model.predict(summary, H)["predicted_value"])


def test_internal_label_windows_end_by_as_of(model):
    for c in model.training_cutoffs:
        assert date.fromisoformat(c) + timedelta(days=model.train_horizon_days) <= AS_OF


def test_short_history_trains_at_the_longest_horizon_that_fits_and_scales(days):
    start = days["activity_date"].min().date()
    cfg = stack.StackConfig(min_history_days=(AS_OF - start).days - 300)  # 300 days usable
    m = stack.train_stack(days, AS_OF, 500, cfg)
    assert m.train_horizon_days == 300 - 2 * 30 < 500
    summary = stack.summary_at(days, AS_OF)
    out = m.predict(summary, 500)
    short = m.predict(summary, m.train_horizon_days)
    assert (out["predicted_value"] >= short["predicted_value"] - 1e-9).all()
    assert (out["p10"] <= out["p90"]).all() and out["p90"].notna().all()


def test_too_short_history_is_refused_with_a_reason(days):
    start = days["activity_date"].min().date()
    with pytest.raises(stack.StackUnavailable, match="cannot hold"):
        stack.train_stack(days, start + timedelta(days=60), 90)


def test_value_map_keeps_total_and_prefers_sharper_forecasts_when_they_cut_mae():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.9, 5000)
    actual = np.where(rng.uniform(size=p.size) < p, 50.0, 0.0)
    gamma, level, k, _ = stack.fit_value_map(actual, p * 50)
    assert gamma > 1 and level == 1.0
    np.testing.assert_allclose((k * (p * 50) ** gamma).sum(), (p * 50).sum())


def test_value_map_level_is_anchored_and_shrinks_only_inside_the_guard_rail():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.9, 5000)
    actual = np.where(rng.uniform(size=p.size) < p, 50.0, 0.0)
    score, anchor = p * 80, p * 50  # the booster runs high; the anchor is calibrated
    gamma, level, k, _ = stack.fit_value_map(actual, score, anchor, stack.LEVELS)
    assert level == min(stack.LEVELS)  # MAE prefers shrinking, 0.85 x 1.0 is inside the rail
    np.testing.assert_allclose((k * score ** gamma).sum(), level * anchor.sum())
    # an anchor that already runs at 0.82 x realised over the internal cutoffs: shrinking it
    # would leave the guard rail [0.8, 1.25], so the largest level is kept
    _, level, _, _ = stack.fit_value_map(actual, score, anchor, stack.LEVELS, anchor_ratio=0.82)
    assert level == max(stack.LEVELS)


def test_fallback_plan_is_the_longest_horizon_with_three_origins():
    h, origins = backtest_days.fallback_plan(date(1997, 9, 30), 273, date(1997, 1, 1))
    assert h == 272 - backtest_days.MIN_ORIGIN_HISTORY_DAYS - 60
    assert origins[-1] == date(1997, 9, 30) - timedelta(days=h)
    assert [(b - a).days for a, b in zip(origins, origins[1:])] == [30, 30]
    assert backtest_days.fallback_plan(date(1997, 3, 1), 273, date(1997, 1, 1)) == (0, [])


def test_backtest_on_fallback_origins_has_rfm_stack_with_coverage_and_model_age(days):
    h, origins = backtest_days.fallback_plan(AS_OF, H, days["activity_date"].min().date())
    data = backtest_days.origin_data(days, origins, h, AS_OF)
    result = backtest.run_backtest(data, backtest.BacktestConfig(h))
    board = result.pivot().set_index("model")
    assert board.loc[stack.NAME, "n_origins"] == 3
    assert 0 <= board.loc[stack.NAME, "p10_p90_coverage"] <= 1
    ages = cadence.age_table(result.models, result.scored, h)
    assert set(ages["age_days"]) == {0, 30, 60}
    fresh = ages[ages["age_days"] == 0]
    np.testing.assert_allclose(fresh["mae"], fresh["fresh_mae"])
    assert cadence.recommend(ages)["cadence_days"] in (30, 60)


def test_cadence_rule_picks_largest_age_within_tolerance():
    rows = [("m", "a", "b", age, mae, gini, 10.0, 0.7) for age, mae, gini in
            ((0, 10.0, 0.7), (30, 10.1, 0.695), (60, 10.5, 0.69), (90, 11.0, 0.6))]
    table = pd.DataFrame(rows, columns=["model", "trained_at", "scored_at", "age_days", "mae",
                                        "gini", "fresh_mae", "fresh_gini"])
    assert cadence.recommend(table)["cadence_days"] == 30
    worse = table.assign(mae=table["mae"] * 1.5)
    assert cadence.recommend(worse)["cadence_days"] == 30
    assert "worse than a fresh one" in cadence.recommend(worse)["reason"]
    assert cadence.recommend(table.iloc[:1])["cadence_days"] is None


def test_scoring_with_the_marts_summary_uses_the_revenue_snapshot(days, model):
    summary = stack.summary_at(days, AS_OF)
    marts_like = summary.drop(columns="revenue_total").assign(cutoff_date=AS_OF)
    np.testing.assert_allclose(model.predict(marts_like, H)["predicted_value"],
                               model.predict(summary, H)["predicted_value"])
    with pytest.raises(ValueError, match="needs revenue_total"):
        model.predict(marts_like.assign(cutoff_date=AS_OF + timedelta(days=1)), H)


def test_bound_rows_keeps_the_newest_cutoff_whole_and_samples_older_ones(days):
    frame = stack.training_frame(stack.normalise_days(days), [AS_OF - timedelta(days=H + 30 * j)
                                                              for j in (2, 1, 0)], H)
    newest = frame["cutoff_date"] == frame["cutoff_date"].max()
    notes: list[str] = []
    budget = int((~newest).sum() * 0.6)
    kept = stack.bound_rows(frame, budget, 0, notes)
    assert (kept["cutoff_date"] == frame["cutoff_date"].max()).sum() == newest.sum()
    assert 0.8 * budget < len(kept) - newest.sum() <= 1.2 * budget and notes
    assert stack.bound_rows(frame, len(frame), 0, []) is frame


def test_train_users_bound_the_internal_rows_but_not_the_snapshot_at_as_of(days, model):
    everyone = stack.train_stack(days, AS_OF, H, train_users=pd.Index(days["user_id"].unique()))
    summary = stack.summary_at(days, AS_OF)
    np.testing.assert_array_equal(everyone.predict(summary, H)["predicted_value"],
                                  model.predict(summary, H)["predicted_value"])

    users = pd.Index(sorted(days["user_id"].unique())[::2])
    sampled = stack.train_stack(days, AS_OF, H, train_users=users)
    alone = stack.train_stack(days[days["user_id"].isin(users)], AS_OF, H)
    assert sampled.training_cutoffs == alone.training_cutoffs
    X = stack.features(summary, sampled.btyd_fits, sampled.train_horizon_days)
    # the trees learned from the sample's rows only: the same as on the sample alone (the
    # quantile members: always trained, where the booster may be dropped as noise)
    for name in ("quantile_p10", "quantile_p90"):
        np.testing.assert_array_equal(sampled.family[name].predict(X), alone.family[name].predict(X))
    assert not np.array_equal(sampled.family["quantile_p90"].predict(X), model.family["quantile_p90"].predict(X))
    # ... while the revenue snapshot (and the level k) cover every customer with history at as_of
    assert set(sampled.revenue_total) == set(summary["user_id"].astype(str))
    assert set(alone.revenue_total) < set(sampled.revenue_total)


def _boost_frame(signal: float | list[float], n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """FEATURES at four cutoffs (or one per signal in a list, oldest first); value ~ base x
    exp(signal x recency feature): with signal 0 the BTYD base is the whole truth, with signal
    > 0 recency carries what the base misses."""
    rng = np.random.default_rng(seed)
    signals = signal if isinstance(signal, list) else [signal] * 4
    parts = []
    for c, signal in zip(pd.date_range("2024-01-01", periods=len(signals), freq="30D"), signals):
        X = pd.DataFrame({f: rng.gamma(2.0, 1.0, n) for f in stack.FEATURES})
        mean = stack.base_value(X) * np.exp(signal * (X["recency"].to_numpy() - 2.0))
        X["value"] = rng.poisson(mean) * rng.gamma(4.0, 5.0, n)
        X["cutoff_date"] = c
        parts.append(X)
    return pd.concat(parts, ignore_index=True)


def test_booster_is_kept_only_when_it_ranks_a_later_cutoff_better_than_the_base():
    notes: list[str] = []
    assert stack.fit_booster(_boost_frame(0.0), 0, notes).booster is None
    assert "no better than the BTYD base" in notes[-1] and "the base alone" in notes[-1]
    notes = []
    assert stack.fit_booster(_boost_frame(0.8), 0, notes).booster is not None
    assert any("better than the BTYD base" in n and "no better" not in n for n in notes)


def test_a_booster_gain_within_the_bootstrap_noise_is_not_enough(monkeypatch):
    frame = _boost_frame(0.1, seed=0)  # a weak signal: the trial booster gains a little
    notes: list[str] = []
    monkeypatch.setattr(stack, "BOOSTER_Z", 0.0)  # any gain at all: kept
    assert stack.booster_earns_its_place(frame, 0, notes)
    gain = float(notes[-1].split("gain ")[1].split(";")[0])
    assert gain > 0
    monkeypatch.setattr(stack, "BOOSTER_Z", 2.0)  # the gain must beat 2 standard errors: dropped
    assert not stack.booster_earns_its_place(frame, 0, notes)
    assert "beyond noise" in notes[-1] and "2 paired-bootstrap standard errors" in notes[-1]
    bar = float(notes[-1].split("standard errors = ")[1].split(")")[0])
    assert 0 < gain <= bar


def test_a_gain_the_cutoff_before_does_not_repeat_drops_the_booster():
    """The signal holds at every cutoff but the second newest: trained before the newest the
    boosters rank it far better than the base, but trained one cutoff earlier they rank the
    second newest worse, so the gain is one date's, not the log's: the base alone."""
    notes: list[str] = []
    assert not stack.booster_earns_its_place(_boost_frame([0.8, 0.8, 0.0, 0.8]), 0, notes)
    newest, second = notes
    assert "ranks 2024-03-31 better than the BTYD base" in newest
    assert "ranks 2024-03-01 no better than the BTYD base" in second and "the base alone" in second
    notes = []
    assert stack.booster_earns_its_place(_boost_frame([0.8, 0.8, 0.8, 0.8]), 0, notes)
    assert len(notes) == 2 and all("better than the BTYD base beyond noise" in n for n in notes)


def test_with_three_cutoffs_only_the_newest_is_checked():
    notes: list[str] = []
    assert stack.booster_earns_its_place(_boost_frame([0.8, 0.0, 0.8]), 0, notes)
    assert len(notes) == 1 and "ranks 2024-03-01 better than the BTYD base" in notes[0]


def test_booster_is_kept_untested_where_the_check_cutoff_has_no_value():
    frame = _boost_frame(0.8)
    newest = frame["cutoff_date"] == frame["cutoff_date"].max()
    frame.loc[newest, "value"] = 0.0
    notes: list[str] = []
    assert stack.booster_earns_its_place(frame, 0, notes)
    assert "normalized Gini undefined" in notes[-1] and "kept untested" in notes[-1]


def test_the_day_table_read_in_any_stored_order_trains_the_same_stack(days):
    """A rebuilt int_user_days_aggregated stores its rows in another order; read_days orders
    them, so float sums (revenue_total) and the boosters come out the same to the last bit."""
    import duckdb

    reads = []
    for seed in (1, 2):
        con = duckdb.connect()
        con.execute("create schema intermediate")
        shuffled = days.sample(frac=1.0, random_state=seed)[
            ["user_id", "activity_date", "revenue", "is_purchase_day"]]
        con.register("shuffled", shuffled)
        con.execute("create table intermediate.int_user_days_aggregated as select * from shuffled")
        reads.append(stack.read_days(con, AS_OF))
        con.close()
    pd.testing.assert_frame_equal(reads[0], reads[1])
    assert reads[0][["user_id", "activity_date"]].apply(tuple, axis=1).is_monotonic_increasing
    summary = stack.summary_at(reads[0], AS_OF)
    a, b = (stack.train_stack(r, AS_OF, H).predict(summary, H) for r in reads)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
