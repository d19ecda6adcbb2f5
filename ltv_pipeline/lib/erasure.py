"""Removing ids from each store under LTV_HOME, one function per store (no Dagster imports).

Each function takes the ids (validated by lib/privacy.validate_ids) and returns
{place: {user_id: rows removed}} for the places where it removed something. Ids only ever reach
SQL as bound parameters; table names come from the catalog and are quoted. Files are rewritten
atomically (a temporary file beside them, then os.replace): a crash leaves the old file or the
new one, never half of one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltv_pipeline.lib import files, warehouse

Removed = dict[str, dict[str, int]]
USER_COLUMN = "user_id"

# Base tables (views follow their tables) holding a user_id column, in every schema.
_TABLES_SQL = """
select c.table_schema, c.table_name
from information_schema.columns as c
join information_schema.tables as t
  on t.table_catalog = c.table_catalog and t.table_schema = c.table_schema
 and t.table_name = c.table_name
where c.column_name = 'user_id' and t.table_type = 'BASE TABLE'
  and c.table_catalog = current_database()
order by 1, 2
"""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def user_tables(con) -> list[tuple[str, str]]:
    """(schema, table) of every base table with a user_id column, found in the catalog."""
    return [tuple(r) for r in con.execute(_TABLES_SQL).fetchall()]


def erase_warehouse(path: Path, ids: list[str]) -> Removed:
    """Delete the ids' rows from every table with a user_id column (raw, quarantine, dbt's
    intermediate and marts tables, scores, ...) in ONE transaction, then checkpoint so the
    write-ahead log holds no copy either."""
    removed: Removed = {}
    if not Path(path).exists():
        return removed
    with warehouse.connect(path) as con:
        con.execute("create or replace temp table _erase (user_id varchar)")
        con.executemany("insert into _erase values (?)", [[u] for u in ids])
        con.execute("begin transaction")
        try:
            for schema, table in user_tables(con):
                name = f"{quote(schema)}.{quote(table)}"
                counts = con.execute(
                    f"select cast(user_id as varchar), count(*) from {name} "
                    "where cast(user_id as varchar) in (select user_id from _erase) group by 1"
                ).fetchall()
                if counts:
                    con.execute(f"delete from {name} where cast(user_id as varchar) in "
                                "(select user_id from _erase)")
                    removed[f"{schema}.{table}"] = {u: int(n) for u, n in counts}
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        con.execute("checkpoint")
    return removed


def _atomic_parquet(table: pa.Table, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_text(text: str, dest: Path) -> None:
    """Rewrite dest (an existing file) atomically, keeping its permission bits."""
    files.write_text_atomic(dest, text, mode=dest.stat().st_mode & 0o7777)


def _hits(column: pa.ChunkedArray, ids: list[str]) -> pa.Array:
    return pc.fill_null(pc.is_in(pc.cast(column, pa.string()), value_set=pa.array(ids, pa.string())), False)


def erase_parquet_rows(root: Path, ids: list[str]) -> Removed:
    """Rewrite every Parquet file under root (the Feast exports: data/<view>/<D>.parquet)
    without the ids' rows; files without them are not touched. Keys are paths under root."""
    removed: Removed = {}
    for path in sorted(Path(root).rglob("*.parquet")) if Path(root).is_dir() else []:
        if path.name.startswith("."):
            continue
        if USER_COLUMN not in pq.read_schema(path).names:
            continue
        hit = _hits(pq.read_table(path, columns=[USER_COLUMN]).column(USER_COLUMN), ids)
        if not pc.any(hit).as_py():
            continue
        table = pq.read_table(path)
        found = Counter(pc.filter(pc.cast(table.column(USER_COLUMN), pa.string()), hit).to_pylist())
        _atomic_parquet(table.filter(pc.invert(hit)), path)
        removed[str(path.relative_to(root))] = dict(found)
    return removed


def erase_online_store(home: Path, ids: list[str]) -> Removed:
    """Delete the ids' rows from every table of the SQLite online store (this repo's
    lib/online_sqlite store or Feast's own sqlite one: both key rows by Feast's
    serialize_entity_key, lib/online_store._entity_keys). Other online stores (Redis) are not
    handled here: nothing is configured to use one."""
    from ltv_pipeline.lib import feature_store, online_sqlite, online_store

    removed: Removed = {}
    if not (Path(home) / "feast" / "registry.db").exists():
        return removed
    store = feature_store.feature_store(Path(home))
    if store.config.online_store.type not in ("sqlite", online_sqlite.STORE_TYPE):
        raise RuntimeError(f"online store type {store.config.online_store.type!r}: erasure supports "
                           "the SQLite stores only; erase the ids there by hand")
    db = online_sqlite.db_path(store.config)
    if not db.exists():
        return removed
    views = store.list_feature_views()
    if not views:
        return removed
    keys = online_store._entity_keys(store, views[0], pa.table({USER_COLUMN: pa.array(ids, pa.string())}))
    con = sqlite3.connect(db, timeout=60)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
        with con:
            for table in tables:
                cols = {r[1] for r in con.execute(f"pragma table_info({quote(table)})")}
                if "entity_key" not in cols:
                    continue
                counts = {}
                for user, key in zip(ids, keys):
                    n = con.execute(f"delete from {quote(table)} where entity_key = ?", [key]).rowcount
                    if n:
                        counts[user] = n
                if counts:
                    removed[table] = counts
    finally:
        con.close()
    return removed


def erase_audience_exports(root: Path, ids: list[str]) -> Removed:
    """Rewrite exports/<D>/<audience>.{csv,parquet} without the ids' rows."""
    if not Path(root).is_dir():
        return {}
    removed = erase_parquet_rows(root, ids)
    for path in sorted(Path(root).rglob("*.csv")):
        frame = pd.read_csv(path, dtype={USER_COLUMN: str}, keep_default_na=False, na_values=[""])
        if USER_COLUMN not in frame.columns:
            continue
        hit = frame[USER_COLUMN].astype("string").isin(ids).fillna(False)
        if hit.any():
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            try:
                frame.loc[~hit].to_csv(tmp, index=False)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            removed[str(path.relative_to(root))] = dict(Counter(frame.loc[hit, USER_COLUMN]))
    return removed


def scrub(value: Any, ids: set[str], found: Counter) -> Any:
    """A JSON value without the ids: list items that are an id, or a record holding one as a
    field's value (a GX sample row {"user_id": ..., "_row": ...}), are dropped; any other string equal to an id
    becomes "[erased]". Counts what it removed per id in `found`."""
    if isinstance(value, dict):
        return {k: scrub(v, ids, found) for k, v in value.items()}
    if isinstance(value, list):
        kept = []
        for item in value:
            hit = _mentions(item, ids)
            if hit:
                found[hit] += 1
            else:
                kept.append(scrub(item, ids, found))
        return kept
    if isinstance(value, str) and value in ids:
        found[value] += 1
        return "[erased]"
    return value


def _mentions(item: Any, ids: set[str]) -> str | None:
    if isinstance(item, str):
        return item if item in ids else None
    if isinstance(item, dict):  # a flat record: a nested one is scrubbed field by field
        for v in item.values():
            if isinstance(v, str) and v in ids:
                return v
    return None


def scrub_quality_results(root: Path, ids: list[str]) -> Removed:
    """Great Expectations result files (quality/<check>/<run>.json) keep sample rows of
    failed expectations: remove the ids' samples (see scrub) and rewrite the file."""
    removed: Removed = {}
    wanted = set(ids)
    for path in sorted(Path(root).rglob("*.json")) if Path(root).is_dir() else []:
        text = path.read_text()
        if not any(u in text or json.dumps(u)[1:-1] in text for u in wanted):  # most hold none
            continue
        found: Counter = Counter()
        cleaned = scrub(json.loads(text), wanted, found)
        if found:
            _atomic_text(json.dumps(cleaned, indent=2), path)
            removed[str(path.relative_to(root))] = dict(found)
    return removed
