"""lib/quality_read: the frame a GX suite sees from the warehouse. Text stays Arrow-backed, the
rest is typed as DuckDB's .df() types it (what the GX code paths and the leakage suites expect),
columns a suite only names come as typed nulls, and a suite reaches the same verdict, counts
and sample on this frame as on the .df() frame."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from ltv_pipeline.lib import quality
from ltv_pipeline.lib import quality_suites as qs
from ltv_pipeline.lib.quality_read import named_only_columns, read_frame


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute("""
        create table raw.transactions as select * from (values
            ('u1', timestamp '2024-01-01 10:00', 10.0, 't1', 'USD', false, 4.0, 'web', 'sku-1', 'US', 'b1', 1),
            ('u1', timestamp '2024-01-05 11:00', 5.0, 't2', 'EUR', true, null, null, null, null, 'b1', 2),
            ('u2', timestamp '2024-01-07 12:00', 7.5, 't3', 'USD', false, 3.0, 'app', null, null, 'b1', 3)
        ) t(user_id, ts, amount, transaction_id, currency, is_refund, variable_cost, channel, sku,
            country, _batch_id, _row)""")
    yield con
    con.close()


def test_text_is_arrow_backed_and_the_rest_typed_as_duckdb_types_it():
    con = duckdb.connect()
    frame = read_frame(con, """select * from (values
        ('a', date '2024-01-31', timestamp '2024-01-31 23:59:59', 1::bigint, 2.5::double, true,
         3.25::decimal(6, 2), 7::integer),
        (null, null, null, null, null, null, null, 8)) t(s, d, ts, i, f, b, dec, n)""")
    dtypes = {c: str(t) for c, t in frame.dtypes.items()}
    assert dtypes["s"] == "string" and frame["s"].dtype.storage == "pyarrow"
    assert dtypes["d"] == dtypes["ts"] == "datetime64[us]"
    assert dtypes["f"] == dtypes["dec"] == dtypes["i"] == "float64"  # nulls: NaN, not pd.NA
    assert dtypes["n"] == "int32"
    assert frame["d"].tolist()[0] == pd.Timestamp("2024-01-31")
    assert frame["dec"].tolist()[0] == 3.25 and frame.isna().sum().to_dict() == {
        "s": 1, "d": 1, "ts": 1, "i": 1, "f": 1, "b": 1, "dec": 1, "n": 0}


def test_only_the_columns_a_suite_reads_and_named_ones_as_typed_nulls(con):
    suite = qs.raw_users_suite()  # reads user_id; names signup_ts, country, ... only
    assert named_only_columns(suite) == {"signup_ts", "country", "device", "acquisition_source"}
    con.execute("""create table raw.users as select 'u1' as user_id, timestamp '2024-01-01' as signup_ts,
                   'US' as country, 'ios' as device, 'ads' as acquisition_source, 'b1' as _batch_id,
                   1 as _row""")
    frame = read_frame(con, "raw.users", suite)
    assert list(frame.columns) == ["user_id", "signup_ts", "country", "device", "acquisition_source", "_row"]
    assert frame["user_id"].tolist() == ["u1"]
    assert frame[["signup_ts", "country"]].isna().all().all()
    assert str(frame["signup_ts"].dtype) == "datetime64[us]"  # typed like the table's column
    assert quality.run_suite(frame, suite).success


def test_a_missing_column_still_fails_the_schema_expectation(con):
    con.execute("alter table raw.transactions drop column sku")
    result = quality.run_suite(read_frame(con, "raw.transactions", qs.raw_transactions_suite()),
                               qs.raw_transactions_suite())
    [failure] = result.failed
    assert failure.type == "expect_table_columns_to_match_set"
    assert failure.observed["mismatched"]["missing"] == ["sku"]


def test_same_verdict_counts_and_sample_as_on_the_duckdb_frame(con):
    con.execute("update raw.transactions set amount = -1 where _row = 3")
    con.execute("update raw.transactions set currency = 'usd' where _row = 2")
    con.execute("insert into raw.transactions select * replace (9 as _row) from raw.transactions "
                "where _row = 1")  # the same line again
    suite = qs.raw_transactions_suite()
    arrow = quality.run_suite(read_frame(con, "raw.transactions", suite), suite)
    plain = quality.run_suite(con.execute("select * from raw.transactions").df(), suite)
    assert not arrow.success
    assert arrow.to_dict()["failed"] == plain.to_dict()["failed"]
    assert {tuple(f.columns): f.unexpected_count for f in arrow.failed} == {
        ("amount",): 1, ("repeats_a_line",): 1, ("currency",): 1}


def test_a_select_and_a_derived_leakage_rule_read_through_it(con):
    """Suites with a derive step read the columns they name; presence-only columns are not
    replaced (the derive may read them)."""
    sql = """select user_id, date '2024-01-06' as cutoff_date, max(ts) as max_source_ts
             from raw.transactions group by user_id"""
    result = quality.run_suite(read_frame(con, sql, qs.history_leakage_suite()), qs.history_leakage_suite())
    [failure] = result.failed  # u2's 2024-01-07 purchase is after the cutoff's day
    assert failure.sample[0]["user_id"] == "u2"
    assert failure.sample[0]["max_source_ts"] == "2024-01-07T12:00:00"
