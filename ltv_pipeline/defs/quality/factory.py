"""A GX gate in one line: `gx_check(asset_key, suite_builder, table_sql)`.
The check reads the rows with a short-lived read-only connection (closed before GX runs, so a
dbt subprocess can lock the file again), validates them with lib/quality, writes the GX result
under LTV_HOME/quality/<check name>/<run id>.json and returns a blocking AssetCheckResult whose
metadata names the failed expectations, their counts and a sample of offending rows.
"""


from collections.abc import Callable
from pathlib import Path

import dagster as dg

from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.lib import quality, quality_read
from ltv_pipeline.lib.quality import QualityResult, QualitySuite

SuiteBuilder = Callable[[], QualitySuite]


def result_path(ltv_home: str | Path, check_name: str, run_id: str) -> Path:
    return Path(ltv_home) / "quality" / check_name / f"{run_id}.json"


def read_frame(warehouse_db: WarehouseResource, table_sql: str, suite: QualitySuite | None = None):
    """The rows of a table name ("raw.transactions") or a select that the suite reads, from a
    short-lived read-only connection (lib/quality_read: the same reader the benchmark times)."""
    with warehouse_db.connect(read_only=True) as con:
        return quality_read.read_frame(con, table_sql, suite)


def check_result(
    result: QualityResult,
    path: Path | None = None,
    *,
    asset_key: dg.AssetKey | str | None = None,
    check_name: str | None = None,
    extra_metadata: dict[str, object] | None = None,
) -> dg.AssetCheckResult:
    """The AssetCheckResult of a suite run (severity ERROR: a blocking check stops downstream).
    asset_key and check_name are needed only in a multi-asset check."""
    metadata: dict[str, object] = {
        "rows": result.rows,
        "evaluated_expectations": result.evaluated,
        "failed_expectations": len(result.failed),
        "failures": dg.MetadataValue.md(result.to_markdown()),
        "failures_json": dg.MetadataValue.json(result.to_dict()["failed"]),
    }
    if path is not None:
        metadata["gx_result_path"] = dg.MetadataValue.path(str(path))
    metadata.update(extra_metadata or {})
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=result.success,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=result.summary()[:1000],
    )


def evaluate(
    context: dg.AssetCheckExecutionContext,
    warehouse_db: WarehouseResource,
    table_sql: str,
    suite: QualitySuite,
    check_name: str,
) -> dg.AssetCheckResult:
    """Read, validate, save, report: the body of every GX check (usable inside custom checks,
    e.g. one whose suite depends on run config such as the scoring date)."""
    frame = read_frame(warehouse_db, table_sql, suite)
    result = quality.run_suite(frame, suite)
    path = quality.save_result(result, result_path(warehouse_db.ltv_home, check_name, context.run.run_id))
    log = context.log.info if result.success else context.log.error
    log(result.summary()[:2000])
    return check_result(result, path)


def gx_check(
    asset_key: dg.AssetKey | str | list[str],
    suite_builder: SuiteBuilder,
    table_sql: str,
    *,
    name: str | None = None,
    description: str | None = None,
    blocking: bool = True,
) -> dg.AssetChecksDefinition:
    """A blocking asset check that validates table_sql (a table name or a select) with the
    suite suite_builder() builds. Default name: check_<asset>_quality."""
    key = dg.AssetKey.from_coercible(asset_key)
    check_name = name or f"check_{key.path[-1]}_quality"
    # the builder's name, not its suite's: building a suite would import GX at definitions load
    builder = getattr(suite_builder, "func", suite_builder)  # functools.partial or a function
    suite_name = getattr(builder, "__name__", "suite").removesuffix("_suite")

    @dg.asset_check(
        asset=key,
        name=check_name,
        blocking=blocking,
        description=description or f"Great Expectations suite '{suite_name}' on {table_sql}.",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse_db: WarehouseResource):
        return evaluate(context, warehouse_db, table_sql, suite_builder(), check_name)

    return _check


def leakage_check(
    asset_key: dg.AssetKey | str | list[str],
    suite_builder: SuiteBuilder,
    table_sql: str,
    *,
    name: str | None = None,
) -> dg.AssetChecksDefinition:
    """A blocking time-rule gate (lib/quality_suites: history_leakage_suite for features and
    summaries, label_window_suite for labels). Default name: check_<asset>_no_leakage."""
    key = dg.AssetKey.from_coercible(asset_key)
    return gx_check(
        key, suite_builder, table_sql,
        name=name or f"check_{key.path[-1]}_no_leakage",
        description=f"Time rule: nothing for cutoff D read at or after D + 1 day ({table_sql}).",
    )
