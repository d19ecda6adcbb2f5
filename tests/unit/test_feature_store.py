"""lib.feature_store on small marts written straight into a temporary warehouse (no dbt)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from feast.types import Bool, Float64, Int64, String, UnixTimestamp

from ltv_pipeline import settings
from ltv_pipeline.lib import feature_store as fs

D0, D1, D2 = date(2025, 6, 30), date(2025, 9, 30), date(2025, 12, 31)
VIEWS = {v.name: v for v in fs.repo_objects() if isinstance(v, fs.FeatureView)}
DEFAULTS = {Float64: 1.5, Int64: 3, Bool: False, String: "x", UnixTimestamp: pd.Timestamp("2025-01-01")}


def mart_frame(view: str, rows: list[dict]) -> pd.DataFrame:
    """Mart rows with every column the view reads; unspecified columns get a default."""
    fv = VIEWS[view]
    cols = [f for f in fv.features if f.name != fv.tags[fs.CUTOFF_TAG]]
    return pd.DataFrame([{**{f.name: DEFAULTS[f.dtype] for f in cols}, **r} for r in rows])


def write_marts(home: Path, features: pd.DataFrame, btyd: pd.DataFrame) -> Path:
    """Replace marts.customer_features and marts.customer_btyd_summary (cutoff_date as DATE)."""
    path = home / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts")
        for table, frame in (("customer_features", features), ("customer_btyd_summary", btyd)):
            con.register("incoming", frame)
            con.execute(f"create or replace table marts.{table} as select * replace "
                        "(cast(cutoff_date as date) as cutoff_date) from incoming")
            con.unregister("incoming")
    return path


def build_store(home: Path, features: pd.DataFrame, btyd: pd.DataFrame):
    warehouse = write_marts(home, features, btyd)
    fs.export_marts(warehouse, home)
    store = fs.feature_store(home)
    fs.apply_repo(store)
    return store


def random_marts(n_users: int, cutoffs: list[date], seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random values of every type, with nulls, per user per cutoff."""
    rng = np.random.default_rng(seed)
    frames = {}
    for view in VIEWS:
        fv = VIEWS[view]
        rows = []
        for cutoff in cutoffs:
            for i in range(n_users):
                row = {"user_id": f"u{i:03d}", "cutoff_date": cutoff}
                for f in fv.features:
                    if f.name == fv.tags[fs.CUTOFF_TAG]:
                        continue
                    value = {Float64: rng.normal() * 100, Int64: int(rng.integers(0, 400)),
                             Bool: bool(rng.random() < 0.5), String: str(rng.choice(["DE", "US", "FR"])),
                             UnixTimestamp: pd.Timestamp(cutoff) + pd.Timedelta(hours=int(rng.integers(0, 24)))}[f.dtype]
                    row[f.name] = None if rng.random() < 0.1 and f.dtype != UnixTimestamp else value
                rows.append(row)
        frames[view] = mart_frame(view, rows)
    for frame in frames.values():  # None in an int column would make pandas floats: keep Int64
        for col in frame.columns:
            if frame[col].dtype == object and frame[col].dropna().map(type).eq(int).all():
                frame[col] = frame[col].astype("Int64")
    return frames["customer_features"], frames["customer_btyd_summary"]


def test_apply_on_a_fresh_home_registers_the_repo_under_ltv_home(ltv_home):
    features = mart_frame("customer_features", [{"user_id": "a", "cutoff_date": D0}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    store = build_store(ltv_home, features, btyd)
    fs.apply_repo(store)  # idempotent

    assert Path(store.config.registry.path) == ltv_home / "feast" / "registry.db"
    assert (ltv_home / "feast" / "registry.db").is_file()
    assert (ltv_home / "feast" / "online_store.db").is_file()
    assert store.project == "ltv"
    assert {v.name for v in store.list_feature_views()} == {"customer_features", "customer_btyd_summary"}
    assert {s.name for s in store.list_feature_services()} == {"ltv_model_v1", "btyd_v1"}
    [entity] = store.list_entities()
    assert (entity.name, entity.join_key) == ("customer", "user_id")
    for view in store.list_feature_views():
        assert view.batch_source.tags == {"dbt_model": view.name}
        assert view.ttl == pd.Timedelta(days=400)
    btyd_service = store.get_feature_service("btyd_v1")
    assert [f.name for f in btyd_service.feature_view_projections[0].features] == [
        "frequency", "recency", "T", "monetary_value"]


def test_feature_store_yaml_substitutes_ltv_home_and_holds_no_secret(tmp_path):
    config = fs.repo_config(tmp_path / "home")
    assert config.registry.path == str(tmp_path / "home" / "feast" / "registry.db")
    assert config.online_store.path == str(tmp_path / "home" / "feast" / "online_store.db")
    assert config.repo_path == tmp_path / "home" / "feast"
    def keys(node):
        for key, value in node.items():
            yield key
            yield from keys(value) if isinstance(value, dict) else ()

    raw = yaml.safe_load((settings.FEATURE_REPO_DIR / "feature_store.yaml").read_text())
    assert raw["project"] == "ltv" and raw["online_store"]["type"] == "sqlite"
    assert not set(keys(raw)) & {"password", "token", "secret", "client_secret", "username"}


@pytest.mark.parametrize("view", ["customer_features", "customer_btyd_summary"])
def test_feature_view_fields_are_columns_of_their_dbt_mart(view):
    spec = yaml.safe_load((settings.DBT_PROJECT_DIR / "models" / "marts" / f"{view}.yml").read_text())
    [model] = spec["models"]
    mart_columns = {c["name"] for c in model["columns"]}
    fv = VIEWS[view]
    fields = {f.name for f in fv.features} - {fv.tags[fs.CUTOFF_TAG]}
    assert fields <= mart_columns, fields - mart_columns
    assert fv.tags["dbt_model"] == view


def test_export_writes_typed_parquet_with_end_of_day_timestamps_atomically(ltv_home):
    features = mart_frame("customer_features", [{"user_id": "a", "cutoff_date": D0, "top_weekday": 2}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    warehouse = write_marts(ltv_home, features, btyd)
    assert fs.export_marts(warehouse, ltv_home) == {"customer_features": 1, "customer_btyd_summary": 1}
    dest = ltv_home / "feast" / "data" / "customer_features.parquet"
    table = pq.read_table(dest)
    assert str(table.schema.field("top_weekday").type) == "int64"
    assert str(table.schema.field("user_id").type) == "string"
    assert str(table.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    assert table.column("event_timestamp")[0].as_py() == fs.cutoff_timestamp(D0)
    assert fs.cutoff_timestamp(D0) == pd.Timestamp("2025-06-30 23:59:59.999999", tz="UTC")
    assert table.column("feature_cutoff_date")[0].as_py() == "2025-06-30"

    with duckdb.connect(str(warehouse)) as con:  # a mart missing a column cannot be exported
        con.execute("alter table marts.customer_features drop column revenue_total")
    with pytest.raises(duckdb.BinderException, match="revenue_total"):
        fs.export_mart(warehouse, VIEWS["customer_features"], dest)
    assert pq.read_table(dest).num_rows == 1  # the previous export is intact
    assert sorted(p.name for p in dest.parent.iterdir()) == [
        "customer_btyd_summary.parquet", "customer_features.parquet"]


def test_point_in_time_uses_the_entity_cutoff_row_and_never_a_later_one(ltv_home):
    features = mart_frame("customer_features", [
        {"user_id": "a", "cutoff_date": D0, "revenue_total": 10.0},
        {"user_id": "a", "cutoff_date": D1, "revenue_total": 99.0},
        {"user_id": "b", "cutoff_date": D1, "revenue_total": 7.0},  # b is first known at D1
    ])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0, "T": 5},
                                                 {"user_id": "a", "cutoff_date": D1, "T": 97}])
    store = build_store(ltv_home, features, btyd)
    entities = pd.DataFrame({"user_id": ["a", "a", "b", "b"], "cutoff_date": [D0, D1, D0, D1]})

    got = fs.training_frame(store, entities)
    assert got["revenue_total"].iloc[0] == 10.0 and got["revenue_total"].iloc[1] == 99.0
    assert np.isnan(got["revenue_total"].iloc[2]) and got["revenue_total"].iloc[3] == 7.0
    assert fs.training_frame(store, entities, "btyd_v1")["T"].iloc[:2].tolist() == [5.0, 97.0]

    by_timestamp = pd.DataFrame({"user_id": ["a"], "event_timestamp": [fs.cutoff_timestamp(D0)]})
    assert fs.training_frame(store, by_timestamp)["revenue_total"].tolist() == [10.0]


def test_a_cutoff_missing_from_the_export_raises_instead_of_serving_an_older_row(ltv_home):
    features = mart_frame("customer_features", [{"user_id": "a", "cutoff_date": D0}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    store = build_store(ltv_home, features, btyd)
    with pytest.raises(fs.StaleFeaturesError, match="2025-06-30"):
        fs.training_frame(store, pd.DataFrame({"user_id": ["a"], "cutoff_date": [D1]}))


def test_entity_timestamps_other_than_cutoff_timestamps_are_refused(ltv_home):
    features = mart_frame("customer_features", [{"user_id": "a", "cutoff_date": D0}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    store = build_store(ltv_home, features, btyd)
    midnight = pd.DataFrame({"user_id": ["a"], "event_timestamp": [pd.Timestamp(D1)]})
    with pytest.raises(ValueError, match="cutoff timestamps"):
        fs.training_frame(store, midnight)


def test_duplicate_entity_rows_keep_their_positions_and_index(ltv_home):
    features = mart_frame("customer_features", [
        {"user_id": u, "cutoff_date": d, "n_orders": n}
        for n, (u, d) in enumerate([("a", D0), ("a", D1), ("b", D0), ("b", D1)])
    ])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    store = build_store(ltv_home, features, btyd)
    entities = pd.DataFrame(
        {"user_id": ["b", "a", "b", "a", "b", "zz", "a"],
         "cutoff_date": [D1, D0, D1, D1, D0, D0, D0],
         "label": [1, 2, 3, 4, 5, 6, 7]},
        index=[70, 10, 10, 30, 50, 60, 0],  # duplicate labels too
    )
    got = fs.training_frame(store, entities)
    assert len(got) == 7 and got.index.tolist() == entities.index.tolist()
    pd.testing.assert_frame_equal(got[entities.columns], entities)
    assert got["n_orders"].tolist()[:5] == [3.0, 0.0, 3.0, 1.0, 2.0] and got["n_orders"].iloc[6] == 0.0
    assert np.isnan(got["n_orders"].iloc[5])


def test_online_features_equal_the_historical_features_of_the_scoring_date(ltv_home):
    features, btyd = random_marts(40, [D0, D1])
    store = build_store(ltv_home, features, btyd)
    assert fs.materialize_online(store, D1) == {"customer_features": 40, "customer_btyd_summary": 40}
    sample = ["u007", "u000", "u031", "u019", "u007", "nobody"]
    for service in ("ltv_model_v1", "btyd_v1"):
        online = fs.online_features(store, sample, service, as_of=D1)
        offline = fs.training_frame(store, pd.DataFrame({"user_id": sample, "cutoff_date": D1}), service)
        assert online["user_id"].tolist() == sample
        shared = [c for c in offline.columns if c not in ("user_id", "cutoff_date")]
        assert len(shared) == len(store.get_feature_service(service).feature_view_projections[0].features)
        assert online[shared].notna().values.sum() > 0.8 * 5 * len(shared)
        pd.testing.assert_frame_equal(online[shared], offline[shared])
    marker = fs.online_features(store, ["u001", "nobody"])["feature_cutoff_date"].tolist()
    assert marker == ["2025-09-30", None]


def test_online_rows_of_another_cutoff_are_reported_as_stale(ltv_home):
    features = mart_frame("customer_features", [
        {"user_id": "a", "cutoff_date": D0}, {"user_id": "a", "cutoff_date": D1},
        {"user_id": "b", "cutoff_date": D1}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0},
                                                 {"user_id": "a", "cutoff_date": D1}])
    store = build_store(ltv_home, features, btyd)
    fs.materialize_online(store, D1)
    fs.materialize_online(store, D0)  # b has no D0 row: its D1 row stays online
    assert fs.online_features(store, ["a"], as_of=D0)["feature_cutoff_date"].tolist() == ["2025-06-30"]
    with pytest.raises(fs.StaleFeaturesError, match="'b'"):
        fs.online_features(store, ["a", "b"], as_of=D0)
    with pytest.raises(ValueError, match="no row for cutoff 2025-12-31"):
        fs.materialize_online(store, D2)
