"""A Feast online store on SQLite with one row per (entity, feature view) (no Dagster imports).

feature_store.yaml selects it with `online_store: type: ltv_pipeline.lib.online_sqlite.
WideSqliteOnlineStore`; Feast imports this module itself, so Feast is imported at the top here
and the Dagster definitions never import this module.

Why. Feast's SQLite store keeps one row per (entity key, feature): 55 million B-tree rows for
a million customers of this repo's 55-feature view, about 140 s of SQLite work to upsert even
when the rows are built in C. Here a view's table <project>_<view> holds one row per entity key:

    entity_key blob primary key   Feast's serialize_entity_key (as in Feast's SQLite store)
    event_ts integer              microseconds since the epoch, UTC
    created_ts integer            idem, or null
    vals blob                     a serialized RepeatedValue: the view's ValueProtos, in layout order

(a WITHOUT ROWID table: the key B-tree holds the row). The layout (the view's feature names,
sorted) is stored in ltv_online_layout; `feast apply` (update) creates the tables, and drops
and recreates a table whose view's features changed (the store is rebuilt from the exports).

Feast's store.get_online_features, write_to_online_store and materialize use online_read and
online_write_batch as with any store. write_table is the bulk path from a cutoff's Arrow export
(lib/online_store.write_view): entity keys and blobs built column-wise (lib/online_codec), rows
upserted in key order, one transaction per chunk of entities. Upsert semantics are Feast's: a
written entity's row is replaced, other entities keep theirs. The journal is SQLite's default
(rollback): a reader waits (busy timeout 60 s) while a chunk commits, about a second; WAL would
not block readers but doubled the 1M-user write time here.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from feast import Entity
from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import RepeatedValue
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.utils import to_naive_utc
from pydantic import StrictStr

from ltv_pipeline.lib import online_codec

STORE_TYPE = "ltv_pipeline.lib.online_sqlite.WideSqliteOnlineStore"
LAYOUT_TABLE = "ltv_online_layout"
COLUMNS = {"entity_key", "event_ts", "created_ts", "vals"}
ROWS_PER_TRANSACTION = 100_000
READ_BATCH = 900  # bound parameters per SELECT
EPOCH = datetime(1970, 1, 1)
log = logging.getLogger(__name__)


class WideSqliteOnlineStoreConfig(FeastConfigBaseModel):
    """Config of WideSqliteOnlineStore: the SQLite file (relative paths resolve against the
    repo path, as for Feast's sqlite store)."""

    type: Literal["ltv_pipeline.lib.online_sqlite.WideSqliteOnlineStore"] = STORE_TYPE
    path: StrictStr = "data/online_store.db"


def db_path(config: RepoConfig) -> Path:
    path = Path(config.online_store.path)
    return path if path.is_absolute() or not config.repo_path else Path(config.repo_path) / path


def table_name(config: RepoConfig, view: FeatureView) -> str:
    return compute_table_id(config.project, view, config.registry.enable_online_feature_view_versioning)


def layout_of(view: FeatureView) -> list[str]:
    """The order of a view's values in a row blob."""
    return sorted(f.name for f in view.features)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _micros(stamp: datetime | None) -> int | None:
    if stamp is None:
        return None
    return (to_naive_utc(stamp) - EPOCH) // timedelta(microseconds=1)


def _stamp(micros: int | None) -> datetime | None:
    return None if micros is None else (EPOCH + timedelta(microseconds=micros)).replace(tzinfo=timezone.utc)


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60, check_same_thread=False)
    con.execute(f"create table if not exists {LAYOUT_TABLE} (table_name text primary key, features text not null)")
    return con


def stored_layout(con: sqlite3.Connection, table: str) -> list[str] | None:
    row = con.execute(f"select features from {LAYOUT_TABLE} where table_name = ?", [table]).fetchone()
    return None if row is None else json.loads(row[0])


def _upsert_sql(table: str) -> str:
    return (f"insert into {_quote(table)} (entity_key, event_ts, created_ts, vals) values (?, ?, ?, ?) "
            "on conflict(entity_key) do update set event_ts = excluded.event_ts, "
            "created_ts = excluded.created_ts, vals = excluded.vals")


def _checked_layout(con: sqlite3.Connection, config: RepoConfig, view: FeatureView) -> tuple[str, list[str]]:
    table = table_name(config, view)
    names = stored_layout(con, table)
    if names != layout_of(view):
        raise RuntimeError(f"online table {table} holds features {names}, the view {view.name} has "
                           f"{layout_of(view)}: apply the repo (the feast_registry asset) first")
    return table, names


def write_table(config: RepoConfig, view: FeatureView, data: pa.Table,
                rows_per_transaction: int = ROWS_PER_TRANSACTION) -> int:
    """Upsert the rows of `data` (the view's join keys, timestamp field(s) and every feature,
    e.g. one cutoff's export) into the view's table; returns the rows written."""
    join_types = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
    keys = online_codec.entity_keys({k: data.column(k) for k in join_types}, join_types,
                                    config.entity_key_serialization_version)
    if pc.count_distinct(keys).as_py() != len(keys):
        raise ValueError(f"{view.name}: the table holds more than one row for an entity key")
    order = pc.sort_indices(keys)  # the primary key's order: pages are filled one after another
    stamps = {}
    for kind, column in (("event", view.batch_source.timestamp_field),
                         ("created", view.batch_source.created_timestamp_column)):
        if column:
            stamps[kind] = pc.cast(data.column(column), pa.timestamp("us", "UTC"), safe=False).cast(pa.int64())
    dtypes = {f.name: f.dtype.to_value_type() for f in view.features}
    con = connect(db_path(config))
    try:
        table, names = _checked_layout(con, config, view)
        sql = _upsert_sql(table)
        for start in range(0, len(keys), rows_per_transaction):
            take = order.slice(start, rows_per_transaction)
            chunk = data.select(names).take(take)
            blobs = online_codec.row_blobs([online_codec.column_entries(chunk.column(n), dtypes[n]) for n in names])
            event = stamps["event"].take(take).to_pylist()
            created = stamps["created"].take(take).to_pylist() if "created" in stamps else [None] * len(take)
            with con:
                con.executemany(sql, zip(keys.take(take).to_pylist(), event, created, blobs.to_pylist()))
    finally:
        con.close()
    return len(keys)


class WideSqliteOnlineStore(OnlineStore):
    """Feast's OnlineStore interface over the wide SQLite tables (see the module docstring)."""

    def __init__(self) -> None:
        self._con: sqlite3.Connection | None = None
        self._layouts: dict[str, list[str]] = {}

    def _conn(self, config: RepoConfig) -> sqlite3.Connection:
        if self._con is None:
            self._con = connect(db_path(config))
        return self._con

    def _layout(self, config: RepoConfig, table: str, refresh: bool = False) -> list[str]:
        if refresh or table not in self._layouts:
            names = stored_layout(self._conn(config), table)
            if names is None:
                raise RuntimeError(f"online table {table} does not exist: apply the repo (feast apply / "
                                   "the feast_registry asset)")
            self._layouts[table] = names
        return self._layouts[table]

    def online_write_batch(self, config: RepoConfig, table: FeatureView,
                           data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
                           progress: Callable[[int], Any] | None) -> None:
        con = self._conn(config)
        name, layout = _checked_layout(con, config, table)
        version = config.entity_key_serialization_version
        rows = []
        for entity_key, values, event_ts, created_ts in data:
            key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
            if not values.keys() >= set(layout):  # a partial write keeps the other stored values
                found = con.execute(f"select vals from {_quote(name)} where entity_key = ?", [key]).fetchone()
                values = {**dict(zip(layout, online_codec.decode(found[0]) if found else [])), **values}
            blob = RepeatedValue(val=[values.get(n, ValueProto()) for n in layout]).SerializeToString()
            rows.append((key, _micros(event_ts), _micros(created_ts), blob))
        with con:
            con.executemany(_upsert_sql(name), rows)
        if progress:
            progress(len(rows))

    def online_read(self, config: RepoConfig, table: FeatureView, entity_keys: list[EntityKeyProto],
                    requested_features: list[str] | None = None,
                    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        name = table_name(config, table)
        version = config.entity_key_serialization_version
        keys = [serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys]
        con = self._conn(config)
        found: dict[bytes, tuple[int, bytes]] = {}
        for start in range(0, len(keys), READ_BATCH):
            batch = keys[start:start + READ_BATCH]
            marks = ", ".join("?" * len(batch))
            for key, event_ts, blob in con.execute(
                    f"select entity_key, event_ts, vals from {_quote(name)} where entity_key in ({marks})", batch):
                found[key] = (event_ts, blob)
        layout = self._layout(config, name)
        wanted = list(requested_features) if requested_features is not None else layout
        if not set(wanted) <= set(layout):
            layout = self._layout(config, name, refresh=True)
        picks = [(n, layout.index(n)) for n in wanted if n in layout]
        result: list[tuple[datetime | None, dict[str, ValueProto] | None]] = []
        for key in keys:
            hit = found.get(key)
            if hit is None:
                result.append((None, None))
                continue
            values = online_codec.decode(hit[1])
            if len(values) != len(layout):  # the table was rebuilt by another process
                layout = self._layout(config, name, refresh=True)
                picks = [(n, layout.index(n)) for n in wanted if n in layout]
                if len(values) != len(layout):
                    raise RuntimeError(f"online table {name}: a row of {len(values)} values, layout of {len(layout)}")
            result.append((_stamp(hit[0]), {n: values[i] for n, i in picks}))
        return result

    def update(self, config: RepoConfig, tables_to_delete: Sequence[FeatureView],
               tables_to_keep: Sequence[FeatureView], entities_to_delete: Sequence[Entity],
               entities_to_keep: Sequence[Entity], partial: bool) -> None:
        con = self._conn(config)
        with con:
            for view in tables_to_keep:
                name, layout = table_name(config, view), layout_of(view)
                columns = {r[1] for r in con.execute(f"pragma table_info({_quote(name)})")}
                if columns and (columns != COLUMNS or stored_layout(con, name) != layout):
                    # another store's table (Feast's sqlite store) or features changed
                    log.warning("online table %s: another layout, the table is recreated empty "
                                "(materialize the online store again)", name)
                    con.execute(f"drop table {_quote(name)}")
                con.execute(f"create table if not exists {_quote(name)} (entity_key blob primary key, "
                            "event_ts integer, created_ts integer, vals blob) without rowid")
                con.execute(f"insert or replace into {LAYOUT_TABLE} values (?, ?)", [name, json.dumps(layout)])
            for view in tables_to_delete:
                self._drop(con, table_name(config, view))
        self._layouts.clear()

    @staticmethod
    def _drop(con: sqlite3.Connection, name: str) -> None:
        con.execute(f"drop table if exists {_quote(name)}")
        con.execute(f"delete from {LAYOUT_TABLE} where table_name = ?", [name])

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        if db_path(config).exists():
            con = self._conn(config)
            with con:
                for view in tables:
                    self._drop(con, table_name(config, view))
        if self._con is not None:
            self._con.close()
            self._con = None
        self._layouts.clear()
