"""Quality domain: blocking Great Expectations gates (raw tables now; marts via factory)."""

import dagster as dg

from ltv_pipeline.defs.quality.checks import raw_quality_checks, raw_row_count_checks
from ltv_pipeline.defs.quality.factory import check_result, evaluate, gx_check, leakage_check

defs = dg.Definitions(asset_checks=[*raw_quality_checks, raw_row_count_checks])

__all__ = ["check_result", "defs", "evaluate", "gx_check", "leakage_check"]
