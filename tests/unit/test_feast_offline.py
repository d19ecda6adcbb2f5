"""CutoffFolderOfflineStore (DuckDB point-in-time joins) against Feast's own file (dask) store."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.infra.offline_stores.dask import DaskOfflineStore
from feast.types import Bool, Float64, Int64, String

CUTOFFS = pd.to_datetime(["2025-03-31 23:59:59.999999", "2025-06-30 23:59:59.999999",
                          "2025-09-30 23:59:59.999999"], utc=True)
TTL = timedelta(days=100)  # a little over one cutoff apart
USERS = [f"u{i:02d}" for i in range(30)]


def _stats_rows(rng) -> pd.DataFrame:
    """Per cutoff: most users (some absent at a cutoff), ints/floats/strings/bools with nulls."""
    rows = []
    for ts in CUTOFFS:
        for user in USERS:
            if rng.random() < 0.25:
                continue
            rows.append({"user_id": user, "event_timestamp": ts,
                         "n": None if rng.random() < 0.2 else int(rng.integers(0, 50)),
                         "x": np.nan if rng.random() < 0.2 else float(rng.normal()),
                         "country": None if rng.random() < 0.2 else str(rng.choice(["DE", "US", "FR"])),
                         "flag": bool(rng.random() < 0.5)})
    rows.append({"user_id": "late", "event_timestamp": CUTOFFS[2], "n": 1, "x": 1.0, "country": "DE", "flag": True})
    rows.append({"user_id": "old", "event_timestamp": CUTOFFS[0], "n": 2, "x": 2.0, "country": "US", "flag": False})
    frame = pd.DataFrame(rows)
    frame["n"] = frame["n"].astype("Int64")
    return frame


def _orders_rows(rng) -> pd.DataFrame:
    """Irregular timestamps, several versions of a row (created_ts decides), a mapped column."""
    rows = []
    for user in USERS:
        for _ in range(int(rng.integers(0, 5))):
            ts = CUTOFFS[0] - pd.Timedelta(days=30) + pd.Timedelta(hours=int(rng.integers(0, 24 * 200)))
            for _version in range(int(rng.integers(1, 3))):
                rows.append({"user_id": user, "ts": ts, "created": ts + pd.Timedelta(hours=int(rng.integers(0, 48))),
                             "amount_src": float(rng.integers(0, 1000)) / 10})
    return pd.DataFrame(rows).drop_duplicates(["user_id", "ts", "created"])


def _views(folder: bool):
    """Two views over sources under data/; folder=True reads per-cutoff folders (this store),
    folder=False single files of the same rows (Feast's dask store)."""
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    stats = FileSource(name="stats_src", path="data/stats" if folder else "data/stats_all.parquet",
                       timestamp_field="event_timestamp")
    orders = FileSource(name="orders_src", path="data/orders" if folder else "data/orders_all.parquet",
                        timestamp_field="ts", created_timestamp_column="created",
                        field_mapping={"amount_src": "amount"})
    return user, [
        FeatureView(name="stats", entities=[user], ttl=TTL, source=stats,
                    schema=[Field(name="user_id", dtype=String), Field(name="n", dtype=Int64), Field(name="x", dtype=Float64),
                            Field(name="country", dtype=String), Field(name="flag", dtype=Bool)]),
        FeatureView(name="orders", entities=[user], ttl=timedelta(0), source=orders,
                    schema=[Field(name="user_id", dtype=String), Field(name="amount", dtype=Float64)])]


def _store(home) -> FeatureStore:
    """A store of this offline store whose sources resolve under home."""
    config = RepoConfig(project="t", provider="local", registry=str(home / "registry.db"),
                        online_store={"type": "sqlite", "path": str(home / "online.db")},
                        offline_store={"type": "ltv_pipeline.lib.feast_offline.CutoffFolderOfflineStore"},
                        entity_key_serialization_version=3)
    config.repo_path = home
    return FeatureStore(config=config)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("feast_offline"))


def build_case(home):
    """The store (folders of files under home/data), the entity rows and the feature refs."""
    rng = np.random.default_rng(7)
    stats, orders = _stats_rows(rng), _orders_rows(rng)
    for name, frame, ts in (("stats", stats, "event_timestamp"), ("orders", orders, "ts")):
        (home / "data" / name).mkdir(parents=True)
        frame.to_parquet(home / "data" / f"{name}_all.parquet", index=False)
        for i, (_, part) in enumerate(frame.groupby(frame[ts].dt.tz_localize(None).dt.to_period("Q"))):
            part.to_parquet(home / "data" / name / f"{i:04d}.parquet", index=False)
    store = _store(home)
    user, views = _views(folder=True)
    store.apply([user, *views])
    # entity rows: users x cutoffs and random instants, duplicates, an unknown user, a user
    # whose only row is later, one whose only row is older than ttl, an extra column
    picks = rng.choice(USERS, 120)
    stamps = [CUTOFFS[i] if rng.random() < 0.6 else CUTOFFS[i] - pd.Timedelta(hours=int(rng.integers(1, 2000)))
              for i in rng.integers(0, 3, 120)]
    entities = pd.DataFrame({"user_id": list(picks) + ["nobody", "late", "old", "old"],
                             "event_timestamp": stamps + [CUTOFFS[1], CUTOFFS[1], CUTOFFS[2], CUTOFFS[0]]})
    entities = pd.concat([entities, entities.iloc[[3, 3, 50, 121]]], ignore_index=True)
    entities["label"] = np.arange(len(entities)) * 1.5
    refs = ["stats:n", "stats:x", "stats:country", "stats:flag", "orders:amount"]
    return store, entities, refs, stats, orders


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _latest(rows: pd.DataFrame, ts: str, created: str | None = None) -> tuple[pd.Series | None, bool]:
    """The source row a point-in-time join must pick among candidates, and whether the latest
    timestamp has several versions (then the latest created_timestamp decides)."""
    if rows.empty:
        return None, False
    top = rows[rows[ts] == rows[ts].max()]
    return top.sort_values(created).iloc[-1] if created else top.iloc[-1], len(top) > 1


def _reference(entities, stats, orders, filter_created: bool) -> tuple[list, list]:
    """Brute force, one entity row at a time: (stats row or None, (orders row or None, tied))."""
    picks_stats, picks_orders = [], []
    for user, at in zip(entities["user_id"], entities["event_timestamp"]):
        mine = stats[(stats["user_id"] == user) & (stats["event_timestamp"] <= at)
                     & (stats["event_timestamp"] >= at - TTL)]
        picks_stats.append(_latest(mine, "event_timestamp")[0])
        cand = orders[(orders["user_id"] == user) & (orders["ts"] <= at)]
        if filter_created:
            cand = cand[cand["created"] <= at]
        picks_orders.append(_latest(cand, "ts", "created"))
    return picks_stats, picks_orders


def _same(mine, theirs) -> bool:
    return _missing(mine) and _missing(theirs) or (not _missing(mine) and not _missing(theirs) and mine == theirs)


@pytest.mark.parametrize("full_names,filter_created", [(False, False), (True, True)])
def test_matches_feasts_file_store(case, full_names, filter_created):
    store, entities, refs, stats, orders = case
    got = store.get_historical_features(entity_df=entities, features=refs, full_feature_names=full_names,
                                        filter_by_created_timestamp=filter_created).to_df()
    _, file_views = _views(folder=False)
    want = DaskOfflineStore.get_historical_features(
        store.config, file_views, refs, entities, store.registry, store.project,
        full_feature_names=full_names, filter_by_created_timestamp=filter_created).to_df()
    names = [r.replace(":", "__") if full_names else r.split(":")[1] for r in refs]
    assert list(got.columns) == ["user_id", "event_timestamp", "label", *names]
    # every entity row, in order, duplicates included
    pd.testing.assert_frame_equal(got[["user_id", "event_timestamp", "label"]], entities, check_dtype=False)
    assert str(got["event_timestamp"].dt.tz) == "UTC"

    picks_stats, picks_orders = _reference(entities, stats, orders, filter_created)
    keyed = want.set_index(["user_id", "event_timestamp"])
    assert not keyed.index.duplicated().any()  # the file store returns each (id, timestamp) once
    compared = ties = 0
    for row, stat, (order, tied) in zip(got.itertuples(index=False), picks_stats, picks_orders):
        values = [getattr(row, n) for n in names]
        expected = [None if stat is None else stat[c] for c in ("n", "x", "country", "flag")]
        expected.append(None if order is None else order["amount_src"])
        assert all(_same(a, b) for a, b in zip(values, expected)), (row, expected)
        ties += tied
        key = (row.user_id, row.event_timestamp)
        if key in keyed.index:  # Feast's dask store breaks created_timestamp ties by an unstable sort
            theirs = [keyed.at[key, n] for n in names[:4 if tied else 5]]
            assert all(_same(a, b) for a, b in zip(values, theirs)), (row, theirs)
            compared += 1
    assert compared >= len(keyed) > 40 and ties > 0
    # the file store drops entity rows whose only rows are later or older than ttl: nulls here
    assert not keyed.index.isin([("late", CUTOFFS[1]), ("old", CUTOFFS[2])]).any()
    edge = got[got["user_id"].isin(["late", "old", "nobody"])]  # nobody, late, old, old, late again
    assert edge[names[0]].isna().tolist() == [True, True, True, False, True]
    assert edge[names[1]].iloc[3] == 2.0


def test_entity_rows_in_export_order_get_their_own_rows(case, monkeypatch):
    """Entity rows that are the source rows in file order take the zero-copy path; the same
    rows reversed take the gather path; both give each row its own values."""
    from ltv_pipeline.lib import feast_offline

    store, _, _, stats, _ = case
    stats = stats.sort_values("event_timestamp", kind="stable", ignore_index=True)  # the files' order
    starts = []
    monkeypatch.setattr(feast_offline, "_contiguous",
                        lambda rows, f=feast_offline._contiguous: starts.append(f(rows)) or starts[-1])
    rows = stats[["user_id", "event_timestamp"]]
    refs = ["stats:n", "stats:country", "stats:flag"]
    forward = store.get_historical_features(entity_df=rows, features=refs).to_df()
    backward = store.get_historical_features(entity_df=rows.iloc[::-1], features=refs).to_df()
    assert starts == [0, None]
    for got in (forward, backward.iloc[::-1].reset_index(drop=True)):
        assert got["user_id"].tolist() == stats["user_id"].tolist()
        for name in ("n", "country", "flag"):
            assert [None if _missing(v) else v for v in got[name]] == \
                [None if _missing(v) else v for v in stats[name]]


def test_a_ttl_shorter_than_the_cutoffs_spacing_reads_only_the_cutoffs_it_can_match(tmp_path, monkeypatch):
    """The project's views have ttl = their cutoff day: a lookup reads the files of the cutoffs
    its entity timestamps can reach and no other (the marts' exports grow by a date a day),
    with the same answers as a brute-force point-in-time join."""
    from ltv_pipeline.lib import feast_offline

    stats = _stats_rows(np.random.default_rng(3))
    (tmp_path / "data" / "stats").mkdir(parents=True)
    for i, ts in enumerate(CUTOFFS):
        stats[stats["event_timestamp"] == ts].to_parquet(tmp_path / "data" / "stats" / f"{i}.parquet", index=False)
    store = _store(tmp_path)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    day = timedelta(days=1) - timedelta(microseconds=1)
    store.apply([user, FeatureView(
        name="stats", entities=[user], ttl=day, source=FileSource(path="data/stats", timestamp_field="event_timestamp"),
        schema=[Field(name="user_id", dtype=String), Field(name="n", dtype=Int64), Field(name="x", dtype=Float64)])])
    # at cutoff 1, half a day later (still within ttl of cutoff 1's rows), and "old", whose
    # only row (cutoff 0) is older than ttl
    stamps = [CUTOFFS[1]] * len(USERS) + [CUTOFFS[1] + pd.Timedelta(hours=12)] * len(USERS) + [CUTOFFS[1]]
    entities = pd.DataFrame({"user_id": USERS + USERS + ["old"], "event_timestamp": stamps})
    read = []
    view_join = feast_offline._view_join
    monkeypatch.setattr(feast_offline, "_view_join",
                        lambda *a, **k: read.append(view_join(*a, **k)) or read[-1])
    got = store.get_historical_features(entity_df=entities, features=["stats:n", "stats:x"]).to_df()

    at_one = stats[stats["event_timestamp"] == CUTOFFS[1]]
    assert [r[0].num_rows for r in read] == [len(at_one)]  # cutoff 1's file only
    for row in got.itertuples(index=False):
        mine = stats[(stats["user_id"] == row.user_id) & (stats["event_timestamp"] <= row.event_timestamp)
                     & (stats["event_timestamp"] >= row.event_timestamp - day)]
        want, _ = _latest(mine, "event_timestamp")
        assert _same(row.n, None if want is None else want["n"]) and _same(row.x, None if want is None else want["x"])
    assert got["n"].notna().sum() > 20 and got.loc[got["user_id"] == "old", "n"].isna().all()


def test_windows_merge_overlaps_and_fall_back_to_one_span_when_there_are_too_many():
    from ltv_pipeline.lib.feast_offline import MAX_WINDOWS, _windows

    day = timedelta(days=1) - timedelta(microseconds=1)
    stamps = pd.Series(list(CUTOFFS) + [CUTOFFS[1], CUTOFFS[1] + pd.Timedelta(hours=6)])
    assert _windows(stamps, day) == [  # duplicates once; 6 h later overlaps cutoff 1's window
        (CUTOFFS[0] - day, CUTOFFS[0]), (CUTOFFS[1] - day, CUTOFFS[1] + pd.Timedelta(hours=6)),
        (CUTOFFS[2] - day, CUTOFFS[2])]
    assert _windows(stamps, TTL) == [(CUTOFFS[0] - TTL, CUTOFFS[2])]  # 100 days: all overlap
    assert _windows(stamps, None) == [(None, CUTOFFS[2])]  # no ttl: everything up to the last
    daily = pd.Series(pd.date_range("2024-01-01 23:59:59.999999", periods=MAX_WINDOWS + 1, freq="2D", tz="UTC"))
    assert _windows(daily, day) == [(daily.iloc[0] - day, daily.iloc[-1])]  # too many: one span
    assert len(_windows(daily.iloc[:-1], day)) == MAX_WINDOWS
