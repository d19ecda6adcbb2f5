"""Gates of the scoring partitions: the time rule on the features scored (blocking)."""

import dagster as dg

from ltv_pipeline.defs.quality.factory import evaluate
from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.defs.scoring.assets import scoring_features
from ltv_pipeline.lib import marts
from ltv_pipeline.lib.quality_suites import history_leakage_suite


def run_days(tags: dict[str, str]) -> list[str]:
    """The scoring dates a run covers, from its partition tags (one key or a range)."""
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if start and end:
        return [k for k in scoring_features.partitions_def.get_partition_keys() if start <= k <= end]
    raise dg.Failure("the scoring checks run with a partition or a partition range")


@dg.asset_check(asset=scoring_features, blocking=True,
                description="Time rule on the scored dates: every feature and BTYD summary row of "
                "cutoff D was computed from activity before D + 1 day (max_source_ts).")
def check_scoring_features_no_leakage(context: dg.AssetCheckExecutionContext,
                                      warehouse_db: WarehouseResource) -> dg.AssetCheckResult:
    days = marts.in_list(run_days(context.run.tags))
    sql = ("select user_id, cutoff_date, max_source_ts from marts.customer_features "
           f"where cutoff_date in ({days}) union all select user_id, cutoff_date, max_source_ts "
           f"from marts.customer_btyd_summary where cutoff_date in ({days})")
    return evaluate(context, warehouse_db, sql, history_leakage_suite("scoring_history_leakage"),
                    "check_scoring_features_no_leakage")
