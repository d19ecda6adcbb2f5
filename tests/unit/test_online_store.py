"""lib.online_store: the fast SQLite write against Feast's own writer, and online reads."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pyarrow.parquet as pq
import pytest
from feast_marts import D0, D1, D2, build_store, mart_frame, random_marts

from ltv_pipeline.lib import feature_store as fs
from ltv_pipeline.lib import online_store

TABLES = ("ltv_customer_features", "ltv_customer_btyd_summary")


def table_rows(store) -> dict[str, list[tuple]]:
    """Every row of Feast's online tables, all columns, sorted."""
    with sqlite3.connect(store.config.online_store.path) as con:
        rows = {t: sorted(con.execute(f"select * from {t}").fetchall(), key=repr) for t in TABLES}
    con.close()
    return rows


def export(store, view, cutoff):
    return pq.read_table(fs.cutoff_file(store.config.repo_path / view.batch_source.path, cutoff))


def online_values(store, ids):
    return {s: online_store.online_features(store, ids, s) for s in ("ltv_model_v1", "btyd_v1")}


def test_fast_write_stores_the_rows_and_serves_the_values_of_feasts_own_writer(tmp_path, monkeypatch):
    features, btyd = random_marts(60, [D0, D1], seed=3)
    features.loc[0, "revenue_total"] = -0.0  # a distinct bit pattern from 0.0
    features.loc[1, "revenue_total"] = 0.0
    ids = [f"u{i:03d}" for i in range(60)] + ["nobody"]
    results = {}
    for writer in ("feast", "fast"):
        home = tmp_path / writer
        home.mkdir()
        monkeypatch.setenv("LTV_HOME", str(home))
        store = build_store(home, features.copy(), btyd.copy())
        for cutoff in (D0, D1):  # the second cutoff updates existing rows (the upsert)
            for view in store.list_feature_views():
                table = export(store, view, cutoff)
                if writer == "feast":
                    online_store.feast_write(store, view, table)
                else:
                    online_store.write_view(store, view, table, users_per_transaction=7)
        results[writer] = (table_rows(store), online_values(store, ids))

    (feast_rows, feast_values), (fast_rows, fast_values) = results["feast"], results["fast"]
    assert {t: len(r) for t, r in fast_rows.items()} == {"ltv_customer_features": 60 * 57,
                                                          "ltv_customer_btyd_summary": 60 * 6}
    assert fast_rows == feast_rows  # entity_key, feature_name, value, value_text, event_ts, ...
    for service, frame in feast_values.items():
        pd.testing.assert_frame_equal(fast_values[service], frame)
        assert set(frame.iloc[:60].filter(like="cutoff_date").stack()) == {"2025-09-30"}
    assert fast_values["ltv_model_v1"]["revenue_total"].isna().sum() > 0  # nulls were written


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
        fs.cutoff_file(store.config.repo_path / view.batch_source.path, D0).write_bytes(b"not parquet")
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
