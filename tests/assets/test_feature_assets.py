"""The feature assets, materialized against a temporary LTV_HOME whose marts are written
directly with DuckDB (building them with dbt is covered by the transform tests)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
from feast.types import Bool, Float64, Int64, String, UnixTimestamp

from ltv_pipeline import groups
from ltv_pipeline.defs import features, transform
from ltv_pipeline.defs.features.assets import MART_KEYS, feast_registry, online_features
from ltv_pipeline.defs.resources import shared_resources
from ltv_pipeline.lib import feature_exports as exports
from ltv_pipeline.lib import feature_store as fs
from ltv_pipeline.lib import online_store
from ltv_pipeline.partitions import daily_partitions

D0, D1 = date(2025, 6, 30), date(2025, 9, 30)
SQL_VALUES = {Float64: "i * 1.5", Int64: "i", Bool: "i % 2 = 0", String: "'c' || (i % 3)",
              UnixTimestamp: "cast(cutoff_date as timestamp) + interval 1 hour"}


def write_marts(home: Path, n_features: int, n_btyd: int) -> None:
    """Users u000.. at cutoffs D0 and D1; every feature column valued from the user number."""
    views = {v.name: v for v in fs.repo_objects() if isinstance(v, fs.feast.FeatureView)}
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create schema if not exists marts")
        for name, n in (("customer_features", n_features), ("customer_btyd_summary", n_btyd)):
            view = views[name]
            cols = [f'{SQL_VALUES[f.dtype]} as "{f.name}"' for f in view.features
                    if f.name != view.tags[fs.CUTOFF_TAG]]
            con.execute(f"""
                create table marts.{name} as
                with keys as (
                    select i, 'u' || lpad(cast(i as varchar), 3, '0') as user_id, cast(d as date) as cutoff_date
                    from range({n}) r(i) cross join (select unnest(['{D0}', '{D1}']) as d) c
                )
                select user_id, cutoff_date, {', '.join(cols)} from keys""")


def materialize(partition_key: str = "2025-09-30"):
    """feast_registry, then the online_features partition of `partition_key` (the scoring date):
    two runs, as the unpartitioned registry and the daily partitions run in a pipeline."""
    registry = dg.materialize([feast_registry], resources=shared_resources(), raise_on_error=False)
    if not registry.success:
        return registry
    return dg.materialize([online_features], resources=shared_resources(), partition_key=partition_key,
                          raise_on_error=False)


def metadata(result, asset: str) -> dict:
    [mat] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


def test_feature_assets_register_the_repo_and_fill_the_online_store_as_of_the_partition(ltv_home):
    write_marts(ltv_home, n_features=30, n_btyd=20)
    registry_run = dg.materialize([feast_registry], resources=shared_resources())
    registry = metadata(registry_run, "feast_registry")
    assert registry["feature_views"] == {"customer_features": 57, "customer_btyd_summary": 7}
    assert registry["feature_count"] == 64
    assert registry["entity_rows"] == {"customer_features": 60, "customer_btyd_summary": 40}
    assert registry["registry_path"] == str(ltv_home / "feast" / "registry.db")
    assert Path(registry["registry_path"]).is_file()
    assert sorted(p.name for p in (ltv_home / "feast" / "data" / "customer_features").iterdir()) == [
        "2025-06-30.parquet", "2025-09-30.parquet"]

    result = dg.materialize([online_features], resources=shared_resources(), partition_key="2025-09-30")
    online = metadata(result, "online_features")
    assert online["as_of"] == "2025-09-30"
    assert online["users_written"] == 30
    assert online["rows_written"] == {"customer_features": 30, "customer_btyd_summary": 20}
    assert online["seconds"] > 0

    store = fs.feature_store(ltv_home)
    got = online_store.online_features(store, ["u007", "u025"], "btyd_v1", as_of=D1)
    assert got["T"].iloc[0] == 7.0 and got["T"].isna().iloc[1]  # u025 has no purchase: no BTYD row
    assert online_store.online_features(store, ["u025"], as_of=D1)["n_orders"].tolist() == [25.0]


def test_each_online_partition_writes_the_features_of_its_own_date(ltv_home):
    write_marts(ltv_home, n_features=5, n_btyd=5)
    result = materialize("2025-06-30")
    assert result.success
    assert metadata(result, "online_features")["as_of"] == "2025-06-30"
    marker = online_store.online_features(fs.feature_store(ltv_home), ["u001"])["feature_cutoff_date"]
    assert marker.tolist() == ["2025-06-30"]


def test_a_scoring_date_without_exported_features_fails_the_run_with_the_reason(ltv_home):
    write_marts(ltv_home, n_features=5, n_btyd=5)
    result = materialize("2025-12-31")
    assert not result.success
    failure = result.failure_data_for_node("online_features")
    assert "2025-12-31.parquet does not exist" in failure.error.cause.message


def test_feature_assets_depend_on_the_dbt_marts_and_load_with_the_transform_domain():
    assert {k.to_user_string() for k in MART_KEYS} == {"customer_features", "customer_btyd_summary"}
    assert set(MART_KEYS) <= set(feast_registry.dependency_keys)
    assert set(online_features.dependency_keys) == {dg.AssetKey("scoring_features"), feast_registry.key}
    assert online_features.partitions_def is daily_partitions
    [online_spec] = online_features.specs
    assert online_spec.tags["ltv/serves"] == "online"
    for asset in (feast_registry, online_features):
        [spec] = asset.specs
        assert spec.group_name == groups.FEATURES and spec.kinds == {"feast"}
        assert spec.description
    defs = dg.Definitions.merge(features.defs, transform.defs, dg.Definitions(resources=shared_resources()))
    graph = defs.resolve_asset_graph()
    dbt_keys = {k for k in graph.get_all_asset_keys() if k in set(MART_KEYS)}
    assert dbt_keys == set(MART_KEYS)  # the deps resolve to the dbt assets, not to stubs


def test_feature_registry_fails_clearly_without_a_warehouse(ltv_home):
    result = materialize()
    assert not result.success
    failure = result.failure_data_for_node("feast_registry")
    assert "no warehouse at" in failure.error.cause.message


def test_a_backfill_of_the_past_leaves_a_newer_online_store_alone_but_a_single_date_moves_it(ltv_home):
    write_marts(ltv_home, n_features=5, n_btyd=5)
    assert materialize("2025-09-30").success
    assert exports.online_as_of(ltv_home) == D1
    store = fs.feature_store(ltv_home)

    backfill = dg.materialize([online_features], resources=shared_resources(), tags={
        "dagster/asset_partition_range_start": "2025-06-29", "dagster/asset_partition_range_end": "2025-06-30"})
    mats = backfill.asset_materializations_for_node("online_features")
    assert sorted(m.partition for m in mats) == ["2025-06-29", "2025-06-30"]
    meta = {k: v.value for k, v in mats[-1].metadata.items()}
    assert meta["users_written"] == 0 and meta["as_of"] == "2025-09-30"
    assert "already as of 2025-09-30" in meta["skipped"]
    assert online_store.online_features(store, ["u001"])["feature_cutoff_date"].tolist() == ["2025-09-30"]

    single = dg.materialize([online_features], resources=shared_resources(), partition_key="2025-06-30")
    assert metadata(single, "online_features")["users_written"] == 5
    assert exports.online_as_of(ltv_home) == D0
    assert online_store.online_features(store, ["u001"])["feature_cutoff_date"].tolist() == ["2025-06-30"]


def test_the_online_date_record_is_ignored_once_its_export_is_gone(ltv_home):
    assert exports.online_as_of(ltv_home) is None
    exports.record_online_as_of(D1, ltv_home)
    assert exports.online_as_of(ltv_home) is None  # no export of D1: the record says nothing
    write_marts(ltv_home, n_features=5, n_btyd=5)
    exports.export_cutoffs(ltv_home / "warehouse.duckdb", ltv_home)
    assert exports.online_as_of(ltv_home) == D1
    assert exports.online_write_plan([D0, date(2025, 7, 1)], D1)[0] is None
    assert exports.online_write_plan([D0, D1], D1)[0] == D1
    assert exports.online_write_plan([D0], D1)[0] == D0
    assert exports.online_write_plan([D0, D1], None)[0] == D1


def test_the_registry_exports_again_only_the_training_plans_cutoffs(ltv_home):
    """After a training build feast_registry exports the plan's cutoffs; the file of a date
    scored earlier (D0 here) is current and stays as it is."""
    write_marts(ltv_home, n_features=30, n_btyd=20)
    first = metadata(dg.materialize([feast_registry], resources=shared_resources()), "feast_registry")
    assert first["entity_rows"] == {"customer_features": 60, "customer_btyd_summary": 40}  # no plan: all
    d0 = ltv_home / "feast" / "data" / "customer_features" / f"{D0}.parquet"
    before = d0.stat().st_mtime_ns
    with duckdb.connect(str(ltv_home / "warehouse.duckdb")) as con:
        con.execute("create schema intermediate")
        con.execute(f"create table intermediate.int_cutoffs_planned as select date '{D1}' as cutoff_date, "
                    "90 as horizon_days, true as is_scoring_date, false as is_train_cutoff, "
                    "false as is_backtest_origin")
    again = metadata(dg.materialize([feast_registry], resources=shared_resources()), "feast_registry")
    assert again["entity_rows"] == {"customer_features": 30, "customer_btyd_summary": 20}
    assert d0.stat().st_mtime_ns == before
