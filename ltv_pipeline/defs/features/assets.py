"""Features: the Feast registry over the dbt marts, and the online store scoring reads.

Thin wrappers around ltv_pipeline.lib.feature_store and lib.online_store; the Feast objects are
in feature_repo/.
"""

import time
from datetime import date
from pathlib import Path

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from ltv_pipeline import groups
from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.defs.transform.assets import build_dbt_assets
from ltv_pipeline.lib import feature_exports as exports
from ltv_pipeline.lib import feature_store as fs
from ltv_pipeline.partitions import daily_partitions

# The marts behind the feature views (their FileSources' dbt_model tags).
MART_KEYS = [
    get_asset_key_for_model([build_dbt_assets()], model)
    for model in ("customer_features", "customer_btyd_summary")
]


@dg.asset(group_name=groups.FEATURES, kinds={"feast"}, deps=MART_KEYS)
def feast_registry(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource) -> dg.MaterializeResult:
    """The Feast registry of project ltv (LTV_HOME/feast/registry.db): entity customer, the
    feature views customer_features and customer_btyd_summary (one row per user per cutoff,
    event timestamp = end of the cutoff day) and the services ltv_model_v1 and btyd_v1. Exports
    the cutoffs of the training plan (what the dbt build just wrote) of both marts to
    LTV_HOME/feast/data/<view>/<YYYY-MM-DD>.parquet, and every other cutoff of the marts whose
    file is missing or has another schema (atomically; files of cutoffs no longer in a mart are
    deleted; lib/feature_exports.export_cutoffs), then applies feature_repo/."""
    home = Path(warehouse_db.ltv_home)
    plan = warehouse_db.training_plan()  # none yet: every cutoff is exported
    rows = exports.export_cutoffs(warehouse_db.path, home, rebuilt=plan.all_cutoffs if plan else None)
    store = fs.feature_store(home)
    fs.apply_repo(store)
    views = {v.name: len(v.features) for v in store.list_feature_views()}
    services = {s.name: sum(len(p.features) for p in s.feature_view_projections)
                for s in store.list_feature_services()}
    context.log.info(f"exported {rows}; registered views {views} and services {services}")
    return dg.MaterializeResult(
        metadata={
            "feature_views": dg.MetadataValue.json(views),
            "feature_services": dg.MetadataValue.json(services),
            "feature_count": sum(views.values()),
            "entity_rows": dg.MetadataValue.json(rows),
            "dagster/row_count": rows["customer_features"],
            "registry_path": dg.MetadataValue.path(str(store.config.registry.path)),
        }
    )


# Assets that only serve the online store carry this tag; `ltv predict` (runner.run_job with
# skip_online) and the jobs over unpartitioned assets leave them out.
ONLINE_ONLY_TAG = {"ltv/serves": "online"}
# The scoring partition's asset that builds cutoff D with dbt and exports it (defs/scoring).
SCORING_FEATURES = dg.AssetKey("scoring_features")


@dg.asset(group_name=groups.FEATURES, kinds={"feast"}, deps=[SCORING_FEATURES, feast_registry],
          partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
          tags=ONLINE_ONLY_TAG)
def online_features(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource) -> dg.MaterializeResult:
    """The SQLite online store (LTV_HOME/feast/online_store.db) as of the partition's scoring
    date D: one row per customer known at D with cutoff D's features of every feature view,
    read from D's export file, for `ltv score-user`. Customers absent at D keep their older
    rows (their cutoff marker says which). A re-run of D replaces those customers' rows. A run
    over a range of dates (a backfill) writes its last date only (the store serves one row per
    customer), and nothing when the store is already as of a later date: a backfill of the past
    never moves serving back (metadata `skipped` says so); a single older date does."""
    from ltv_pipeline.lib import online_store  # imports Feast's online store modules

    home = Path(warehouse_db.ltv_home)
    dates = sorted(date.fromisoformat(k) for k in context.partition_keys)
    current = exports.online_as_of(home)
    as_of, why = exports.online_write_plan(dates, current)
    if as_of is None:
        context.log.info(f"online store left as of {current}: {why}")
        return dg.MaterializeResult(metadata={"as_of": str(current), "users_written": 0, "skipped": why})
    store = fs.feature_store(home)
    started = time.perf_counter()
    written = online_store.materialize_online(store, as_of)
    exports.record_online_as_of(as_of, home)
    seconds = time.perf_counter() - started
    context.log.info(f"online store as of {as_of} ({why}): {written} rows in {seconds:.1f} s")
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "users_written": written["customer_features"],
            "rows_written": dg.MetadataValue.json(written),
            "seconds": round(seconds, 3),
            "online_store_path": dg.MetadataValue.path(str(store.config.online_store.path)),
        }
    )
