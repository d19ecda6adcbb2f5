import dagster as dg

from ltv_pipeline.defs.ingest.assets import raw_tables

defs = dg.Definitions(assets=[raw_tables])
