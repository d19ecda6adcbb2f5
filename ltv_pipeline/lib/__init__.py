"""Pure logic: no Dagster imports here. Assets in ltv_pipeline/defs are thin wrappers."""
