"""GX suites on the dbt staging views, and the raw -> staging row accounting.

Each staging model (dbt_project/models/staging) documents its grain; the suites check its
keys, types, ranges and allowed values, and layer_row_counts checks that no row is lost or
invented between a raw table and its staging view: the view holds exactly the rows its grain
implies (raw rows minus the documented de-duplication), never more than raw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from ltv_pipeline.lib.quality import QualityResult, QualitySuite, gx, gxe, run_suite
from ltv_pipeline.lib.quality_suites import (
    at_least, columns_present, iso_currency, make_suite, not_null, repeated_lines)
from ltv_pipeline.lib.schema import EVENT_NAMES, TRANSACTION_LINE_COLUMNS

STAGING_SCHEMA = "staging"
LINEAGE = ("_batch_id", "_row")


def _types(type_: str, *columns: str) -> list:
    """dtype checks on the frame lib/quality_read gives (dates and timestamps datetime64)."""
    return [gxe.ExpectColumnValuesToBeOfType(column=c, type_=type_) for c in columns]


def stg_transactions_suite() -> QualitySuite:
    """One row per distinct transaction line (no line repeated under its transaction_id;
    null ids all kept), in the base currency: every row has a rate and a base amount (no
    value vanishes), amounts >= 0."""
    money = ("amount", "variable_cost", "rate_to_base", "amount_base", "margin_base",
             "net_amount_base", "net_margin_base")
    return make_suite("stg_raw__transactions", [
        columns_present(["transaction_id", "user_id", "ts", "transaction_date", "currency",
                          "is_refund", *money, "channel", "sku", "country", *LINEAGE]),
        *_types("datetime64", "ts", "transaction_date"),
        *_types("float64", "amount", "rate_to_base", "amount_base", "net_amount_base"),
        *not_null("user_id", "ts", "transaction_date", "currency", "is_refund", "amount",
                   "rate_to_base", "amount_base"),
        gxe.ExpectColumnValuesToBeInSet(column="repeats_a_line", value_set=[False]),
        *at_least(0, "amount", "variable_cost", "amount_base"),
        gxe.ExpectColumnValuesToBeBetween(column="rate_to_base", min_value=0, strict_min=True),
        iso_currency(),
        gxe.ExpectColumnValuesToBeInSet(column="is_refund", value_set=[True, False]),
    ], [*LINEAGE, "transaction_id", "user_id"], repeated_lines)


def stg_users_suite() -> QualitySuite:
    """One row per user."""
    return make_suite("stg_raw__users", [
        columns_present(["user_id", "signup_ts", "signup_date", "country", "device",
                          "acquisition_source"]),
        *_types("datetime64", "signup_ts", "signup_date"),
        *not_null("user_id"),
        gxe.ExpectColumnValuesToBeUnique(column="user_id"),
    ], ["user_id"])


def stg_events_suite() -> QualitySuite:
    """One row per event; event names are the known, lower-cased ones."""
    return make_suite("stg_raw__events", [
        columns_present(["user_id", "ts", "event_date", "event_name", "metadata_json"]),
        *_types("datetime64", "ts", "event_date"),
        *not_null("user_id", "ts", "event_date", "event_name"),
        gxe.ExpectColumnValuesToBeInSet(column="event_name", value_set=list(EVENT_NAMES)),
    ], ["user_id", "ts"])


def stg_fx_rates_suite() -> QualitySuite:
    """One row per currency per rate date, valid over [valid_from, valid_to)."""
    return make_suite("stg_raw__fx_rates", [
        columns_present(["currency", "valid_from", "valid_to", "rate_to_base"]),
        *_types("datetime64", "valid_from", "valid_to"),
        *_types("float64", "rate_to_base"),
        *not_null("currency", "valid_from", "valid_to", "rate_to_base"),
        gxe.ExpectColumnValuesToBeBetween(column="rate_to_base", min_value=0, strict_min=True),
        iso_currency(),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["currency", "valid_from"]),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="valid_to", column_B="valid_from",
                                                    or_equal=False),
    ], ["currency", "valid_from"])


STAGING_SUITES: dict[str, Callable[[], QualitySuite]] = {
    "stg_raw__transactions": stg_transactions_suite,
    "stg_raw__users": stg_users_suite,
    "stg_raw__events": stg_events_suite,
    "stg_raw__fx_rates": stg_fx_rates_suite,
}

# A line's columns as staging compares them (currency trimmed and upper-cased).
_LINE_SQL = ", ".join(
    {"currency": "upper(trim(currency))", "is_refund": "coalesce(is_refund, false)"}.get(c, c)
    for c in TRANSACTION_LINE_COLUMNS)

# Per staging model: its raw table and the rows its documented grain keeps from it.
STAGING_GRAIN: dict[str, tuple[str, str]] = {
    # a line loaded twice (same transaction_id and values) counts once; null ids all kept
    "stg_raw__transactions": ("transactions", f"""
        (select count(*) from raw.transactions where transaction_id is null)
        + (select count(*) from (select distinct {_LINE_SQL}
                                 from raw.transactions where transaction_id is not null))"""),
    # the last loaded row of a user wins
    "stg_raw__users": ("users", "select count(*) from (select distinct user_id from raw.users)"),
    "stg_raw__events": ("events", "select count(*) from raw.events"),
    # rows with a rate; a (date, currency) given twice keeps the last loaded row
    "stg_raw__fx_rates": ("fx_rates", """
        select count(*) from (select distinct cast("date" as date), upper(trim(currency))
                              from raw.fx_rates where rate_to_base is not null)"""),
}


def layer_counts_sql(model: str, schema: str = STAGING_SCHEMA) -> str:
    """One row: the raw table's rows, the rows the model's grain keeps, the model's rows."""
    raw, expected = STAGING_GRAIN[model]
    return f"""select *, raw_rows - expected_rows as deduplicated_rows from (
        select '{model}' as model, 'raw.{raw}' as raw_table,
            (select count(*) from raw.{raw}) as raw_rows,
            ({expected}) as expected_rows,
            (select count(*) from {schema}.{model}) as staging_rows)"""


def layer_row_counts(counts: pd.DataFrame | Iterable[Mapping[str, Any]]) -> QualityResult:
    """No row lost or invented between raw and staging: staging_rows = expected_rows (the
    grain's count from raw) and staging_rows <= raw_rows, for every model given."""
    frame = pd.DataFrame(list(counts) if not isinstance(counts, pd.DataFrame) else counts)
    for col in ("model", "raw_rows", "expected_rows", "staging_rows"):
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="float64")
    suite = gx.ExpectationSuite(name="raw_to_staging_row_counts", expectations=[
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *not_null("raw_rows", "expected_rows", "staging_rows"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="staging_rows", column_B="expected_rows"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="raw_rows", column_B="staging_rows",
                                                    or_equal=True),
    ])
    return run_suite(frame, QualitySuite(suite, ("model", "raw_table")))
