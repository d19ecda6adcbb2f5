"""lib.online_store: the bulk write into online_sqlite's store against Feast's own writers and
Feast's own SQLite store, and online reads."""

from __future__ import annotations

import sqlite3
import string
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from feast import FeatureStore, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast_marts import D0, D1, D2, build_store, mart_frame, random_marts, write_marts

from ltv_pipeline.lib import feature_exports as exports
from ltv_pipeline.lib import feature_store as fs
from ltv_pipeline.lib import online_store

TABLES = ("ltv_customer_features", "ltv_customer_btyd_summary")


def table_rows(store) -> dict[str, list[tuple]]:
    """Every row of the online tables, all columns, sorted."""
    with sqlite3.connect(store.config.online_store.path) as con:
        rows = {t: sorted(con.execute(f"select * from {t}").fetchall(), key=repr) for t in TABLES}
    con.close()
    return rows


def export(store, view, cutoff):
    return pq.read_table(exports.cutoff_file(store.config.repo_path / view.batch_source.path, cutoff))


def online_values(store, ids):
    return {s: online_store.online_features(store, ids, s) for s in ("ltv_model_v1", "btyd_v1")}


def feast_sqlite_store(home, features, btyd) -> FeatureStore:
    """The repo over Feast's own SQLite online store (type: sqlite), the reference."""
    exports.export_cutoffs(write_marts(home, features, btyd), home)
    settings = yaml.safe_load(string.Template(fs.FEATURE_STORE_YAML.read_text()).safe_substitute(LTV_HOME=str(home)))
    settings["online_store"] = {"type": "sqlite", "path": str(home / "feast" / "feast_sqlite.db")}
    config = RepoConfig(**settings)
    config.repo_path = fs.feast_home(home)
    store = FeatureStore(config=config)
    fs.apply_repo(store)
    return store


def test_bulk_write_serves_the_values_of_feasts_own_writer_and_feasts_own_store(tmp_path, monkeypatch):
    features, btyd = random_marts(60, [D0, D1], seed=3)
    features.loc[60, "revenue_total"] = -0.0  # u000 at D1: a distinct bit pattern from 0.0
    features.loc[61, "revenue_total"] = 0.0
    features.loc[62, "monetary_mean"] = float("nan")  # stored as a null, as Feast does
    ids = [f"u{i:03d}" for i in range(60)] + ["nobody"]
    results = {}
    for writer in ("feast_sqlite", "feast", "fast"):
        home = tmp_path / writer
        home.mkdir()
        monkeypatch.setenv("LTV_HOME", str(home))
        if writer == "feast_sqlite":
            store = feast_sqlite_store(home, features.copy(), btyd.copy())
            assert not online_store.fast_write_supported(store)
        else:
            store = build_store(home, features.copy(), btyd.copy())
            assert online_store.fast_write_supported(store)
        for cutoff in (D0, D1):  # the second cutoff updates existing rows (the upsert)
            for view in store.list_feature_views():
                table = export(store, view, cutoff)
                if writer == "fast":
                    online_store.write_view(store, view, table, rows_per_transaction=7)
                else:
                    online_store.write_view(store, view, table) if writer == "feast_sqlite" else \
                        online_store.feast_write(store, view, table)
        rows = None if writer == "feast_sqlite" else table_rows(store)
        results[writer] = (rows, online_values(store, ids))

    reference = results["feast_sqlite"][1]
    (feast_rows, feast_values), (fast_rows, fast_values) = results["feast"], results["fast"]
    assert {t: len(r) for t, r in fast_rows.items()} == {t: 60 for t in TABLES}  # a row per user and view
    assert fast_rows == feast_rows  # entity_key, event_ts, created_ts, vals: the same bytes
    key = serialize_entity_key(EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(string_val="u000")]),
                               entity_key_serialization_version=3)
    assert key in {r[0] for r in fast_rows["ltv_customer_features"]}
    for service, frame in reference.items():
        pd.testing.assert_frame_equal(fast_values[service], frame)
        pd.testing.assert_frame_equal(feast_values[service], frame)
        assert set(frame.iloc[:60].filter(like="cutoff_date").stack()) == {"2025-09-30"}
    got = fast_values["ltv_model_v1"]
    assert got["revenue_total"].isna().sum() > 0  # nulls were written
    assert got["revenue_total"].iloc[:2].tolist() == [0.0, 0.0]
    assert np.signbit(got["revenue_total"].iloc[:2]).tolist() == [True, False]
    assert pd.isna(got["monetary_mean"].iloc[2])


def test_online_features_equal_the_historical_features_of_the_scoring_date(ltv_home):
    features, btyd = random_marts(40, [D0, D1])
    store = build_store(ltv_home, features, btyd)
    assert online_store.materialize_online(store, D1) == {"customer_features": 40, "customer_btyd_summary": 40}
    sample = ["u007", "u000", "u031", "u019", "u007", "nobody"]
    for service in ("ltv_model_v1", "btyd_v1"):
        online = online_store.online_features(store, sample, service, as_of=D1)
        offline = fs.training_frame(store, pd.DataFrame({"user_id": sample, "cutoff_date": D1}), service)
        assert online["user_id"].tolist() == sample
        shared = [c for c in offline.columns if c not in ("user_id", "cutoff_date")]
        assert len(shared) == len(store.get_feature_service(service).feature_view_projections[0].features)
        assert online[shared].notna().values.sum() > 0.8 * 5 * len(shared)
        pd.testing.assert_frame_equal(online[shared], offline[shared])
    marker = online_store.online_features(store, ["u001", "nobody"])["feature_cutoff_date"].tolist()
    assert marker == ["2025-09-30", None]


def test_materialize_reads_only_the_file_of_its_cutoff(ltv_home):
    features, btyd = random_marts(5, [D0, D1])
    store = build_store(ltv_home, features, btyd)
    for view in store.list_feature_views():  # another cutoff's file that cannot be read
        exports.cutoff_file(store.config.repo_path / view.batch_source.path, D0).write_bytes(b"not parquet")
    assert online_store.materialize_online(store, D1) == {"customer_features": 5, "customer_btyd_summary": 5}
    with pytest.raises(ValueError, match=r"customer_features/2025-12-31.parquet does not exist.*export_cutoffs"):
        online_store.materialize_online(store, D2)


def test_online_rows_of_another_cutoff_are_reported_as_stale(ltv_home):
    features = mart_frame("customer_features", [
        {"user_id": "a", "cutoff_date": D0}, {"user_id": "a", "cutoff_date": D1},
        {"user_id": "b", "cutoff_date": D1}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0},
                                                 {"user_id": "a", "cutoff_date": D1}])
    store = build_store(ltv_home, features, btyd)
    online_store.materialize_online(store, D1)
    online_store.materialize_online(store, D0)  # b has no D0 row: its D1 row stays online
    got = online_store.online_features(store, ["a"], as_of=D0)
    assert got["feature_cutoff_date"].tolist() == ["2025-06-30"]
    with pytest.raises(fs.StaleFeaturesError, match="'b'"):
        online_store.online_features(store, ["a", "b"], as_of=D0)


def test_online_store_module_loads_without_feast():
    # the Dagster definitions import it; Feast is imported by its functions only
    code = "import sys, ltv_pipeline.lib.online_store; print('feast' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert online_store.LTV_MODEL_SERVICE == fs.LTV_MODEL_SERVICE
