"""Rolling-origin backtest on a small synthetic log built in memory (no warehouse, no Feast)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import backtest, btyd, generator, training

H = 60
FEATURES = ["frequency", "recency", "T", "monetary_value", "revenue_total"]


@pytest.fixture(scope="module")
def tx() -> pd.DataFrame:
    t = generator.generate(n_users=800, seed=5)["transactions"]
    return t[~t["is_refund"]][["user_id", "ts", "amount"]]


def summary_at(tx: pd.DataFrame, cutoff: date) -> pd.DataFrame:
    s = btyd.summary_from_transactions(tx, cutoff)
    hist = tx[tx["ts"] < pd.Timestamp(cutoff + timedelta(days=1))]
    s["revenue_total"] = s["user_id"].map(hist.groupby("user_id")["amount"].sum()).to_numpy()
    return s.assign(cutoff_date=cutoff)


def labels_at(tx: pd.DataFrame, summary: pd.DataFrame, cutoff: date) -> pd.DataFrame:
    start = pd.Timestamp(cutoff + timedelta(days=1))
    win = tx[(tx["ts"] >= start) & (tx["ts"] < start + pd.Timedelta(days=H))]
    value = summary["user_id"].map(win.groupby("user_id")["amount"].sum()).fillna(0.0)
    return pd.DataFrame({"user_id": summary["user_id"], "cutoff_date": cutoff, "value": value})


def frame(tx: pd.DataFrame, cutoffs: list[date], with_labels: bool) -> pd.DataFrame:
    sums = pd.concat([summary_at(tx, c) for c in cutoffs], ignore_index=True)
    feats = sums[["user_id", "cutoff_date", *FEATURES]]
    labels = pd.concat([labels_at(tx, summary_at(tx, c), c) for c in cutoffs]) if with_labels else None
    return training.model_frame(feats, training.btyd_features(sums, H), labels)


def origin_data(tx: pd.DataFrame, origin: date, train_frame: pd.DataFrame | None) -> backtest.OriginData:
    s = summary_at(tx, origin)
    return backtest.OriginData(origin, s, labels_at(tx, s, origin), train_frame,
                               frame(tx, [origin], with_labels=False) if train_frame is not None else None)


ORIGINS = [date(2025, 3, 31), date(2025, 5, 30), date(2025, 7, 29)]
TRAIN = [date(2024, 10, 2), date(2024, 12, 1), date(2025, 1, 30), date(2025, 3, 31), date(2025, 5, 30)]
CFG = backtest.BacktestConfig(horizon_days=H, features=FEATURES, max_train_cutoffs=3)


@pytest.fixture(scope="module")
def train_frame(tx) -> pd.DataFrame:
    return frame(tx, TRAIN, with_labels=True)


@pytest.fixture(scope="module")
def result(tx, train_frame) -> backtest.BacktestResult:
    return backtest.run_backtest([origin_data(tx, o, train_frame) for o in ORIGINS], CFG)


def test_every_candidate_and_metric_is_in_the_tidy_table(result):
    table = result.metrics
    assert list(table.columns) == ["model", "origin", "metric", "value"]
    last = set(result.models_at(ORIGINS[-1].isoformat()))
    assert {"bgnbd_gg", "pareto_gg", "mbgnbd_gg", "historical_rate", "gbm_tweedie", "gbm_two_part",
            "gbm_hybrid", "blend"} <= last
    gbm_metrics = set(table.loc[table["model"] == "gbm_tweedie", "metric"])
    assert {"mae", "rmse", "wape", "gini", "spearman", "top_decile_share",
            "decile_calibration_error", "total_ratio", "p10_p90_coverage"} <= gbm_metrics
    assert "p10_p90_coverage" not in set(table.loc[table["model"] == "bgnbd_gg", "metric"])
    assert np.isfinite(table["value"]).all()
    wide = result.pivot().set_index("model")
    assert wide.loc["bgnbd_gg", "n_origins"] == 3
    assert wide.loc["gbm_tweedie", "gini"] > 0.2  # learns a real ranking on this log
    # no origin's columns carry attrs (the fitted models, if they did, would be deep-copied by
    # every pandas operation on them: the value maps' clip() took minutes at 1M customers)
    assert all(not p[c].attrs for p in result.predictions.values() for c in p.columns)
    assert set(result.models) == set(result.scored) == set(result.predictions)


def test_every_origin_has_paired_gini_replicates_of_every_candidate(result):
    for origin in ORIGINS:
        tag = origin.isoformat()
        reps = result.gini_bootstrap[tag]
        assert set(reps) == set(result.models_at(tag))
        assert {len(v) for v in reps.values()} == {50}
        point = result.metrics.query("origin == @tag and metric == 'gini'").set_index("model")["value"]
        for model, values in reps.items():
            values = np.asarray(values, dtype=float)
            assert abs(values.mean() - point[model]) < 4 * values.std() + 1e-9


def test_every_origin_has_total_ratio_replicates_around_its_total_ratio(result):
    for origin in ORIGINS:
        tag = origin.isoformat()
        reps = result.ratio_bootstrap[tag]
        assert set(reps) == set(result.models_at(tag))
        point = result.metrics.query("origin == @tag and metric == 'total_ratio'").set_index("model")["value"]
        for model, values in reps.items():
            values = np.asarray(values, dtype=float)
            assert len(values) == 50 and values.std() > 0
            assert abs(values.mean() - point[model]) < 4 * values.std()


def test_first_origin_has_no_blend_and_later_blends_use_earlier_origins_only(result):
    assert "blend" not in result.models_at(ORIGINS[0].isoformat())
    assert ORIGINS[0].isoformat() not in result.blend_weights
    assert all(w >= 0 for ws in result.blend_weights.values() for w in ws.values())


def test_first_origin_without_two_training_cutoffs_skips_supervised_with_a_note(tx, train_frame):
    early = date(2024, 12, 15)  # only 2024-10-02 ends its label window by then
    res = backtest.run_backtest([origin_data(tx, early, train_frame)], CFG)
    assert "gbm_tweedie" not in res.models_at(early.isoformat())
    assert "bgnbd_gg" in res.models_at(early.isoformat())
    assert any("LightGBM candidates absent" in n for n in res.notes)


def test_an_origin_with_nothing_to_rank_is_skipped_with_a_note(tx):
    """No value in the label window (a log of one-time buyers) or a single customer: Gini and
    calibration are undefined, so the origin is no evidence; the next origin still counts."""
    quiet, busy = ORIGINS[0], ORIGINS[1]
    zero = origin_data(tx, quiet, None)
    zero = backtest.OriginData(quiet, zero.summary, zero.labels.assign(value=0.0))
    res = backtest.run_backtest([zero, origin_data(tx, busy, None)], CFG)
    assert res.models_at(quiet.isoformat()) == [] and "bgnbd_gg" in res.models_at(busy.isoformat())
    assert any(n.startswith(f"{quiet}: skipped:") and "0 with value" in n for n in res.notes)
    one = origin_data(tx, busy, None)
    first = one.summary[one.summary["frequency"] > 0].head(1)
    single = backtest.OriginData(busy, first, one.labels[one.labels["user_id"].isin(first["user_id"])])
    assert backtest.run_backtest([single], CFG).metrics.empty


def test_planted_future_rows_do_not_change_the_origin_predictions(tx, train_frame):
    origin = ORIGINS[1]
    planted = train_frame[pd.to_datetime(train_frame["cutoff_date"]).dt.date == TRAIN[-1]].copy()
    planted["cutoff_date"] = origin - timedelta(days=H - 1)  # label window ends after the origin
    planted["value"] = planted["value"] * 1000 + 5000
    poisoned = pd.concat([train_frame, planted], ignore_index=True)
    clean = backtest.origin_predictions(origin_data(tx, origin, train_frame), CFG)
    dirty = backtest.origin_predictions(origin_data(tx, origin, poisoned), CFG)
    pd.testing.assert_frame_equal(clean.pred, dirty.pred)
    # the fitted models travel beside the frame: none in its attrs, where pandas would deep-copy
    # them into every Series and result taken from it
    assert not clean.pred.attrs and not clean.pred["actual"].attrs
    assert {"bgnbd_gg", "pareto_gg"} <= set(clean.models) and len(clean.scored) == len(clean.pred)
    kept = backtest.training_rows(poisoned, origin, H, 3)
    assert all((origin - c).days >= H for c in pd.to_datetime(kept["cutoff_date"]).dt.date)


def test_historical_rate_is_revenue_per_day_of_tenure_times_horizon():
    s = pd.DataFrame({"T": [99.0, 0.0], "revenue_total": [200.0, 60.0]})
    np.testing.assert_allclose(backtest.historical_rate(s, 90), [180.0, 60.0 / 30 * 90])


def test_blend_fits_weights_on_earlier_rows_and_combines():
    rng = np.random.default_rng(0)
    a, b = rng.gamma(1, 10, 200), rng.gamma(1, 10, 200)
    stacked = pd.DataFrame({"a": a, "b": b, "actual": 0.7 * a + 0.2 * b})
    w = backtest.fit_blend(stacked, ["a", "b"])
    assert w == pytest.approx({"a": 0.7, "b": 0.2}, abs=1e-6)  # exact fit: the scale is 1
    np.testing.assert_allclose(backtest.Blend(w).combine({"a": a, "b": b}), stacked["actual"])


def test_diagnostics_tables(result):
    pred = result.predictions[ORIGINS[-1].isoformat()]
    assert len(backtest.decile_calibration(pred, "bgnbd_gg")) <= 10
    g = backtest.gains(pred, "bgnbd_gg")
    assert g["bgnbd_gg"].iloc[-1] == pytest.approx(1.0) and (g["perfect"] >= g["bgnbd_gg"] - 1e-9).all()
    age = backtest.error_by_age(pred, ["bgnbd_gg", "gbm_tweedie"])
    assert age["customers"].sum() == len(pred)


def test_blend_value_map_keeps_the_linear_total_and_old_blends_stay_linear():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.9, 4000)
    rows = pd.DataFrame({"a": p * 40, "b": p * 60, "actual": np.where(rng.uniform(size=p.size) < p, 50.0, 0.0)})
    w = backtest.fit_blend(rows, ["a", "b"])
    gamma, k = backtest.fit_blend_map(rows, w)
    mapped = backtest.blend_from({**w, "_gamma": gamma, "_k": k}).combine({"a": rows["a"], "b": rows["b"]})
    linear = backtest.Blend(w).combine({"a": rows["a"], "b": rows["b"]})
    assert gamma > 1 and np.isclose(mapped.sum(), linear.sum())
    assert np.mean(np.abs(mapped - rows["actual"])) < np.mean(np.abs(linear - rows["actual"]))
    old = backtest.Blend.__new__(backtest.Blend)
    old.__dict__.update({"weights": w, "refs": {}})  # a version pickled before gamma/k existed
    np.testing.assert_allclose(old.combine({"a": rows["a"], "b": rows["b"]}), linear)


def test_bounded_train_keys_unite_each_origins_own_bound_and_never_add_later_cutoffs():
    from datetime import date as d

    from ltv_pipeline.defs.evaluation.inputs import bounded_train_keys
    from ltv_pipeline.lib import gbm_fit

    cuts = [d(2025, 1, 1), d(2025, 2, 1), d(2025, 3, 1), d(2025, 4, 1)]
    labels = pd.DataFrame([(f"u{i}", c) for c in cuts for i in range(1000)],
                          columns=["user_id", "cutoff_date"])
    early, late = (backtest.OriginData(o, pd.DataFrame(), pd.DataFrame())
                   for o in (d(2025, 5, 1), d(2025, 6, 1)))
    trains = {early.origin: tuple(cuts[:3]), late.origin: tuple(cuts)}
    kept = bounded_train_keys([early, late], trains, labels, cuts, 1500, 0)
    for o in (early, late):
        own, _ = gbm_fit.bound_keys(labels[labels["cutoff_date"].isin(trains[o.origin])], 1500, 0)
        assert set(own.index) <= set(kept.index)
    assert len(kept) < len(labels)
    only_early = bounded_train_keys([early], trains, labels, cuts[:3], 1500, 0)
    assert set(only_early["cutoff_date"]) <= set(cuts[:3])
    assert len(bounded_train_keys([early, late], trains, labels, cuts, 10**6, 0)) == len(labels)


def _origins_result(forecast_of, n_origins: int = 3, seed: int = 2) -> backtest.BacktestResult:
    """A BacktestResult whose predictions hold model "m" (forecast_of(p): the forecast for buy
    probabilities p) against zero-inflated actuals (50 with probability p, else 0)."""
    rng = np.random.default_rng(seed)
    preds = {}
    for i in range(n_origins):
        p = rng.uniform(0.01, 0.9, 3000)
        actual = np.where(rng.uniform(size=p.size) < p, 50.0, 0.0)
        preds[f"2025-0{i + 1}-01"] = pd.DataFrame({"T": rng.integers(0, 400, p.size), "actual": actual,
                                                   "m": forecast_of(p, actual),
                                                   "rfm_stack": 50 * p, "historical_rate": 50 * p})
    return backtest.BacktestResult(pd.DataFrame(), preds, [], {})


def test_a_value_map_that_lowers_the_mae_at_later_origins_is_kept_and_ranks_the_same():
    result = _origins_result(lambda p, actual: 50 * p)  # the mean: MAE-optimal lies below it
    maps, mapped = backtest.value_maps(result, ["m", "rfm_stack", "historical_rate"])
    assert set(mapped) == {"m"} and sorted(mapped["m"]) == ["2025-02-01", "2025-03-01"]
    assert set(maps) == {"m"}  # rfm_stack has its own map, the baseline is not a candidate
    vm = maps["m"]
    assert vm["kept"] and vm["mae_mapped"] < vm["mae"] and vm["fitted_at"] == "2025-03-01"
    assert [c["origin"] for c in vm["checks"]] == ["2025-02-01", "2025-03-01"]
    assert [c["fitted_at"] for c in vm["checks"]] == ["2025-01-01", "2025-02-01"]
    model = backtest.mapped("m", vm, "m/v3")
    assert model.refs == {"m": "m/v3"} and (vm["gamma"] > 1 or vm["level"] < 1)
    s = result.predictions["2025-03-01"]["m"].to_numpy()
    v = model.combine({"m": s})
    assert (np.argsort(v, kind="stable") == np.argsort(s, kind="stable")).all()
    assert np.allclose(v, vm["k"] * s ** vm["gamma"])


def test_mapped_metrics_score_each_later_origin_with_the_map_fitted_before_it():
    result = _origins_result(lambda p, actual: 50 * p)
    vm = backtest.value_map_of(result, "m")
    table = backtest.mapped_metrics(result, {"m": backtest.mapped_predictions(result, "m")})
    assert set(table["model"]) == {"mapped_m"}
    assert sorted(table["origin"].unique()) == ["2025-02-01", "2025-03-01"]  # none at the first
    mae = table[table["metric"] == "mae"].set_index("origin")["value"]
    assert [mae[c["origin"]] for c in vm["checks"]] == pytest.approx([c["mae_mapped"] for c in vm["checks"]])
    assert {"gini", "total_ratio", "decile_calibration_error"} <= set(table["metric"])


def test_diagnostics_plot_a_mapped_model_with_the_map_fitted_at_the_origin_before():
    from ltv_pipeline.defs.evaluation import inputs

    result = _origins_result(lambda p, actual: 50 * p)
    v = backtest.mapped_predictions(result, "m")["2025-03-01"]
    diag = inputs.diagnostics(result, {"m": v})
    assert diag["origin"] == "2025-03-01" and {"m", "mapped_m"} <= set(diag["models"])
    deciles = pd.DataFrame(diag["models"]["mapped_m"]["deciles"])
    assert deciles["mean_predicted"].mean() == pytest.approx(np.mean(v), rel=0.02)
    assert "mapped_m" not in inputs.diagnostics(result)["models"]


def test_a_value_map_that_does_not_lower_the_mae_is_not_kept():
    result = _origins_result(lambda p, actual: actual)  # a perfect forecast: nothing to gain
    vm = backtest.value_map_of(result, "m")
    assert not vm["kept"] and vm["mae_mapped"] >= vm["mae"] == 0.0


def test_a_value_map_that_is_the_identity_at_the_newest_origin_is_not_kept():
    result = _origins_result(lambda p, actual: 50 * p)
    newest = result.predictions["2025-03-01"]
    newest["m"] = newest["actual"]  # perfect there: the newest origin's map is the identity
    vm = backtest.value_map_of(result, "m")
    assert (vm["gamma"], vm["level"]) == (1.0, 1.0) and not vm["kept"]
    assert vm["checks"][0]["mae_mapped"] < vm["checks"][0]["mae"]  # the first check passed


def test_a_value_map_needs_two_origins():
    assert backtest.value_map_of(_origins_result(lambda p, actual: 50 * p, n_origins=1), "m") is None


def test_the_champion_is_registered_with_its_kept_value_map_and_the_gate_reads_its_member(tmp_path):
    from ltv_pipeline.defs.evaluation import inputs
    from ltv_pipeline.lib import champion
    from ltv_pipeline.lib.registry import ModelRegistry

    registry = ModelRegistry(tmp_path)
    day = date(2025, 6, 30)
    base = registry.register({"a": 1}, "btyd", "pareto_gg", {}, [day.isoformat()], None, "", {})
    table = pd.DataFrame({"model": ["pareto_gg"], "gini": [0.9], "mae": [10.0]})
    sel = champion.Selection("pareto_gg", "best", False, ["o"], table, {"gini": 0.9, "mae": 10.0})
    vm = {"gamma": 1.2, "level": 0.9, "k": 0.7, "fitted_at": "2025-03-01", "kept": True}
    v = inputs.champion_version(registry, sel, {"pareto_gg": base}, {"value_maps": {"pareto_gg": vm}}, day, 90)
    assert v.name == "mapped_pareto_gg" and v.manifest["params"]["gamma"] == 1.2
    model = v.load()
    assert model.refs == {"pareto_gg": base.ref}
    np.testing.assert_allclose(model.combine({"pareto_gg": np.array([0.0, 8.0])}), [0.0, 0.7 * 8 ** 1.2])
    unkept = {"value_maps": {"pareto_gg": {**vm, "kept": False}}}
    assert inputs.champion_version(registry, sel, {"pareto_gg": base}, unkept, day, 90) == base
    with pytest.raises(LookupError, match="no registered version"):
        inputs.champion_version(registry, sel, {}, unkept, day, 90)
    # fitted at a shorter backtest horizon: a BTYD champion's k is refitted on its forecasts at D
    shorter = {"value_maps": {"pareto_gg": {**vm, "horizon_days": 60}}}
    at_d = np.array([0.0, 1.0, 4.0, 9.0])
    w = inputs.champion_version(registry, sel, {"pareto_gg": base}, shorter, day, 90, lambda v: at_d)
    mapped = w.load().combine({"pareto_gg": at_d})
    assert w.name == "mapped_pareto_gg" and w.version == v.version + 1
    assert mapped.sum() == pytest.approx(0.9 * at_d.sum()) and w.manifest["params"]["horizon_days"] == 60
    gbm = champion.Selection("gbm_hybrid", "best", False, ["o"], table, {"gini": 0.9, "mae": 10.0})
    hyb = registry.register({"b": 1}, "gbm", "gbm_hybrid", {}, [day.isoformat()], None, "", {})
    other = {"value_maps": {"gbm_hybrid": {**vm, "horizon_days": 60}}}
    assert inputs.champion_version(registry, gbm, {"gbm_hybrid": hyb}, other, day, 90, lambda v: at_d) == hyb
    registry.set_champion(v.name, v.version, "test", {"gini": 0.5, "mae": 99.0})
    decision, current = inputs.gate(registry, sel, 0.02)  # measured on pareto_gg's backtest row
    assert current == v.ref and decision.promote and decision.numbers["mae"]["current"] == 10.0
