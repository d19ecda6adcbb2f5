"""The Feast online store (no Dagster imports): materialize one cutoff, read a service's features.

Writing. Feast 0.67's SQLite store (SqliteOnlineStore.online_write_batch) converts a frame to
protos value by value and upserts every (user, feature) row with its own execute call: about
80 s per 100k users for this repo's 63 fields. write_view writes the very same rows into the
very same table (<project>_<view>: entity_key, feature_name, value, value_text, event_ts,
created_ts; primary key (entity_key, feature_name)) with Feast's own helpers
(python_values_to_proto_values, serialize_entity_key, extract_text_and_num and the sqlite3
datetime adapter Feast registers), but
  - serializes each distinct value of a column once (a column of a million counts holds a few
    hundred distinct values), and
  - hands SQLite one wide row per user (key + every feature's bytes) in a temporary table and
    lets one INSERT ... SELECT unpivot it into Feast's (user, feature) rows in C, in key order,
    one transaction per chunk of users.
Reads are Feast's own (store.get_online_features); tests/unit/test_online_store.py checks they
return the same values after write_view as after store.write_to_online_store. Stores other than
SQLite (Redis) get Feast's own writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureService, FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id, extract_text_and_num
from feast.infra.online_stores.sqlite import SqliteOnlineStore  # registers Feast's sqlite3 adapters
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.type_map import python_values_to_proto_values
from feast.utils import _coerce_datetime, to_naive_utc

from ltv_pipeline.lib.feature_store import (
    JOIN_KEY,
    LTV_MODEL_SERVICE,
    TIMESTAMP,
    _check_markers,
    cutoff_file,
    cutoff_timestamp,
    service_plan,
)

USERS_PER_TRANSACTION = 100_000
FEAST_WRITE_CHUNK = 10_000
# The columns of Feast's SQLite table when neither vector search nor value_num is enabled.
FEAST_COLUMNS = {"entity_key", "feature_name", "value", "value_text", "vector_value", "event_ts", "created_ts"}


def materialize_online(store: FeatureStore, as_of: date | str) -> dict[str, int]:
    """Write the rows of cutoff `as_of` of every feature view into the online store, reading only
    that cutoff's export file (an upsert per user; users absent from that cutoff keep what they
    had, and online_features reports their older cutoff). Returns rows written per view. Raises
    ValueError when a view's export has no file or no row for the cutoff."""
    expected = cutoff_timestamp(as_of)
    written: dict[str, int] = {}
    for view in store.list_feature_views():
        path = cutoff_file(Path(store.config.repo_path) / view.batch_source.path, as_of)
        if not path.is_file():
            raise ValueError(f"{path} does not exist: cutoff {as_of} was not exported; build it "
                             "with dbt and export it (feature_store.export_cutoffs)")
        table = pq.read_table(path)
        if table.num_rows == 0:
            raise ValueError(f"{path} has no row for cutoff {as_of}: build that cutoff and re-export")
        stamps = [pd.Timestamp(t) for t in table.column(TIMESTAMP).unique().to_pylist()]
        if stamps != [expected]:
            raise ValueError(f"{path} holds event timestamps {stamps[:3]}, not only {expected}")
        write_view(store, view, table)
        written[view.name] = table.num_rows
    return written


def fast_write_supported(store: FeatureStore) -> bool:
    """Whether write_view's SQLite path applies (plain SQLite store, no vector or value_num)."""
    online = store.config.online_store
    return (online.type == "sqlite" and not getattr(online, "vector_enabled", False)
            and not getattr(online, "enable_openai_compatible_store", False))


def feast_write(store: FeatureStore, view: FeatureView, table: pa.Table) -> None:
    """Feast's own writer (store.write_to_online_store), in chunks that bound its memory."""
    for start in range(0, table.num_rows, FEAST_WRITE_CHUNK):
        store.write_to_online_store(view.name, table.slice(start, FEAST_WRITE_CHUNK).to_pandas())


def write_view(store: FeatureStore, view: FeatureView, table: pa.Table,
               users_per_transaction: int = USERS_PER_TRANSACTION) -> None:
    """Upsert `table` (rows of the view's export) into the online store: the rows Feast's
    writer would write, much faster on SQLite (see the module docstring)."""
    if not fast_write_supported(store):
        feast_write(store, view, table)
        return
    names = sorted(f.name for f in view.features)  # the order of Feast's primary key
    dtypes = {f.name: f.dtype.to_value_type() for f in view.features}
    keys = _entity_keys(store, view, table)
    order = np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)
    # per column: (distinct values as Feast stores them, code of each row in key order)
    columns = [(np.array(keys, dtype=object), order)]
    columns += [_distinct(table.column(c).to_numpy(zero_copy_only=False), _stored_time, order) if c
                else (np.array([None], dtype=object), np.zeros(len(order), dtype=np.int64))
                for c in (view.batch_source.timestamp_field, view.batch_source.created_timestamp_column)]
    for name in names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        blobs, codes = _distinct(values, lambda u, t=dtypes[name]: python_values_to_proto_values(u, t), order)
        columns += [(np.array([b.SerializeToString() for b in blobs], dtype=object), codes),
                    (np.array([extract_text_and_num(b, False)[0] for b in blobs], dtype=object), codes)]
    path = SqliteOnlineStore._get_db_path(store.config)
    con = sqlite3.connect(path, timeout=60)
    try:
        table_id = compute_table_id(store.project, view, store.config.registry.enable_online_feature_view_versioning)
        _write(con, table_id, names, columns, users_per_transaction)
    finally:
        con.close()


def _entity_keys(store: FeatureStore, view: FeatureView, table: pa.Table) -> list[bytes]:
    """Feast's serialized entity key per row, built as its writer builds them."""
    join_keys = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
    protos = {k: python_values_to_proto_values(table.column(k).to_numpy(zero_copy_only=False), t)
              for k, t in join_keys.items()}
    version = store.config.entity_key_serialization_version
    names = list(join_keys)
    return [serialize_entity_key(EntityKeyProto(join_keys=names, entity_values=[protos[k][i] for k in names]),
                                 entity_key_serialization_version=version)
            for i in range(table.num_rows)]


def _stored_time(stamps: np.ndarray) -> list[object]:
    """A timestamp column's values as Feast's writer binds them (its sqlite3 adapter)."""
    return [sqlite3.adapt(to_naive_utc(_coerce_datetime(t))) for t in pd.to_datetime(stamps)]


def _distinct(values: np.ndarray, convert, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """convert() applied to the distinct values only (compared by bit pattern for numbers and
    times, so -0.0 and 0.0 or two NaN payloads stay apart, nulls included), and each row's code
    into the result, rows taken in `order`."""
    if values.dtype.kind in "fmM":
        codes, bits = pd.factorize(values.view(np.int64), use_na_sentinel=False)
        uniques = bits.view(values.dtype)
    else:  # objects: pandas would turn a None into NaN; keep the array's own null value
        codes, found = pd.factorize(values)
        uniques = np.empty(len(found) + 1, dtype=values.dtype)
        uniques[:-1] = found
        null = codes < 0
        if null.any():
            uniques[-1] = values[np.flatnonzero(null)[0]]
            codes[null] = len(found)
        else:
            uniques = uniques[:-1]
    return np.array(convert(uniques), dtype=object), codes[order]


def _write(con: sqlite3.Connection, table: str, names: list[str],
           columns: list[tuple[np.ndarray, np.ndarray]], users_per_transaction: int) -> None:
    """Stage wide rows (key, event_ts, created_ts, value and text per feature) and unpivot them
    into Feast's table with Feast's upsert, one transaction per chunk of users."""
    quoted = '"' + table.replace('"', '""') + '"'
    found = {r[1] for r in con.execute(f"pragma table_info({quoted})")}
    if found != FEAST_COLUMNS:
        raise RuntimeError(f"online table {table} has columns {sorted(found)}, not Feast's "
                           f"{sorted(FEAST_COLUMNS)}: apply the repo (the feast_registry asset)")
    # The online store is rebuilt from the exports: a power cut mid-write costs a re-run.
    con.execute("pragma synchronous = off")
    con.execute("pragma cache_size = -262144")
    con.execute("pragma temp_store = memory")
    slots = ", ".join(f"v{i} blob, t{i} text" for i in range(len(names)))
    con.execute(f"create temp table feast_stage (ek blob, ts, cts, {slots})")
    con.execute("create temp table feast_names (i integer primary key, name text)")
    con.executemany("insert into temp.feast_names values (?, ?)", list(enumerate(names)))
    pick = {kind: "case f.i " + " ".join(f"when {i} then s.{kind}{i}" for i in range(len(names))) + " end"
            for kind in ("v", "t")}
    # CROSS JOIN keeps the stage outside, so rows arrive in primary-key order
    unpivot = (f"insert into {quoted} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
               f"select s.ek, f.name, {pick['v']}, {pick['t']}, s.ts, s.cts "
               "from temp.feast_stage as s cross join temp.feast_names as f where true "
               "on conflict(entity_key, feature_name) do update set value = excluded.value, "
               "value_text = excluded.value_text, event_ts = excluded.event_ts, created_ts = excluded.created_ts")
    insert = f"insert into temp.feast_stage values ({', '.join('?' * len(columns))})"
    try:
        for start in range(0, len(columns[0][1]), users_per_transaction):
            chunk = [lookup[codes[start:start + users_per_transaction]] for lookup, codes in columns]
            with con:
                con.executemany(insert, zip(*chunk))
                con.execute(unpivot)
                con.execute("delete from temp.feast_stage")
    finally:
        con.execute("drop table if exists temp.feast_stage")
        con.execute("drop table if exists temp.feast_names")


def online_features(store: FeatureStore, user_ids: Iterable[str],
                    service: str | FeatureService = LTV_MODEL_SERVICE,
                    as_of: date | str | None = None) -> pd.DataFrame:
    """The service's features from the online store: one row per user id, in order, typed as
    in feature_store.training_frame, with the cutoff marker column(s) saying which cutoff the
    values are of (null: the user is not in the online store). With as_of, raises
    StaleFeaturesError when a user's online row is of another cutoff."""
    ids = [str(u) for u in user_ids]
    plan = service_plan(store, service)
    rows = store.get_online_features(features=list(plan.refs), entity_rows=[{JOIN_KEY: u} for u in ids]).to_dict()
    columns: dict[str, object] = {JOIN_KEY: ids}
    for name in plan.names:
        values, kind = rows[name], plan.kinds[name]
        if kind == "num":
            columns[name] = np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
        elif kind == "ts":
            columns[name] = pd.to_datetime(values, utc=True)
        else:
            columns[name] = np.array(values, dtype=object)
    frame = pd.DataFrame(columns)
    if as_of is not None:
        _check_markers(frame, plan.markers, pd.Timestamp(as_of).strftime("%Y-%m-%d"),
                       f"materialize the online store as of {as_of} (the online_features asset)")
    return frame
