"""lib.online_sqlite: Feast's own paths (materialize, partial writes, apply, teardown) on the wide
SQLite online store."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.types import Float64, Int64, String
from feast.value_type import ValueType
from feast_marts import D0, D1, build_store, random_marts

from ltv_pipeline.lib import feature_store as fs
from ltv_pipeline.lib import online_sqlite, online_store

STAMP = pd.Timestamp("2025-09-30 23:59:59.999999", tz="UTC")


def online_values(store, ids):
    return {s: online_store.online_features(store, ids, s) for s in ("ltv_model_v1", "btyd_v1")}


def test_feasts_materialize_into_the_store_serves_what_the_bulk_write_serves(tmp_path, monkeypatch):
    features, btyd = random_marts(30, [D0, D1], seed=5)
    ids = [f"u{i:03d}" for i in range(30)] + ["nobody"]
    got = {}
    for how in ("materialize", "bulk"):
        home = tmp_path / how
        home.mkdir()
        monkeypatch.setenv("LTV_HOME", str(home))
        store = build_store(home, features.copy(), btyd.copy())
        assert store.config.online_store.type == online_sqlite.STORE_TYPE
        if how == "materialize":
            stamp = fs.cutoff_timestamp(D1)
            store.materialize(start_date=stamp - timedelta(hours=1), end_date=stamp + timedelta(hours=1))
        else:
            online_store.materialize_online(store, D1)
        got[how] = online_values(store, ids)
    for service, frame in got["bulk"].items():
        pd.testing.assert_frame_equal(got["materialize"][service], frame)
        assert frame.iloc[:30].filter(like="cutoff_date").eq("2025-09-30").all().all()


def small_repo(home, fields):
    config = RepoConfig(project="t", provider="local", registry=str(home / "registry.db"),
                        online_store={"type": online_sqlite.STORE_TYPE, "path": "online.db"},
                        entity_key_serialization_version=3)
    config.repo_path = home
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    source = FileSource(name="src", path=str(home / "src.parquet"), timestamp_field="event_timestamp")
    view = FeatureView(name="stats", entities=[user], ttl=timedelta(days=9), source=source,
                       schema=[Field(name=n, dtype=t) for n, t in fields.items()])
    store = FeatureStore(config=config)
    store.apply([user, view])
    return store, store.get_feature_view("stats")


def frame(rows):
    return pd.DataFrame([{"event_timestamp": STAMP, **r} for r in rows])


def read(store, ids, refs):
    return store.get_online_features(features=refs, entity_rows=[{"user_id": i} for i in ids]).to_dict()


def test_a_partial_write_keeps_the_other_stored_values_and_a_full_write_replaces_the_row(tmp_path):
    store, view = small_repo(tmp_path, {"n": Int64, "x": Float64, "country": String})
    store.write_to_online_store("stats", frame([{"user_id": "a", "n": 1, "x": 2.5, "country": "DE"},
                                                 {"user_id": "b", "n": 7, "x": None, "country": None}]))
    key = EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(string_val="a")])
    online = online_sqlite.WideSqliteOnlineStore()
    online.online_write_batch(store.config, view, [(key, {"x": ValueProto(double_val=9.0)}, STAMP.to_pydatetime(), None)],
                              None)
    refs = ["stats:n", "stats:x", "stats:country"]
    assert read(store, ["a", "b", "c"], refs) == {"user_id": ["a", "b", "c"], "n": [1, 7, None],
                                                  "x": [9.0, None, None], "country": ["DE", None, None]}
    [(stamp, values)] = online.online_read(store.config, view, [key], ["country", "n"])
    assert stamp == STAMP.to_pydatetime() and set(values) == {"country", "n"}
    store.write_to_online_store("stats", frame([{"user_id": "a", "n": 2, "x": None, "country": "FR"}]))
    assert read(store, ["a", "b"], refs) == {"user_id": ["a", "b"], "n": [2, 7], "x": [None, None],
                                             "country": ["FR", None]}  # b, not written, kept its row


def test_apply_with_changed_features_recreates_the_table_and_old_views_cannot_write(tmp_path):
    store, old = small_repo(tmp_path, {"n": Int64, "x": Float64})
    online_sqlite.write_table(store.config, old, pa.Table.from_pandas(frame([{"user_id": "a", "n": 1, "x": 2.0}])))
    store, new = small_repo(tmp_path, {"n": Int64, "y": String})
    with sqlite3.connect(tmp_path / "online.db") as con:
        assert con.execute('select count(*) from "t_stats"').fetchone() == (0,)
        assert con.execute("select features from ltv_online_layout").fetchall() == [('["n", "y"]',)]
    con.close()
    with pytest.raises(RuntimeError, match=r"holds features \['n', 'y'\].*apply the repo"):
        online_sqlite.write_table(store.config, old, pa.Table.from_pandas(frame([{"user_id": "a", "n": 1, "x": 2.0}])))
    online_sqlite.write_table(store.config, new, pa.Table.from_pandas(frame([{"user_id": "a", "n": 3, "y": "z"}])))
    assert read(store, ["a"], ["stats:n", "stats:y"]) == {"user_id": ["a"], "n": [3], "y": ["z"]}


def test_apply_replaces_a_table_of_feasts_sqlite_layout(tmp_path):
    with sqlite3.connect(tmp_path / "online.db") as con:
        con.execute('create table "t_stats" (entity_key blob, feature_name text, value blob, value_text text, '
                    "vector_value blob, event_ts timestamp, created_ts timestamp, primary key (entity_key, feature_name))")
    con.close()
    store, view = small_repo(tmp_path, {"n": Int64})
    online_sqlite.write_table(store.config, view, pa.Table.from_pandas(frame([{"user_id": "a", "n": 4}])))
    assert read(store, ["a"], ["stats:n"])["n"] == [4]


def test_duplicate_keys_are_refused_and_teardown_drops_the_tables(tmp_path):
    store, view = small_repo(tmp_path, {"n": Int64})
    with pytest.raises(ValueError, match="more than one row for an entity key"):
        online_sqlite.write_table(store.config, view, pa.Table.from_pandas(frame([{"user_id": "a", "n": 1},
                                                                                  {"user_id": "a", "n": 2}])))
    store.teardown()
    with sqlite3.connect(tmp_path / "online.db") as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
        assert "t_stats" not in tables and con.execute("select count(*) from ltv_online_layout").fetchone() == (0,)
    con.close()
