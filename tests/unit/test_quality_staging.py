"""lib/quality_staging: the staging suites pass on clean views and fail with the offending rows
on bad ones; the raw -> staging row accounting follows each model's documented grain."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import quality
from ltv_pipeline.lib import quality_staging as qst


def ts(values) -> pd.DatetimeIndex:
    return pd.to_datetime(values, format="ISO8601")


def us(values) -> np.ndarray:
    return np.array(values, dtype="datetime64[us]")


def stg_transactions() -> pd.DataFrame:
    return pd.DataFrame({
        "transaction_id": ["t1", "t1", None, None],  # a purchase and its refund share an id
        "user_id": ["u1", "u1", "u2", "u2"],
        "ts": ts(["2024-01-01 10:00", "2024-01-02 09:00", "2024-01-03", "2024-01-03"]),
        "transaction_date": ts(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-03"]),
        "currency": ["EUR", "EUR", "USD", "USD"],
        "is_refund": [False, True, False, False],
        "amount": [10.0, 10.0, 5.0, 5.0], "variable_cost": [4.0, None, 1.0, 1.0],
        "rate_to_base": [1.1, 1.1, 1.0, 1.0], "amount_base": [11.0, 11.0, 5.0, 5.0],
        "margin_base": [6.6, 11.0, 4.0, 4.0], "net_amount_base": [11.0, -11.0, 5.0, 5.0],
        "net_margin_base": [6.6, -11.0, 4.0, 4.0],
        "channel": None, "sku": None, "country": None,
        "_batch_id": "b1", "_row": [1, 2, 3, 4],
    })


def stg_users() -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["u1", "u2"], "signup_ts": ts(["2023-12-01 08:00", None]),
                         "signup_date": ts(["2023-12-01", None]), "country": None, "device": None,
                         "acquisition_source": None})


def stg_events() -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["u1", "u2"], "ts": ts(["2024-01-01 10:00", "2024-01-02"]),
                         "event_date": ts(["2024-01-01", "2024-01-02"]),
                         "event_name": ["session_start", "checkout_start"], "metadata_json": None})


def stg_fx_rates() -> pd.DataFrame:
    return pd.DataFrame({"currency": ["EUR", "EUR", "GBP"],
                         "valid_from": us(["2024-01-01", "2024-01-02", "2024-01-01"]),
                         # open-ended: 9999-12-31, past nanosecond range (the reader uses us)
                         "valid_to": us(["2024-01-02", "9999-12-31", "9999-12-31"]),
                         "rate_to_base": [1.1, 1.09, 1.3]})


CLEAN = {
    "stg_raw__transactions": stg_transactions,
    "stg_raw__users": stg_users,
    "stg_raw__events": stg_events,
    "stg_raw__fx_rates": stg_fx_rates,
}


@pytest.mark.parametrize("model", list(CLEAN))
def test_staging_suite_passes_on_a_clean_view(model):
    suite = qst.STAGING_SUITES[model]()
    result = quality.run_suite(CLEAN[model](), suite)
    assert result.success, result.summary()
    assert suite.name == model and result.evaluated == len(suite.suite.expectations)


def failures(frame: pd.DataFrame, model: str) -> dict[tuple[str, tuple[str, ...]], quality.FailedExpectation]:
    result = quality.run_suite(frame, qst.STAGING_SUITES[model]())
    assert not result.success
    return {(f.type, tuple(f.columns)): f for f in result.failed}


def test_transaction_without_rate_and_repeated_line_fail_with_their_rows():
    df = stg_transactions()
    df.loc[2, ["currency", "rate_to_base", "amount_base"]] = ["CHF", None, None]
    # t1's refund becomes its purchase line again: de-duplication failed
    df.loc[1, ["ts", "is_refund", "variable_cost"]] = [df.loc[0, "ts"], False, 4.0]
    failed = failures(df, "stg_raw__transactions")
    repeated = ("expect_column_values_to_be_in_set", ("repeats_a_line",))
    assert set(failed) == {
        ("expect_column_values_to_not_be_null", ("rate_to_base",)),
        ("expect_column_values_to_not_be_null", ("amount_base",)),
        repeated,
    }
    assert failed[("expect_column_values_to_not_be_null", ("amount_base",))].sample[0]["_row"] == 3
    assert failed[repeated].unexpected_count == 1
    assert [r["_row"] for r in failed[repeated].sample] == [2]


def test_a_second_line_of_a_transaction_is_no_duplicate():
    df = stg_transactions()
    df.loc[1, ["ts", "is_refund", "sku"]] = [df.loc[0, "ts"], False, "B"]
    assert quality.run_suite(df, qst.stg_transactions_suite()).success


def test_null_transaction_ids_are_never_duplicates_of_each_other():
    df = stg_transactions()
    assert df["transaction_id"].isna().sum() == 2 and df.loc[2:3, "is_refund"].eq(False).all()
    assert quality.run_suite(df, qst.stg_transactions_suite()).success


def test_text_timestamp_and_non_iso_currency_fail_types_and_allowed_values():
    df = stg_transactions()
    df["ts"] = df["ts"].astype(str)
    df.loc[0, "currency"] = "EURO"
    failed = failures(df, "stg_raw__transactions")
    assert set(failed) == {("expect_column_values_to_be_of_type", ("ts",)),
                           ("expect_column_values_to_be_in_set", ("currency",))}
    assert failed[("expect_column_values_to_be_in_set", ("currency",))].sample[0]["currency"] == "EURO"


def test_unknown_event_and_duplicate_user_fail():
    events = stg_events()
    events.loc[1, "event_name"] = "Checkout_Start"  # staging lower-cases; this one escaped
    [(kind, cols)] = failures(events, "stg_raw__events")
    assert (kind, cols) == ("expect_column_values_to_be_in_set", ("event_name",))
    users = stg_users()
    users.loc[1, "user_id"] = "u1"
    assert set(failures(users, "stg_raw__users")) == {("expect_column_values_to_be_unique", ("user_id",))}


def test_fx_interval_that_ends_before_it_starts_and_zero_rate_fail():
    df = stg_fx_rates()
    df.loc[0, "valid_to"] = pd.Timestamp("2024-01-01")  # empty interval [d, d)
    df.loc[2, "rate_to_base"] = 0.0
    failed = failures(df, "stg_raw__fx_rates")
    assert set(failed) == {
        ("expect_column_pair_values_a_to_be_greater_than_b", ("valid_to", "valid_from")),
        ("expect_column_values_to_be_between", ("rate_to_base",)),
    }
    assert failed[("expect_column_values_to_be_between", ("rate_to_base",))].sample[0]["currency"] == "GBP"


def counts(con: duckdb.DuckDBPyConnection, model: str) -> pd.DataFrame:
    return con.execute(qst.layer_counts_sql(model)).df()


@pytest.fixture
def con():
    """raw tables with duplicates that each staging model's grain removes, and staging views
    that follow the grain (as dbt's models do)."""
    con = duckdb.connect()
    con.execute("create schema raw; create schema staging")
    con.execute("""create table raw.transactions as select *, 'u1' as user_id,
            timestamp '2024-01-01' as ts, 'USD' as currency, null::double as variable_cost,
            null as channel, null as country from (values
        ('t1', false, 10.0, 'A', 1), ('t1', false, 10.0, 'A', 2), ('t1', false, 5.0, 'B', 3),
        ('t1', true, 10.0, 'A', 4), (null, false, 1.0, null, 5), (null, false, 1.0, null, 6),
        ('t2', null, 3.0, null, 7), ('t2', false, 3.0, null, 8))
        t(transaction_id, is_refund, amount, sku, _row)""")
    con.execute("""create table raw.users as select * from (values ('u1', 1), ('u1', 2), ('u2', 3))
                   t(user_id, _row)""")
    con.execute("create table raw.events as select range as _row from range(4)")
    con.execute("""create table raw.fx_rates as select * from (values
        (date '2024-01-01', 'EUR', 1.1), (date '2024-01-01', 'eur ', 1.2), (date '2024-01-02', 'EUR', null))
        t("date", currency, rate_to_base)""")
    con.execute("""create view staging.stg_raw__transactions as
        select * from raw.transactions qualify transaction_id is null
        or row_number() over (partition by transaction_id, user_id, ts, amount, currency,
            coalesce(is_refund, false), variable_cost, channel, sku, country order by _row) = 1""")
    con.execute("create view staging.stg_raw__users as select distinct user_id from raw.users")
    con.execute("create view staging.stg_raw__events as select * from raw.events")
    con.execute("""create view staging.stg_raw__fx_rates as select distinct "date", upper(trim(currency))
                   from raw.fx_rates where rate_to_base is not null""")
    yield con
    con.close()


def test_row_accounting_follows_each_documented_grain(con):
    frame = pd.concat([counts(con, m) for m in qst.STAGING_GRAIN], ignore_index=True)
    got = frame.set_index("model")[["raw_rows", "expected_rows", "staging_rows", "deduplicated_rows"]]
    # t1's line A twice (its line B and its refund stay), t2's null is_refund is false
    assert got.loc["stg_raw__transactions"].tolist() == [8, 6, 6, 2]
    assert got.loc["stg_raw__users"].tolist() == [3, 2, 2, 1]
    assert got.loc["stg_raw__events"].tolist() == [4, 4, 4, 0]
    assert got.loc["stg_raw__fx_rates"].tolist() == [3, 1, 1, 2]  # 'eur ' is EUR; null rate out
    assert qst.layer_row_counts(frame).success


def test_a_view_that_loses_or_invents_rows_fails_the_accounting(con):
    con.execute("create or replace view staging.stg_raw__events as select * from raw.events where _row > 0")
    con.execute("""create or replace view staging.stg_raw__users as
                   select u.user_id from raw.users u join raw.users v using (user_id)""")
    frame = pd.concat([counts(con, m) for m in qst.STAGING_GRAIN], ignore_index=True)
    result = qst.layer_row_counts(frame)
    failed = {tuple(f.columns): f for f in result.failed}
    assert set(failed) == {("staging_rows", "expected_rows"), ("raw_rows", "staging_rows")}
    assert {r["model"] for r in failed[("staging_rows", "expected_rows")].sample} == {
        "stg_raw__events", "stg_raw__users"}
    assert [r["model"] for r in failed[("raw_rows", "staging_rows")].sample] == ["stg_raw__users"]


def test_row_accounting_without_counts_fails():
    assert [f.type for f in qst.layer_row_counts([]).failed] == ["expect_table_row_count_to_be_between"]
