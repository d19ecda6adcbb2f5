"""Blocking GX gates on the dbt marts: quality (keys, ranges) and the time rule (leakage).

The marts live in the warehouse's marts schema (dbt_project/macros/generate_schema_name.sql);
their asset keys come from the dbt assets through get_asset_key_for_model.

The per-cutoff marts are read at the cutoffs of the training plan (intermediate.
int_cutoffs_planned; for the labels, with its horizon): the rows the training build wrote and
everything training reads. The marts also keep every date scored since (one row per user per
date, each checked by its scoring partition's own gate); reading all of them loaded every date
ever scored into memory (1M users, 32 scored dates: 26 s and 8.3 GB for two of the suites).
"""

from functools import cache, partial

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from ltv_pipeline.defs.quality.factory import gx_check, leakage_check
from ltv_pipeline.defs.transform.assets import build_dbt_assets
from ltv_pipeline.lib import quality_suites as qs

MART_SCHEMA = "marts"
PLAN_TABLE = "intermediate.int_cutoffs_planned"
PER_CUTOFF = {"customer_features": ("cutoff_date",), "customer_btyd_summary": ("cutoff_date",),
              "customer_labels": ("cutoff_date", "horizon_days")}


def mart_rows(model: str) -> str:
    """What a gate on `model` reads: a per-cutoff mart's rows at the training plan's cutoffs
    (and horizon), any other mart whole."""
    if model not in PER_CUTOFF:
        return f"{MART_SCHEMA}.{model}"
    on = " and ".join(f"m.{c} = p.{c}" for c in PER_CUTOFF[model])
    return f"select m.* from {MART_SCHEMA}.{model} m semi join {PLAN_TABLE} p on {on}"


@cache
def build_mart_checks() -> list[dg.AssetChecksDefinition]:
    """One line per gate; built once per process, like the dbt assets they check."""
    dbt = [build_dbt_assets()]

    def key(model: str) -> dg.AssetKey:
        return get_asset_key_for_model(dbt, model)

    return [
        *(
            gx_check(key(model), suite, mart_rows(model))
            for model, suite in (
                ("customer_features", qs.customer_features_suite),
                ("customer_btyd_summary", qs.customer_btyd_summary_suite),
                ("customer_labels", qs.customer_labels_suite),
                ("cohort_revenue", qs.cohort_revenue_suite),
            )
        ),
        leakage_check(key("customer_features"),
                      partial(qs.history_leakage_suite, "customer_features_leakage"),
                      mart_rows("customer_features")),
        leakage_check(key("customer_btyd_summary"),
                      partial(qs.history_leakage_suite, "customer_btyd_summary_leakage"),
                      mart_rows("customer_btyd_summary")),
        leakage_check(key("customer_labels"),
                      partial(qs.label_window_suite, "customer_labels_window"),
                      mart_rows("customer_labels")),
    ]
