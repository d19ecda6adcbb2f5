"""Merges each domain's Definitions; nothing else lives here."""

import dagster as dg

from ltv_pipeline import settings
from ltv_pipeline.defs import features, ingest, jobs, quality, training, transform
from ltv_pipeline.defs import evaluation, monitoring, privacy, scoring
from ltv_pipeline.defs.resources import shared_resources

settings.ensure_home()  # LTV_HOME and DAGSTER_HOME absolute and exported for EnvVar and dbt

defs = dg.Definitions.merge(
    ingest.defs,
    transform.defs,
    quality.defs,
    features.defs,
    training.defs,
    evaluation.defs,
    scoring.defs,
    monitoring.defs,
    privacy.defs,
    jobs.defs,
    dg.Definitions(resources=shared_resources()),
)
