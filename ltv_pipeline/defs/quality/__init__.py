"""Quality domain: blocking Great Expectations gates on the raw tables, the dbt staging views
and the dbt marts (quality, row accounting between layers, the time rule), and the factory
that declares one in a line."""

import dagster as dg

from ltv_pipeline.defs.quality.checks import raw_quality_checks, raw_row_count_checks
from ltv_pipeline.defs.quality.factory import check_result, evaluate, gx_check, leakage_check
from ltv_pipeline.defs.quality.mart_checks import build_mart_checks
from ltv_pipeline.defs.quality.staging_checks import build_staging_checks

defs = dg.Definitions(asset_checks=[*raw_quality_checks, raw_row_count_checks,
                                    *build_staging_checks(), *build_mart_checks()])

__all__ = ["check_result", "defs", "evaluate", "gx_check", "leakage_check"]
