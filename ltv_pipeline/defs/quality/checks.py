"""Blocking Great Expectations gates on the raw tables, and the load-batch row-count check."""

import dagster as dg

from ltv_pipeline.defs.ingest.assets import RAW_ASSETS
from ltv_pipeline.defs.quality.factory import check_result, gx_check, result_path
from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.lib import quality
from ltv_pipeline.lib.quality_suites import RAW_SUITES

raw_quality_checks = [
    gx_check(asset, RAW_SUITES[table], f"raw.{table}") for table, asset in RAW_ASSETS.items()
]

ROW_COUNT_CHECK = "check_{asset}_row_counts"

# The latest logged batch, per table: the logged counts and what the tables hold now.
_COUNTS_SQL = """
with batch as (
    select batch_id from raw.load_batches order by loaded_at desc, batch_id desc limit 1
)
select
    l.batch_id, l.table_name, l.rows_in_file, l.rows_loaded, l.rows_quarantined,
    (select count(*) from raw.{table} where _batch_id = l.batch_id) as raw_rows,
    (select count(*) from quarantine.{table} where _batch_id = l.batch_id) as quarantined_rows,
    (select count(*) from raw.{table} where _batch_id is distinct from l.batch_id)
      + (select count(*) from quarantine.{table} where _batch_id is distinct from l.batch_id)
      as rows_from_other_batches
from raw.load_batches l join batch using (batch_id)
where l.table_name = '{table}'
"""


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            ROW_COUNT_CHECK.format(asset=asset),
            asset=asset,
            blocking=True,
            description=f"The latest load batch accounts for every row of the {table} file: "
            "raw rows + quarantined rows = rows in the file, as logged in raw.load_batches.",
        )
        for table, asset in RAW_ASSETS.items()
    ],
    can_subset=True,
)
def raw_row_count_checks(context: dg.AssetCheckExecutionContext, warehouse_db: WarehouseResource):
    """One result per selected raw table, from one short-lived read-only connection."""
    selected = {
        table: (asset, ROW_COUNT_CHECK.format(asset=asset))
        for table, asset in RAW_ASSETS.items()
        if dg.AssetCheckKey(dg.AssetKey(asset), ROW_COUNT_CHECK.format(asset=asset))
        in context.selected_asset_check_keys
    }
    with warehouse_db.connect(read_only=True) as con:
        counts = {t: con.execute(_COUNTS_SQL.format(table=t)).df() for t in selected}
    for table, (asset, name) in selected.items():
        result = quality.row_count_consistency(counts[table])
        path = quality.save_result(result, result_path(warehouse_db.ltv_home, name, context.run.run_id))
        counts_json = dg.MetadataValue.json(quality.to_jsonable(counts[table].to_dict("records")))
        yield check_result(result, path, asset_key=asset, check_name=name,
                           extra_metadata={"counts": counts_json})
