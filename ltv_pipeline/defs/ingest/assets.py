"""Ingest: load a source into the warehouse's raw schema, all four tables in one transaction."""


import uuid
from datetime import datetime, timezone

import dagster as dg
from pydantic import Field

from ltv_pipeline import groups, settings
from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.lib import sources, validation, warehouse

RAW_ASSETS = {
    "transactions": "raw_transactions",
    "users": "raw_users",
    "events": "raw_events",
    "fx_rates": "fx_rates",
}
DESCRIPTIONS = {
    "transactions": "One row per input transaction (refunds included), as given, typed.",
    "users": "One row per known user with signup time and attributes, as given, typed.",
    "events": "One row per browsing event (session, view, cart add, checkout), as given.",
    "fx_rates": "One row per date per currency: value of one unit in the base currency.",
}


class IngestConfig(dg.Config):
    source: str = Field(
        default=settings.DEFAULT_SOURCE,
        description="'cdnow' (the real CDNOW log), 'synthetic', or a directory holding "
        "transactions.{parquet,csv} and optionally users, events, fx_rates.",
    )
    synthetic_users: int = Field(default=settings.DEFAULT_SYNTHETIC_USERS, gt=0)
    synthetic_seed: int = Field(default=settings.DEFAULT_SYNTHETIC_SEED)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            group_name=groups.INGEST,
            description=DESCRIPTIONS[table],
            kinds={"duckdb"},
            metadata={"table": f"raw.{table}"},
        )
        for table, key in RAW_ASSETS.items()
    ],
    can_subset=False,
)
def raw_tables(context: dg.AssetExecutionContext, config: IngestConfig, warehouse_db: WarehouseResource):
    """Validate the source against the input contract and replace raw.* and quarantine.* in
    one transaction: a failed load leaves the warehouse as it was."""
    context.log.info(f"reading source {config.source!r}")
    tables = sources.read_source(config.source, config.synthetic_users, config.synthetic_seed)
    configured = settings.configured_base_currency()
    currency = sources.load_currency(tables, configured, settings.DEFAULT_BASE_CURRENCY)
    if currency != (configured or settings.DEFAULT_BASE_CURRENCY):
        context.log.warning(f"every transaction is in {currency} and the source has no fx rates: amounts "
                            f"stay in {currency}, the base currency of this load (LTV_BASE_CURRENCY sets it)")
    loads = sources.prepare_loads(tables, currency, settings.clock())  # consumes tables
    # customers erased with `ltv forget` stay out of every later load (LTV_HOME/privacy)
    loads, erased = sources.drop_erased(loads, warehouse_db.path.parent)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    batch_id = f"{stamp}-{uuid.uuid4().hex[:8]}"
    warehouse.replace_raw_tables(warehouse_db.path, batch_id, config.source, loads)
    transactions = next(load.clean for load in loads if load.table == "transactions")
    if len(transactions):
        first, last = transactions["ts"].min().date(), transactions["ts"].max().date()
        settings.write_data_span(first, last, currency)
        context.log.info(f"data spans {first} to {last} (the daily partitions start at {first})")
    for load in loads:
        reasons = load.quarantined["reason"].value_counts().to_dict() if len(load.quarantined) else {}
        context.log.info(f"raw.{load.table}: {len(load.clean):,} rows, {len(load.quarantined):,} quarantined"
                         + validation.quarantine_summary(load.table, reasons)
                         + (f", {erased[load.table]:,} of erased customers left out" if erased[load.table] else ""))
        yield dg.MaterializeResult(
            asset_key=RAW_ASSETS[load.table],
            metadata={
                "dagster/row_count": len(load.clean),
                "rows_in_file": load.rows_in_file + erased[load.table],
                "rows_quarantined": len(load.quarantined),
                "rows_erased": erased[load.table],
                "quarantine_reasons": dg.MetadataValue.json(reasons),
                "file": load.file or "(not provided)",
                "source": config.source,
                "base_currency": currency,
                "batch_id": batch_id,
            },
        )
