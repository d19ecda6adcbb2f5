import dagster as dg

# Placeholder until the dbt assets land.
defs = dg.Definitions()
