"""drift_sensor on a real ephemeral Dagster instance: one retrain request per drift event, none
on the next tick, none during the cool-down, and the retraining job passes the promotion gate."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest

from ltv_pipeline import settings

DRIFTED = {"monetary_mean": {"psi": 0.9}, "orders_90d": {"psi": 0.6}, "revenue_90d": {"psi": 0.3}}
STABLE = {"monetary_mean": {"psi": 0.01}, "orders_90d": {"psi": 0.02}, "revenue_90d": {"psi": 0.02}}


def figures(day: str, features: dict) -> dict:
    return {"as_of": day, "reference_date": "2025-02-10", "horizon_days": 90, "features": features,
            "predictions": {"available": False, "reference_date": "2025-02-10", "note": "-"},
            "realised_error": {"available": False, "forecast_date": "2025-03-17", "note": "-"},
            "volume": {"window_days": 28, "recent_rows_per_day": 60.0,
                       "reference_rows_per_day": 70.0, "ratio": 60 / 70},
            "freshness": {"last_transaction_date": day, "lag_days": 0}}


def report(instance: dg.DagsterInstance, day: str, features: dict) -> None:
    """A monitoring materialization as the asset records it (figures in its metadata)."""
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="monitoring", partition=day,
        metadata={"figures": dg.MetadataValue.json(figures(day, features))}))


@pytest.fixture
def defs(ltv_home):
    from ltv_pipeline.definitions import defs

    return defs


def tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("drift_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return sensor.evaluate_tick(context)


def test_drift_sensor_requests_exactly_one_retrain_for_a_drift_event_and_none_on_the_next_tick(defs):
    with dg.DagsterInstance.ephemeral() as instance:
        assert tick(defs, instance).skip_message.startswith("no monitoring result yet")
        report(instance, "2025-06-15", DRIFTED)
        first = tick(defs, instance)
        [request] = first.run_requests
        assert request.run_key == "retrain-2025-06-15"
        assert request.job_name in (None, "retrain_job")
        assert request.run_config == {"ops": {"ltv_dbt_models": {"config": {
            "as_of": "2025-06-15", "horizon_days": 90}}}}
        assert "3 feature(s) drifted" in request.tags["ltv/reasons"]
        second = tick(defs, instance, first.cursor)
        assert second.run_requests == []
        assert second.skip_message == "no new monitoring result since 2025-06-15"


def test_drift_sensor_requests_nothing_on_stable_figures(defs):
    with dg.DagsterInstance.ephemeral() as instance:
        report(instance, "2025-02-14", STABLE)
        data = tick(defs, instance)
        assert data.run_requests == [] and data.skip_message == "monitoring 2025-02-14: no retrain"


def test_drift_sensor_cool_down_holds_a_second_drift_event_until_it_has_passed(defs):
    with dg.DagsterInstance.ephemeral() as instance:
        report(instance, "2025-06-15", DRIFTED)
        first = tick(defs, instance)
        assert len(first.run_requests) == 1
        report(instance, "2025-06-16", DRIFTED)  # the next day drifts too
        held = tick(defs, instance, first.cursor)
        assert held.run_requests == [] and "cool-down" in held.skip_message
        # the same event once the cool-down has passed: the cursor's request is old enough
        cursor = json.loads(first.cursor)
        cursor["requested_at"] = time.time() - 3600 * (settings.DRIFT_RETRAIN_COOLDOWN_HOURS + 1)
        later = tick(defs, instance, json.dumps(cursor))
        [request] = later.run_requests
        assert request.run_key == "retrain-2025-06-16"


def test_drift_sensor_cool_down_counts_a_retrain_run_started_elsewhere(defs):
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_run(dg.DagsterRun(job_name="retrain_job", run_id="manual-retrain"))
        report(instance, "2025-06-15", DRIFTED)
        data = tick(defs, instance)
        assert data.run_requests == [] and "manual-retrain" in data.skip_message


def test_retrain_job_is_the_training_graph_through_the_promotion_gate_without_loads(defs):
    job = defs.resolve_job_def("retrain_job")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"customer_features", "feast_registry", "btyd_models", "gbm_models", "backtest",
            "champion"} <= keys
    assert not keys & {"raw_transactions", "monitoring", "ltv_scores", "online_features"}
    checks = {c.name for c in job.asset_layer.asset_graph.asset_check_keys
              if c.asset_key.to_user_string() in keys}
    assert any("leakage" in name for name in checks)
