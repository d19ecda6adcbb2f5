"""The DuckDB warehouse: raw and quarantine schemas, atomic loads, the load log.

Connections are opened in a with-block and closed before dbt runs (PITFALLS.md: any open
connection in this process makes a dbt subprocess fail to lock the file).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from ltv_pipeline import settings
from ltv_pipeline.lib.schema import CONTRACTS

SQL_TYPES = {
    "id": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "string": "VARCHAR",
}
# Every raw row carries the batch that loaded it and its 1-based row number in the file.
LINEAGE_COLUMNS = {"_batch_id": "VARCHAR", "_row": "BIGINT"}


def raw_ddl(table: str) -> str:
    cols = {c: SQL_TYPES[t] for c, t in CONTRACTS[table].columns.items()} | LINEAGE_COLUMNS
    body = ", ".join(f"{c} {t}" for c, t in cols.items())
    return f"create table if not exists raw.{table} ({body})"


def quarantine_ddl(table: str) -> str:
    """Quarantined rows are kept as given (text), with the reason they were rejected."""
    cols = [*CONTRACTS[table].columns, *LINEAGE_COLUMNS]
    body = ", ".join(f"{c} {'BIGINT' if c == '_row' else 'VARCHAR'}" for c in cols)
    return f"create table if not exists quarantine.{table} ({body}, reason VARCHAR)"


LOAD_LOG_DDL = """
create table if not exists raw.load_batches (
    batch_id VARCHAR, source VARCHAR, loaded_at TIMESTAMP, table_name VARCHAR,
    file VARCHAR, rows_in_file BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT
)"""


@contextlib.contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that is always closed when the block ends."""
    if read_only and not Path(path).exists():
        raise FileNotFoundError(f"no warehouse at {path}: run `ltv demo` first")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        # SET, not connect(config=...): a config differing from another open connection's to
        # the same file is refused; the setting is the database instance's either way.
        con.execute(f"set memory_limit = '{settings.duckdb_memory_limit()}'")
        yield con
    finally:
        con.close()


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether the table `table` ("schema.name") exists."""
    schema, name = table.split(".")
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? "
                            "and table_name = ?", [schema, name]).fetchone()[0])


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists quarantine")
    con.execute(LOAD_LOG_DDL)
    for table in CONTRACTS:
        con.execute(raw_ddl(table))
        con.execute(quarantine_ddl(table))


@dataclass(frozen=True)
class TableLoad:
    """One table of a batch: clean rows for raw, rejected rows (with reason) for quarantine."""

    table: str
    file: str | None
    rows_in_file: int
    clean: pd.DataFrame
    quarantined: pd.DataFrame


def replace_raw_tables(path: Path, batch_id: str, source: str, loads: list[TableLoad]) -> None:
    """Replace the raw and quarantine tables of every given table in ONE transaction and log
    the batch. On any error the transaction rolls back: the warehouse stays as it was."""
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    with connect(path) as con:
        ensure_schemas(con)
        con.execute("begin transaction")
        try:
            for load in loads:
                _replace(con, "raw", load.table, load.clean, batch_id)
                _replace(con, "quarantine", load.table, load.quarantined, batch_id)
                con.execute(
                    "insert into raw.load_batches values (?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch_id, source, loaded_at, load.table, load.file, load.rows_in_file,
                     len(load.clean), len(load.quarantined)],
                )
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise


def _replace(con, schema: str, table: str, df: pd.DataFrame, batch_id: str) -> None:
    cols = [*CONTRACTS[table].columns, *LINEAGE_COLUMNS]
    if schema == "quarantine":
        cols.append("reason")
    frame = df.copy()
    frame["_batch_id"] = batch_id
    for c in cols:
        if c not in frame.columns:
            frame[c] = None
    con.register("_incoming", frame[cols])
    try:
        con.execute(f"delete from {schema}.{table}")
        con.execute(f"insert into {schema}.{table} by name select * from _incoming")
    finally:
        con.unregister("_incoming")


def table_counts(path: Path, schema: str = "raw") -> dict[str, int]:
    with connect(path, read_only=True) as con:
        return {
            t: con.execute(f"select count(*) from {schema}.{t}").fetchone()[0] for t in CONTRACTS
        }
