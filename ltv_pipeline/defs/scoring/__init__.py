"""Scoring domain: the daily partitions (scoring features, ltv_scores, audience exports), the
scoring job and its schedule. Needs the shared warehouse_db resource (definitions.py)."""

import dagster as dg

from ltv_pipeline.defs.scoring.assets import audience_exports, ltv_scores, scoring_features
from ltv_pipeline.defs.scoring.checks import check_scoring_features_no_leakage
from ltv_pipeline.defs.scoring.schedules import score_job, score_job_schedule

defs = dg.Definitions(
    assets=[scoring_features, ltv_scores, audience_exports],
    asset_checks=[check_scoring_features_no_leakage],
    jobs=[score_job],
    schedules=[score_job_schedule],
)
