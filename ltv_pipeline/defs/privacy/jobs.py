"""erase_users_job: erase a list of customers from every store (lib/privacy.forget), the same
function `ltv forget USER_ID` calls, under the home's writer lock (lib/locks.py)."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from ltv_pipeline import settings
from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.lib import locks, privacy


class ErasureConfig(dg.Config):
    user_ids: list[str] = Field(
        default_factory=list,
        description="Ids of the customers to erase (as in the input's user_id column); each is "
        "removed from every store and left out of later loads. Erasing an id twice is harmless. "
        "Dagster keeps a run's config in its history: prefer ids_file for real requests.",
    )
    ids_file: str = Field(
        default="", description="A text file with one id per line (the run's config then holds "
        "only its path, not the ids); read in addition to user_ids.",
    )

    def ids(self) -> list[str]:
        ids = list(self.user_ids)
        if self.ids_file:
            ids += [line for line in Path(self.ids_file).read_text().splitlines() if line.strip()]
        return ids


@dg.op(description="Remove the ids from the warehouse, the Feast exports and online store, the "
       "audience exports and the quality results; add them to the erasure list ingest applies; "
       "log the erasure (hashed ids) in LTV_HOME/privacy/erasures.jsonl.")
def erase_users(context: dg.OpExecutionContext, config: ErasureConfig,
                warehouse_db: WarehouseResource) -> dg.Output:
    home = Path(warehouse_db.ltv_home)
    with locks.exclusive(home, f"erase_users_job run {context.run_id}", on_wait=context.log.info):
        report = privacy.forget(home, config.ids(), source=f"dagster run {context.run_id}")
    context.log.info(f"erased {report['erased_ids']} id(s): {report['rows_removed']:,} rows removed"
                     + (" (nothing was left to remove)" if report["nothing_found"] else ""))
    per_store: dict[str, int] = {}
    for entry in report["erasures"]:
        for store, places in entry["removed"].items():
            per_store[store] = per_store.get(store, 0) + sum(places.values())
    return dg.Output(None, metadata={
        "ids_erased": report["erased_ids"],
        "rows_removed": report["rows_removed"],
        "rows_removed_per_store": dg.MetadataValue.json(per_store),
        "erasure_log": dg.MetadataValue.path(report["log"]),
    })


@dg.job(tags={settings.WRITES_WAREHOUSE_TAG: "true"},
        description="Erase a list of customers (config: user_ids) from every store and exclude "
        "them from later loads; what `ltv forget USER_ID` does for one id.")
def erase_users_job():
    erase_users()
