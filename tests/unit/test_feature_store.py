"""lib.feature_store on small marts written straight into a temporary warehouse (no dbt)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from feast_marts import D0, D1, D2, VIEWS, build_store, mart_frame, write_marts

from ltv_pipeline import settings
from ltv_pipeline.lib import feature_exports as exports
from ltv_pipeline.lib import feature_store as fs


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
        assert view.ttl == pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)  # its cutoff day
    btyd_service = store.get_feature_service("btyd_v1")
    assert [f.name for f in btyd_service.feature_view_projections[0].features] == [
        "frequency", "recency", "T", "monetary_value", "mean_order_value"]


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
    assert raw["project"] == "ltv" and raw["online_store"]["type"] == "ltv_pipeline.lib.online_sqlite.WideSqliteOnlineStore"
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


def test_export_writes_one_typed_parquet_file_per_cutoff_with_end_of_day_timestamps(ltv_home):
    features = mart_frame("customer_features", [
        {"user_id": "b", "cutoff_date": D0, "top_weekday": 2}, {"user_id": "a", "cutoff_date": D0},
        {"user_id": "a", "cutoff_date": D1}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    warehouse = write_marts(ltv_home, features, btyd)
    assert exports.export_cutoffs(warehouse, ltv_home) == {"customer_features": 3, "customer_btyd_summary": 1}
    data = ltv_home / "feast" / "data"
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()) == [
        "customer_btyd_summary/2025-06-30.parquet",
        "customer_features/2025-06-30.parquet", "customer_features/2025-09-30.parquet"]
    table = pq.read_table(data / "customer_features" / "2025-06-30.parquet")
    assert table.column("user_id").to_pylist() == ["a", "b"]
    assert str(table.schema.field("top_weekday").type) == "int64"
    assert str(table.schema.field("user_id").type) == "string"
    assert str(table.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    assert set(table.column("event_timestamp").to_pylist()) == {fs.cutoff_timestamp(D0)}
    assert fs.cutoff_timestamp(D0) == pd.Timestamp("2025-06-30 23:59:59.999999", tz="UTC")
    assert set(table.column("feature_cutoff_date").to_pylist()) == {"2025-06-30"}
    assert pq.read_table(data / "customer_features" / "2025-09-30.parquet").num_rows == 1


def test_export_of_given_cutoffs_replaces_only_their_files_and_a_full_export_drops_stale_ones(ltv_home):
    features = mart_frame("customer_features", [{"user_id": "a", "cutoff_date": D0, "n_orders": 1},
                                                {"user_id": "a", "cutoff_date": D1, "n_orders": 2}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    warehouse = write_marts(ltv_home, features, btyd)
    exports.export_cutoffs(warehouse, ltv_home)
    folder = ltv_home / "feast" / "data" / "customer_features"
    d0_before = (folder / "2025-06-30.parquet").stat().st_mtime_ns

    features.loc[features["cutoff_date"] == D1, "n_orders"] = 7  # D1 rebuilt; D2 new; D0 gone
    features = pd.concat([features[features["cutoff_date"] != D0],
                          mart_frame("customer_features", [{"user_id": "z", "cutoff_date": D2}])])
    write_marts(ltv_home, features, btyd)
    assert exports.export_cutoffs(warehouse, ltv_home, ["2025-09-30", D2]) == {
        "customer_features": 2, "customer_btyd_summary": 0}  # no purchaser at D1, D2: empty files
    assert (folder / "2025-06-30.parquet").stat().st_mtime_ns == d0_before  # not asked: untouched
    assert pq.read_table(folder / "2025-09-30.parquet").column("n_orders").to_pylist() == [7]
    assert pq.read_table(ltv_home / "feast" / "data" / "customer_btyd_summary" / "2025-12-31.parquet").num_rows == 0

    exports.export_cutoffs(warehouse, ltv_home)
    assert sorted(p.name for p in folder.iterdir()) == ["2025-09-30.parquet", "2025-12-31.parquet"]
    with pytest.raises(ValueError, match=r"2025-07-01.*build them with dbt"):
        exports.export_cutoffs(warehouse, ltv_home, [date(2025, 7, 1)])


def test_a_full_export_after_a_build_rewrites_the_built_cutoffs_and_keeps_current_files(ltv_home):
    """feast_registry after a training build: the plan's cutoffs are exported again; a date
    scored earlier keeps its file unless it is missing or has another schema (the feature repo
    changed); a date gone from the marts loses its file."""
    features = mart_frame("customer_features", [{"user_id": "a", "cutoff_date": d, "n_orders": 1}
                                                for d in (D0, D1, D2)])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": d} for d in (D0, D1, D2)])
    warehouse = write_marts(ltv_home, features, btyd)
    exports.export_cutoffs(warehouse, ltv_home)
    folder = ltv_home / "feast" / "data" / "customer_features"
    kept = (folder / "2025-09-30.parquet").stat().st_mtime_ns

    features["n_orders"] = 5  # the build rewrote D0 (the plan); D1 and D2 were scored before
    write_marts(ltv_home, features, btyd)
    (folder / "2025-12-31.parquet").unlink()
    assert exports.export_cutoffs(warehouse, ltv_home, rebuilt=[D0]) == {
        "customer_features": 2, "customer_btyd_summary": 1}  # D0, and D2's missing file
    assert pq.read_table(folder / "2025-06-30.parquet").column("n_orders").to_pylist() == [5]
    assert (folder / "2025-09-30.parquet").stat().st_mtime_ns == kept
    assert pq.read_table(folder / "2025-09-30.parquet").column("n_orders").to_pylist() == [1]
    assert pq.read_table(folder / "2025-12-31.parquet").column("n_orders").to_pylist() == [5]

    pq.write_table(pq.read_table(folder / "2025-09-30.parquet").drop(["n_orders"]),
                   folder / "2025-09-30.parquet")  # an export of an older feature repo
    write_marts(ltv_home, features[features["cutoff_date"] != D2], btyd)
    assert exports.export_cutoffs(warehouse, ltv_home, rebuilt=[D0]) == {
        "customer_features": 2, "customer_btyd_summary": 1}  # D0 and D1's stale file; D0
    assert pq.read_table(folder / "2025-09-30.parquet").column("n_orders").to_pylist() == [5]
    assert sorted(p.name for p in folder.iterdir()) == ["2025-06-30.parquet", "2025-09-30.parquet"]


def test_a_failed_export_leaves_the_previous_file_and_no_temporary_file(ltv_home):
    features = mart_frame("customer_features", [{"user_id": "a", "cutoff_date": D0}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    warehouse = write_marts(ltv_home, features, btyd)
    exports.export_cutoffs(warehouse, ltv_home)
    with duckdb.connect(str(warehouse)) as con:  # a mart missing a column cannot be exported
        con.execute("alter table marts.customer_features drop column revenue_total")
    with pytest.raises(duckdb.BinderException, match="revenue_total"):
        exports.export_cutoffs(warehouse, ltv_home, [D0])
    folder = ltv_home / "feast" / "data" / "customer_features"
    assert [p.name for p in folder.iterdir()] == ["2025-06-30.parquet"]  # hidden temp file removed
    assert pq.read_table(folder / "2025-06-30.parquet").num_rows == 1
    with duckdb.connect(str(warehouse)) as con:  # the connection was closed: a writer can lock
        con.execute("delete from marts.customer_btyd_summary")
    with pytest.raises(ValueError, match="customer_btyd_summary is empty"):
        exports.export_cutoffs(warehouse, ltv_home)


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


def test_a_cutoff_missing_from_the_export_raises_and_an_older_row_is_never_served(ltv_home):
    """The views' ttl is the cutoff day: a user absent at an exported cutoff gets nulls, never
    the row of an earlier cutoff; a cutoff that was not exported at all is refused, instead of
    coming back as null features for everyone."""
    features = mart_frame("customer_features", [{"user_id": "a", "cutoff_date": D0, "n_orders": 3},
                                                {"user_id": "b", "cutoff_date": D1, "n_orders": 1}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    store = build_store(ltv_home, features, btyd)
    got = fs.training_frame(store, pd.DataFrame({"user_id": ["a", "b"], "cutoff_date": [D1, D1]}))
    assert got["n_orders"].isna().tolist() == [True, False]  # a's D0 row is not a D1 row
    with pytest.raises(fs.StaleFeaturesError, match=r"2025-12-31.*not in the export"):
        fs.training_frame(store, pd.DataFrame({"user_id": ["a"], "cutoff_date": [D2]}))


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


def test_a_store_that_deduplicates_and_reorders_rows_gives_the_same_frame(ltv_home, monkeypatch):
    """Feast's own file store returns each (user, timestamp) once, in another order, and drops
    rows without a match: training_frame joins such a result back to every entity row."""
    from feast_marts import random_marts

    features, btyd = random_marts(30, [D0, D1])
    store = build_store(ltv_home, features, btyd)
    rng = np.random.default_rng(1)
    entities = pd.DataFrame({"user_id": [f"u{i:03d}" for i in rng.integers(0, 35, 80)],
                             "cutoff_date": rng.choice([D0, D1], 80)})
    aligned = {service: fs.training_frame(store, entities, service) for service in ("ltv_model_v1", "btyd_v1")}
    original = store.get_historical_features
    markers = {m for service in aligned for m in fs.service_plan(store, service).markers}

    class Shuffled:
        def __init__(self, job):
            self.job = job

        def to_arrow(self):
            frame = self.job.to_df().drop_duplicates(["user_id", "event_timestamp"])
            marker = [c for c in frame.columns if c in markers][0]
            frame = frame[frame[marker].notna()].iloc[::-1]
            import pyarrow as pa
            return pa.Table.from_pandas(frame, preserve_index=False)

    monkeypatch.setattr(store, "get_historical_features", lambda **kw: Shuffled(original(**kw)))
    assert aligned["ltv_model_v1"]["revenue_total"].notna().sum() > 20
    assert aligned["ltv_model_v1"]["revenue_total"].isna().any()
    for service, frame in aligned.items():
        pd.testing.assert_frame_equal(fs.training_frame(store, entities, service), frame)


def _two_cutoff_marts(home: Path) -> Path:
    features = mart_frame("customer_features", [{"user_id": "a", "cutoff_date": D0},
                                                {"user_id": "b", "cutoff_date": D1}])
    btyd = mart_frame("customer_btyd_summary", [{"user_id": "a", "cutoff_date": D0}])
    return write_marts(home, features, btyd)


def test_a_later_export_reuses_the_saved_plan_without_importing_feast(ltv_home):
    import subprocess
    import sys

    warehouse = _two_cutoff_marts(ltv_home)
    exports.export_cutoffs(warehouse, ltv_home)
    plan = ltv_home / "feast" / exports.EXPORT_PLAN_FILE
    assert json.loads(plan.read_text())["fingerprint"] == exports.plan_fingerprint()
    folder = ltv_home / "feast" / "data" / "customer_features"
    before = pq.read_table(folder / "2025-09-30.parquet")
    (folder / "2025-09-30.parquet").unlink()
    code = ("import sys; from pathlib import Path; from ltv_pipeline.lib import feature_exports as e; "
            f"print(e.export_cutoffs(Path({str(warehouse)!r}), Path({str(ltv_home)!r}), ['2025-09-30'])); "
            "print('feast' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out[-1] == "False"  # the plan file, not the Feast repo
    assert pq.read_table(folder / "2025-09-30.parquet").equals(before)


@pytest.mark.parametrize("damage", ["stale", "garbage"])
def test_a_stale_or_unreadable_plan_is_rebuilt_from_the_feast_repo(ltv_home, monkeypatch, damage):
    warehouse = _two_cutoff_marts(ltv_home)
    plan = ltv_home / "feast" / exports.EXPORT_PLAN_FILE
    plan.parent.mkdir(parents=True, exist_ok=True)
    if damage == "stale":  # a plan of an older feature_repo: one view, one column
        plan.write_text(json.dumps({"fingerprint": "old", "views": [
            {"name": "customer_features", "mart": "marts.customer_features",
             "folder": "data/customer_features", "columns": ["user_id"]}]}))
    else:
        plan.write_text("{not json")
    calls = []
    real = exports.repo_objects
    monkeypatch.setattr(exports, "repo_objects", lambda: calls.append(1) or real())
    assert exports.export_cutoffs(warehouse, ltv_home) == {"customer_features": 2,
                                                           "customer_btyd_summary": 1}
    assert calls == [1]
    saved = json.loads(plan.read_text())
    assert saved["fingerprint"] == exports.plan_fingerprint()
    assert {v["name"] for v in saved["views"]} == {"customer_features", "customer_btyd_summary"}
    table = pq.read_table(ltv_home / "feast" / "data" / "customer_features" / "2025-06-30.parquet")
    assert "revenue_total" in table.column_names
