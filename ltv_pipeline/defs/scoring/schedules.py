"""The daily scoring job and its schedule (yesterday's partition, every morning)."""

import dagster as dg

from ltv_pipeline.defs.hooks import RELEASE_MEMORY
from ltv_pipeline.defs.scoring.assets import audience_exports, ltv_scores, scoring_features

score_job = dg.define_asset_job(
    "score_job",
    selection=dg.AssetSelection.assets(scoring_features, ltv_scores, audience_exports)
    | dg.AssetSelection.assets("online_features"),
    hooks=RELEASE_MEMORY,
    # one process for the whole run, as `ltv score` runs it: a process per step loaded the
    # definitions again for each (~2.5 s apiece); memory is released after every step (hooks)
    executor_def=dg.in_process_executor,
    tags={"ltv/writes-warehouse": "true"},  # settings.WRITES_WAREHOUSE_TAG: one such run at a time
    description="Score one day (or a range, in one run): features as of the day, the online "
    "store, the champion's forecasts in scores.ltv_scores, audience exports.",
)

score_job_schedule = dg.build_schedule_from_partitioned_job(
    score_job, hour_of_day=2, minute_of_hour=0,
    description="Every day at 02:00, score yesterday's partition with the current champion.",
)
