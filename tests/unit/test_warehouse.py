"""Atomic replacement of the raw tables and the load log."""

from __future__ import annotations

import pandas as pd
import pytest

from ltv_pipeline.lib import warehouse
from ltv_pipeline.lib.warehouse import TableLoad


def load(table: str, frame: pd.DataFrame) -> TableLoad:
    empty = pd.DataFrame(columns=[*frame.columns, "reason"])
    return TableLoad(table, f"{table}.csv", len(frame), frame, empty)


def tx(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"user_id": [f"u{i}" for i in range(n)], "ts": pd.Timestamp("2025-01-01"), "amount": 1.0}
    )


def test_replace_writes_rows_and_logs_the_batch(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.replace_raw_tables(db, "b1", "test", [load("transactions", tx(3))])
    warehouse.replace_raw_tables(db, "b2", "test", [load("transactions", tx(5))])
    assert warehouse.table_counts(db)["transactions"] == 5  # replaced, not appended
    with warehouse.connect(db, read_only=True) as con:
        batches = con.execute(
            "select batch_id, rows_loaded from raw.load_batches order by loaded_at, batch_id"
        ).fetchall()
        assert con.execute("select distinct _batch_id from raw.transactions").fetchall() == [("b2",)]
    assert batches == [("b1", 3), ("b2", 5)]


def test_failed_load_leaves_previous_tables_untouched(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.replace_raw_tables(db, "b1", "test", [load("transactions", tx(3))])
    bad_users = pd.DataFrame({"user_id": ["x"], "signup_ts": ["not a timestamp"]})
    with pytest.raises(Exception):
        warehouse.replace_raw_tables(
            db, "b2", "test", [load("transactions", tx(7)), load("users", bad_users)]
        )
    assert warehouse.table_counts(db)["transactions"] == 3
    with warehouse.connect(db, read_only=True) as con:
        assert con.execute("select count(*) from raw.load_batches").fetchone()[0] == 1


def test_read_only_connect_to_missing_warehouse_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `ltv demo` first"):
        with warehouse.connect(tmp_path / "missing.duckdb", read_only=True):
            pass


def test_warehouse_connections_have_the_configured_duckdb_memory_limit(tmp_path, monkeypatch):
    import duckdb

    from ltv_pipeline.lib import warehouse

    db = tmp_path / "w.duckdb"
    monkeypatch.delenv("LTV_DUCKDB_MEMORY_LIMIT", raising=False)
    with duckdb.connect() as ref:  # the default: half the machine's RAM, as DuckDB sizes it
        half = ref.execute("set memory_limit = '50%'; select current_setting('memory_limit')").fetchone()[0]
        unlimited = ref.execute("reset memory_limit; select current_setting('memory_limit')").fetchone()[0]
    assert half != unlimited
    with warehouse.connect(db) as con:
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == half
    monkeypatch.setenv("LTV_DUCKDB_MEMORY_LIMIT", "1GB")
    raw = duckdb.connect(str(db))  # a plain connection open at the same time is no conflict
    try:
        with warehouse.connect(db) as con:
            assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "953.6 MiB"
    finally:
        raw.close()
