"""Training assets on a real small pipeline: synthetic log -> raw -> dbt -> Feast -> models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import generator, marts, warehouse
from ltv_pipeline.lib.registry import ModelRegistry


def run_pipeline(home: Path, source: Path, as_of: str, horizon_days: int):
    from ltv_pipeline.definitions import defs

    job = defs.resolve_job_def("full_pipeline_job")
    with dg.DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(
            run_config={"ops": {
                "raw_tables": {"config": {"source": str(source)}},
                "ltv_dbt_models": {"config": {"as_of": as_of, "horizon_days": horizon_days}},
            }},
            instance=instance, raise_on_error=False,
        )


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("log")
    generator.write(generator.generate(n_users=1500, seed=3), out)
    return out


@pytest.fixture(scope="module")
def home_env(tmp_path_factory) -> Iterator[callable]:
    """Point LTV_HOME at a fresh directory for the module, restoring the environment after."""
    saved = {k: os.environ.get(k) for k in ("LTV_HOME", "DAGSTER_HOME")}

    def use(name: str) -> Path:
        home = tmp_path_factory.mktemp(name)
        os.environ["LTV_HOME"] = str(home)
        os.environ.pop("DAGSTER_HOME", None)
        return home

    yield use
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def trained(source, home_env):
    home = home_env("trained")
    result = run_pipeline(home, source, "2025-06-30", 90)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return home, result


def meta(result, key: str) -> dict:
    [mat] = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(key)]
    return {k: v.value for k, v in mat.materialization.metadata.items()}


def test_btyd_models_are_registered_and_forecast_finite_values(trained):
    home, result = trained
    registry = ModelRegistry(home / "models")
    with warehouse.connect(home / "warehouse.duckdb", read_only=True) as con:
        plan = marts.read_plan(con)
        summary = marts.btyd_summary(con, [plan.scoring_date])
    assert plan.scoring_date.isoformat() == "2025-06-30"
    for name in ("bgnbd_gg", "pareto_gg", "mbgnbd_gg"):
        version = registry.version(name)
        assert version.manifest["family"] == "btyd"
        assert version.manifest["training_cutoffs"] == ["2025-06-30"]
        pred = registry.load(name).predict(summary, 90)
        assert len(pred) == len(summary) and np.isfinite(pred["predicted_value"]).all()
        assert (pred["predicted_value"] >= 0).all() and pred["predicted_value"].sum() > 0
    table = meta(result, "btyd_models")["parameters"]
    assert "bgnbd_gg" in table and "alpha" in table


def test_gbm_family_trains_on_feast_features_before_the_scoring_date(trained):
    home, result = trained
    m = meta(result, "gbm_models")
    assert m["trained"] is True and m["training_rows"] > 1000
    assert m["feature_importance"].startswith("![tweedie: top features by gain](data:image/png;base64,")
    registry = ModelRegistry(home / "models")
    members = {"tweedie", "l2", "l1", "two_part", "quantile_p10", "quantile_p90", "hybrid"}
    assert set(m["registered"]) == members
    tweedie = registry.version("gbm_tweedie")
    cutoffs = tweedie.manifest["training_cutoffs"]
    # every training label window [C + 1, C + 1 + 90) ends by the scoring date + 1 day
    assert cutoffs and all(
        (pd.Timestamp("2025-06-30") - pd.Timestamp(c)).days >= 90 for c in cutoffs
    )
    assert tweedie.manifest["feature_service"] == "ltv_model_v1"
    assert "btyd_value" in registry.load("gbm_hybrid").features
    assert "btyd_value" not in registry.load("gbm_tweedie").features


def test_cohort_forecast_reports_months_ahead(trained):
    _, result = trained
    m = meta(result, "cohort_forecast")
    assert m["months_ahead"] == 3 and m["cohorts"] > 1 and m["forecast_revenue"] > 0
    assert m["revenue_by_month"].startswith("![all cohorts: monthly revenue](data:image/png;base64,")


def test_short_history_skips_supervised_models_and_btyd_carries_on(source, home_env):
    home = home_env("short")
    result = run_pipeline(home, source, "2023-04-15", 90)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    m = meta(result, "gbm_models")
    assert m["trained"] is False and "history too short for supervised training" in m["note"]
    registry = ModelRegistry(home / "models")
    assert "bgnbd_gg" in registry.names()
    assert not any(name.startswith("gbm_") for name in registry.names())
    stack_meta = meta(result, "rfm_stack_model")
    assert stack_meta["trained"] is False and "cannot hold" in stack_meta["note"]
    assert "rfm_stack" not in registry.names()
