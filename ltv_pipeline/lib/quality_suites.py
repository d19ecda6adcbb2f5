"""The code-defined GX suites: raw tables, dbt marts, and the leakage gates of the time rule.

Time rule (DESIGN.md): for a cutoff D, history is ts < D + 1 day and the label window of
horizon H is [D + 1 day, D + 1 day + H days). The leakage suites derive those bounds as columns
and compare with GX column-pair expectations, so each offending row comes back with its keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pandas as pd

from ltv_pipeline.lib.currencies import ISO_4217_CODES
from ltv_pipeline.lib.quality import QualitySuite, gx, gxe
from ltv_pipeline.lib.schema import CONTRACTS, EVENT_NAMES
from ltv_pipeline.lib.validation import shared_transaction_ids

MART_KEYS = ("user_id", "cutoff_date")
ONE_DAY = pd.Timedelta(days=1)
# Counts in customer_features that can never be negative (the mart's yml lists more).
FEATURE_COUNT_COLUMNS = ("n_orders", "n_purchase_days", "frequency", "n_refunds", "n_events")


def make_suite(name: str, expectations: Sequence, sample_columns: Iterable[str] = (),
           derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> QualitySuite:
    return QualitySuite(gx.ExpectationSuite(name=name, expectations=list(expectations)),
                        tuple(sample_columns), derive)


def columns_present(columns: Iterable[str]):
    return gxe.ExpectTableColumnsToMatchSet(column_set=list(columns), exact_match=False)


def not_null(*columns: str) -> list:
    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def at_least(value: float, *columns: str) -> list:
    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=value) for c in columns]


def iso_currency(column: str = "currency"):
    """The contract's currency rule: an ISO 4217 code, upper case (an in-set test: stricter
    than the three-letter pattern it replaced, and ~25x cheaper than GX's regex, which turns
    every value into a Python string first)."""
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=sorted(ISO_4217_CODES))


# --- raw tables (the input contract, as loaded) -------------------------------------------


def raw_transactions_suite() -> QualitySuite:
    return make_suite("raw_transactions", [
        columns_present(CONTRACTS["transactions"].columns),
        *not_null("user_id", "ts", "amount", "currency", "is_refund"),
        gxe.ExpectColumnValuesToBeInSet(column="repeats_a_line", value_set=[False]),
        *at_least(0, "amount", "variable_cost"),
        iso_currency(),
        gxe.ExpectColumnValuesToBeInSet(column="is_refund", value_set=[True, False]),
    ], ("_row", "transaction_id", "user_id"), repeated_lines)


def repeated_lines(frame: pd.DataFrame) -> pd.DataFrame:
    """repeats_a_line: the row equals an earlier row with its transaction_id in every contract
    column (rows sharing an id are otherwise lines of one transaction: lib/validation)."""
    frame["repeats_a_line"] = shared_transaction_ids(frame)[0]
    return frame


def raw_users_suite() -> QualitySuite:
    return make_suite("raw_users", [
        columns_present(CONTRACTS["users"].columns),
        *not_null("user_id"),
        gxe.ExpectColumnValuesToBeUnique(column="user_id"),
    ], ("_row", "user_id"))


def raw_events_suite() -> QualitySuite:
    return make_suite("raw_events", [
        columns_present(CONTRACTS["events"].columns),
        *not_null("user_id", "ts", "event_name"),
        gxe.ExpectColumnValuesToBeInSet(column="event_name", value_set=list(EVENT_NAMES)),
    ], ("_row", "user_id", "ts"))


def fx_rates_suite() -> QualitySuite:
    return make_suite("fx_rates", [
        columns_present(CONTRACTS["fx_rates"].columns),
        *not_null("date", "currency", "rate_to_base"),
        gxe.ExpectColumnValuesToBeBetween(column="rate_to_base", min_value=0, strict_min=True),
        iso_currency(),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "currency"]),
    ], ("_row", "date", "currency"))


RAW_SUITES: dict[str, Callable[[], QualitySuite]] = {
    "transactions": raw_transactions_suite,
    "users": raw_users_suite,
    "events": raw_events_suite,
    "fx_rates": fx_rates_suite,
}


# --- marts (dbt_project/models/marts) -----------------------------------------------------


def customer_features_suite(count_columns: Sequence[str] = FEATURE_COUNT_COLUMNS) -> QualitySuite:
    """One row per user per cutoff; counts never negative."""
    return make_suite("customer_features", [
        columns_present([*MART_KEYS, "max_source_ts", *count_columns]),
        *not_null(*MART_KEYS),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=list(MART_KEYS)),
        *at_least(0, *count_columns),
    ], MART_KEYS)


def customer_btyd_summary_suite() -> QualitySuite:
    """lifetimes' summary: frequency, recency >= 0, recency <= T, monetary_value >= 0."""
    cols = ("frequency", "recency", "T", "monetary_value")
    return make_suite("customer_btyd_summary", [
        columns_present([*MART_KEYS, *cols, "max_source_ts"]),
        *not_null(*MART_KEYS, *cols),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=list(MART_KEYS)),
        *at_least(0, *cols),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="T", column_B="recency", or_equal=True),
    ], MART_KEYS)


def customer_labels_suite() -> QualitySuite:
    """One row per user per cutoff per horizon; H >= 1 day, counts never negative."""
    keys = [*MART_KEYS, "horizon_days"]
    return make_suite("customer_labels", [
        columns_present([*keys, "value", "margin", "n_orders"]),
        *not_null(*keys, "value", "margin", "n_orders"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=keys),
        *at_least(1, "horizon_days"),
        *at_least(0, "n_orders"),
    ], keys)


def cohort_revenue_suite(
    count_columns: Sequence[str] = ("n_active_users", "n_purchasing_users", "n_orders", "n_refunds"),
) -> QualitySuite:
    """One row per cohort month per activity date; counts never negative."""
    keys = ["cohort_month", "activity_date"]
    return make_suite("cohort_revenue", [
        columns_present([*keys, "revenue", *count_columns]),
        *not_null(*keys),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=keys),
        *at_least(0, *count_columns),
    ], keys)


# --- leakage: the time rule --------------------------------------------------------------


def _as_datetime(frame: pd.DataFrame, *columns: str) -> None:
    for c in columns:
        if c in frame.columns:
            frame[c] = pd.to_datetime(frame[c])


def history_leakage_suite(name: str = "history_leakage", ts_column: str = "max_source_ts") -> QualitySuite:
    """Every row (features or BTYD summary) used only history: ts_column < cutoff_date + 1 day.

    history_end = cutoff_date + 1 day is derived, then GX checks history_end > ts_column."""

    def derive(f: pd.DataFrame) -> pd.DataFrame:
        _as_datetime(f, "cutoff_date", ts_column)
        f["history_end"] = f["cutoff_date"].dt.normalize() + ONE_DAY
        return f

    return make_suite(name, [
        *not_null("cutoff_date", ts_column),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="history_end", column_B=ts_column, or_equal=False,
            ignore_row_if="either_value_is_missing",
        ),
    ], MART_KEYS, derive)


def label_window_suite(
    name: str = "label_window",
    min_ts: str = "label_min_ts",
    max_ts: str = "label_max_ts",
    declared_window: tuple[str, str] | None = ("label_start_date", "label_end_date"),
) -> QualitySuite:
    """Every label row lies in its window [cutoff + 1 day, cutoff + 1 day + H days): the
    earliest and latest transaction counted (null when none), and the declared window columns
    when the mart has them (declared_window=None to skip)."""

    def derive(f: pd.DataFrame) -> pd.DataFrame:
        _as_datetime(f, "cutoff_date", min_ts, max_ts, *(declared_window or ()))
        f["window_start"] = f["cutoff_date"].dt.normalize() + ONE_DAY
        f["window_end"] = f["window_start"] + pd.to_timedelta(f["horizon_days"], unit="D")
        return f

    def pair(a: str, b: str, or_equal: bool):
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=a, column_B=b, or_equal=or_equal, ignore_row_if="either_value_is_missing")

    exps = [
        *not_null("cutoff_date", "horizon_days"),
        pair(min_ts, "window_start", or_equal=True),
        pair("window_end", max_ts, or_equal=False),
    ]
    if declared_window:
        start, end = declared_window
        exps += [
            gxe.ExpectColumnPairValuesToBeEqual(column_A=start, column_B="window_start"),
            gxe.ExpectColumnPairValuesToBeEqual(column_A=end, column_B="window_end"),
        ]
    return make_suite(name, exps, [*MART_KEYS, "horizon_days"], derive)


def training_window_suite(scoring_date, name: str = "training_window") -> QualitySuite:
    """No training cutoff's label window passes the scoring date S: the window
    [D + 1 day, D + 1 day + H days) must end by S + 1 day (the end of what is known at S).
    The frame has one row per training example or per (cutoff_date, horizon_days)."""
    known_end = pd.Timestamp(scoring_date).normalize() + ONE_DAY

    def derive(f: pd.DataFrame) -> pd.DataFrame:
        _as_datetime(f, "cutoff_date")
        f["label_window_end"] = (
            f["cutoff_date"].dt.normalize() + ONE_DAY + pd.to_timedelta(f["horizon_days"], unit="D")
        )
        f["known_end"] = known_end
        return f

    return make_suite(name, [
        *not_null("cutoff_date", "horizon_days"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="known_end", column_B="label_window_end", or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
    ], ["cutoff_date", "horizon_days", "user_id"], derive)
