"""Reading a warehouse table (or a select) for a GX suite, cheaply and in one way for every
caller: the Dagster checks (defs/quality/factory.py) and the benchmark use this function.

Cost at 1M users (3.3M transactions, 6.9M events) is dominated by turning text into Python
objects, so text columns stay Arrow-backed (pandas' "string[pyarrow]": no Python object per
value; isnull, isin and duplicated run in Arrow), while numbers, booleans and timestamps become
NumPy columns as GX's vectorised code paths expect (an Arrow-backed float column sends
expect_column_values_to_be_between through a per-value Python loop). Only the columns the
suite reads are fetched; a column the suite only needs by name (the schema expectation) comes
as a typed null column, so its presence is still checked without reading its values.
"""

from __future__ import annotations

import re

import duckdb
import pandas as pd
import pyarrow as pa

from ltv_pipeline.lib.quality import QualitySuite, needed_columns

_SELECT = re.compile(r"\s*(select|with)\b", re.I)
_TEXT = pd.StringDtype("pyarrow")


def as_query(table_sql: str) -> str:
    """A table name ("raw.transactions") or a select statement, as a select statement."""
    return table_sql if _SELECT.match(table_sql) else f"select * from {table_sql}"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def named_only_columns(suite: QualitySuite) -> set[str]:
    """Columns the suite names only in a schema expectation (expect_table_columns_to_match_set):
    their presence matters, their values are never read."""
    named: set[str] = set()
    for e in suite.suite.expectations:
        kw = e.configuration.kwargs
        if e.configuration.type == "expect_table_columns_to_match_set":
            named.update(kw.get("column_set") or [])
    used = set(suite.sample_columns)
    for e in suite.suite.expectations:
        kw = e.configuration.kwargs
        used.update(kw[k] for k in ("column", "column_A", "column_B") if kw.get(k) is not None)
        used.update(kw.get("column_list") or [])
    return named - used


def read_frame(con: duckdb.DuckDBPyConnection, table_sql: str,
               suite: QualitySuite | None = None) -> pd.DataFrame:
    """The rows of table_sql that the suite reads (all columns without a suite)."""
    query = as_query(table_sql)
    if suite is not None:
        schema = con.sql(f"select * from ({query}) limit 0")
        types = dict(zip(schema.columns, schema.types))
        needed = needed_columns(suite)
        if needed is not None:
            by_name = named_only_columns(suite) if suite.derive is None else set()
            keep = [c for c in types if c in needed]
            if keep and (keep != list(types) or by_name & set(keep)):
                cols = [f"cast(null as {types[c]}) as {quote(c)}" if c in by_name else quote(c)
                        for c in keep]
                query = f"select {', '.join(cols)} from ({query})"
    return to_pandas(con.sql(query).to_arrow_table())


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Text Arrow-backed, the rest as DuckDB's .df() gives it for the checks' purposes: dates
    and timestamps datetime64[us], decimals float64, integers float64 when they hold nulls."""
    columns = {}
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_decimal(col.type):
            col = col.cast(pa.float64())
        elif pa.types.is_date(col.type):
            col = col.cast(pa.timestamp("us"))
        columns[name] = col
    if columns:
        table = pa.table(columns)
    text = {pa.string(): _TEXT, pa.large_string(): _TEXT, pa.string_view(): _TEXT}
    return table.to_pandas(types_mapper=text.get)
