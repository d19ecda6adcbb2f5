"""Blocking GX gates on the dbt staging views: one suite per view (keys, types, ranges, allowed
values) and the raw -> staging row accounting (no row lost or invented between the layers).

The views live in the warehouse's staging schema; their asset keys come from the dbt assets
through get_asset_key_for_model, as in mart_checks.py.
"""

from functools import cache

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from ltv_pipeline.defs.quality.factory import check_result, gx_check, result_path
from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.defs.transform.assets import build_dbt_assets
from ltv_pipeline.lib import quality
from ltv_pipeline.lib.quality_staging import (
    STAGING_GRAIN,
    STAGING_SCHEMA,
    STAGING_SUITES,
    layer_counts_sql,
    layer_row_counts,
)

LAYER_COUNT_CHECK = "check_{model}_row_counts"


@cache
def build_staging_checks() -> list[dg.AssetChecksDefinition]:
    """A quality gate per staging view and one multi-check for the row accounting."""
    dbt = [build_dbt_assets()]
    keys = {model: get_asset_key_for_model(dbt, model) for model in STAGING_SUITES}
    quality_checks = [
        gx_check(keys[model], suite, f"{STAGING_SCHEMA}.{model}")
        for model, suite in STAGING_SUITES.items()
    ]

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                LAYER_COUNT_CHECK.format(model=model),
                asset=keys[model],
                blocking=True,
                description=f"No row lost or invented between raw.{raw} and {model}: the view "
                "holds exactly the rows its documented grain keeps (raw rows minus the "
                "de-duplicated ones), never more than raw.",
            )
            for model, (raw, _) in STAGING_GRAIN.items()
        ],
        can_subset=True,
        name="staging_row_count_checks",
    )
    def staging_row_count_checks(context: dg.AssetCheckExecutionContext,
                                 warehouse_db: WarehouseResource):
        """One result per selected staging view, from one short-lived read-only connection."""
        selected = [
            model for model in STAGING_GRAIN
            if dg.AssetCheckKey(keys[model], LAYER_COUNT_CHECK.format(model=model))
            in context.selected_asset_check_keys
        ]
        with warehouse_db.connect(read_only=True) as con:
            counts = {m: con.execute(layer_counts_sql(m)).df() for m in selected}
        for model in selected:
            name = LAYER_COUNT_CHECK.format(model=model)
            result = layer_row_counts(counts[model])
            (context.log.info if result.success else context.log.error)(f"{name}: {result.summary()}")
            path = quality.save_result(result, result_path(warehouse_db.ltv_home, name, context.run.run_id))
            rows = counts[model].to_dict("records")
            yield check_result(result, path, asset_key=keys[model], check_name=name,
                               extra_metadata={"counts": dg.MetadataValue.json(quality.to_jsonable(rows))})

    return [*quality_checks, staging_row_count_checks]
