"""The dbt CLI resource of the transform domain."""

from __future__ import annotations

from dagster_dbt import DbtCliResource

from ltv_pipeline import settings
from ltv_pipeline.lib.dbt_project import dbt_executable


def dbt_resource() -> DbtCliResource:
    """dbt on dbt_project/ with its own profiles.yml (DuckDB at LTV_HOME/warehouse.duckdb; dbt
    reads LTV_HOME from the environment, which settings.ltv_home() exports as an absolute
    path)."""
    return DbtCliResource(
        project_dir=str(settings.DBT_PROJECT_DIR),
        profiles_dir=str(settings.DBT_PROJECT_DIR),
        dbt_executable=dbt_executable(),
    )
