"""Jobs that span domains."""

import dagster as dg

full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=dg.AssetSelection.all(),
    description="Load the source and build everything downstream of it, as of one date.",
)

defs = dg.Definitions(jobs=[full_pipeline_job])
