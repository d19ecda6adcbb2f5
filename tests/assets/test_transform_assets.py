"""The dbt models as Dagster assets: materialized with dagster's materialize() against a
temporary LTV_HOME whose raw tables are filled directly (the ingest assets are tested apart)."""

from datetime import date
from pathlib import Path

import dagster as dg
import lifetimes
import pandas as pd
import pytest
from dagster_dbt import get_asset_key_for_model

from ltv_pipeline import groups
from ltv_pipeline.defs import transform
from ltv_pipeline.defs.resources import WarehouseResource, shared_resources
from ltv_pipeline.defs.transform.assets import DBT_ASSETS_NAME, build_dbt_assets
from ltv_pipeline.defs.transform.resources import dbt_resource
from ltv_pipeline.lib import warehouse
from ltv_pipeline.lib.cutoffs import plan_cutoffs

MARTS = ["customer_features", "customer_btyd_summary", "customer_labels", "cohort_revenue"]
SAMPLE = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt"


def cdnow_sample_transactions() -> pd.DataFrame:
    df = pd.read_csv(SAMPLE, sep=r"\s+", header=None, names=["user_id", "idx", "date", "n", "amount"],
                     dtype={"user_id": str, "date": str})
    return pd.DataFrame({"user_id": df["user_id"], "ts": pd.to_datetime(df["date"], format="%Y%m%d"),
                         "amount": df["amount"].astype(float)})


def test_transform_definitions_merge_with_shared_resources_and_validate():
    defs = dg.Definitions.merge(transform.defs, dg.Definitions(resources=shared_resources()))
    specs = {s.key: s for s in defs.resolve_all_asset_specs()}
    assets = build_dbt_assets()
    for model in MARTS:
        key = get_asset_key_for_model([assets], model)
        assert key == dg.AssetKey(model)
        assert specs[key].group_name == groups.TRANSFORM
        assert specs[key].tags["layer"] == "marts"
        assert specs[key].kinds == {"dbt", "duckdb"}
    staging = specs[get_asset_key_for_model([assets], "stg_raw__transactions")]
    assert staging.tags["layer"] == "staging"
    assert {d.asset_key for d in staging.deps} >= {dg.AssetKey("raw_transactions")}
    upstream = {d.asset_key for s in specs.values() for d in s.deps}
    assert {dg.AssetKey(k) for k in ("raw_transactions", "raw_users", "raw_events", "fx_rates")} <= upstream
    assert build_dbt_assets() is assets  # built once per process
    assert defs.resolve_job_def("__ASSET_JOB") is not None


def test_materialize_dbt_assets_builds_the_planned_cutoffs(ltv_home, write_raw_tables):
    tx = cdnow_sample_transactions()
    write_raw_tables(ltv_home / "warehouse.duckdb", transactions=tx)

    result = dg.materialize(
        [build_dbt_assets()],
        resources={"dbt": dbt_resource(), "warehouse_db": WarehouseResource(ltv_home=str(ltv_home))},
        run_config={"ops": {DBT_ASSETS_NAME: {"config": {"horizon_days": 90}}}},
    )
    assert result.success
    materializations = {
        e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    assert {dg.AssetKey(m) for m in MARTS} <= set(materializations)
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)

    # Default as_of: the last transaction date (1998-06-30).
    plan = plan_cutoffs(date(1998, 6, 30), 90, data_start=date(1997, 1, 1))
    with warehouse.connect(ltv_home / "warehouse.duckdb", read_only=True) as con:
        per_cutoff = con.execute(
            "select cutoff_date, count(*) from marts.customer_features group by 1 order by 1"
        ).fetchall()
        n_labels = con.execute("select count(*) from marts.customer_labels").fetchone()[0]
        scoring = con.execute(
            "select count(*) from marts.customer_btyd_summary where cutoff_date = date '1998-06-30'"
        ).fetchone()[0]
    assert [c for c, _ in per_cutoff] == list(plan.all_cutoffs)
    first_day = tx.groupby("user_id")["ts"].min().dt.date
    for cutoff, n in per_cutoff:
        assert n == (first_day <= cutoff).sum(), cutoff
    assert n_labels == sum(n for _, n in per_cutoff)
    assert scoring == tx["user_id"].nunique() == 2357
    features_meta = materializations[dg.AssetKey("customer_features")]
    assert features_meta["dagster/row_count"].value == sum(n for _, n in per_cutoff)
    assert features_meta["rows_for_built_cutoffs"].value == sum(n for _, n in per_cutoff)


def test_transform_fails_clearly_when_raw_transactions_are_empty(ltv_home, write_raw_tables):
    write_raw_tables(ltv_home / "warehouse.duckdb", transactions=pd.DataFrame(
        {"user_id": [], "ts": pd.to_datetime([]), "amount": []}))
    with pytest.raises(dg.Failure, match="raw.transactions is empty"):
        dg.materialize(
            [build_dbt_assets()],
            resources={"dbt": dbt_resource(), "warehouse_db": WarehouseResource(ltv_home=str(ltv_home))},
        )


def test_transform_config_plans_from_as_of_or_the_last_transaction_date(ltv_home, write_raw_tables):
    from ltv_pipeline.defs.transform.assets import TransformConfig, plan_for

    write_raw_tables(ltv_home / "warehouse.duckdb", transactions=pd.DataFrame({
        "user_id": ["a", "b"], "ts": pd.to_datetime(["2024-01-01 10:00", "2024-06-30 23:00"]),
        "amount": [1.0, 2.0]}))
    wh = WarehouseResource(ltv_home=str(ltv_home))
    default = plan_for(TransformConfig(horizon_days=30), wh)
    assert default.scoring_date == date(2024, 6, 30)
    assert max(default.backtest_origins) == date(2024, 5, 31)
    assert min(default.all_cutoffs) >= date(2024, 1, 31)  # data start + 30 days of history
    only = plan_for(TransformConfig(as_of="2024-03-31", horizon_days=30, n_origins=0,
                                    n_train_cutoffs=0), wh)
    assert only.all_cutoffs == (date(2024, 3, 31),)


def test_transform_fails_clearly_before_any_load(ltv_home):
    from ltv_pipeline.defs.transform.assets import data_span

    with pytest.raises(dg.Failure, match="no raw.transactions"):
        data_span(WarehouseResource(ltv_home=str(ltv_home)))
