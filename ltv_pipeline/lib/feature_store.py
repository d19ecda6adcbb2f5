"""The Feast feature store of ltv_pipeline: mart exports, registry, training frames, online store.

No Dagster imports. The Feast objects live in feature_repo/ (entities, data sources, feature
views, services); the stores live under LTV_HOME/feast: registry.db, online_store.db and
data/<mart>.parquet, the exports the FileSources read.

Time convention (feature_repo/data_sources.py): the row of cutoff D carries the event timestamp
cutoff_timestamp(D) = D + 1 day - 1 microsecond (UTC), the last instant of D's history. Entity
rows for cutoff D use the same instant, so a point-in-time lookup returns the row of D and never
a later one. Every feature view also carries a cutoff marker field (its "cutoff_field" tag):
retrieval compares it with the requested cutoff and raises StaleFeaturesError rather than hand
out an older cutoff's row that ttl would otherwise let through.
"""

from __future__ import annotations

import importlib
import os
import string
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, RepoConfig
from feast.data_source import DataSource
from feast.types import Bool, Float64, Int64, String, UnixTimestamp

from ltv_pipeline import settings
from ltv_pipeline.lib import warehouse

FEATURE_STORE_YAML = settings.FEATURE_REPO_DIR / "feature_store.yaml"
REPO_MODULES = ("entities", "data_sources", "features", "feature_services")
MARTS_SCHEMA = "marts"
JOIN_KEY = "user_id"
TIMESTAMP = "event_timestamp"
CUTOFF_TAG = "cutoff_field"
LTV_MODEL_SERVICE = "ltv_model_v1"
BTYD_SERVICE = "btyd_v1"
# DuckDB type each Feast type is exported as (the parquet types Feast then reads).
SQL_TYPES = {Float64: "double", Int64: "bigint", String: "varchar", Bool: "boolean",
             UnixTimestamp: "timestamp"}


class StaleFeaturesError(ValueError):
    """A lookup found only the row of an earlier cutoff than the one requested."""


def cutoff_timestamp(cutoff: date | str) -> pd.Timestamp:
    """The event timestamp of cutoff D: D + 1 day - 1 microsecond, UTC."""
    day = pd.Timestamp(cutoff)
    if day != day.normalize():
        raise ValueError(f"a cutoff is a calendar date, got {cutoff!r}")
    return (day + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)).tz_localize("UTC")


def feast_home(ltv_home: Path | None = None) -> Path:
    return Path(ltv_home) / "feast" if ltv_home is not None else settings.feast_dir()


def repo_config(ltv_home: Path | None = None) -> RepoConfig:
    """feature_repo/feature_store.yaml with ${LTV_HOME} substituted from settings (not from the
    environment) and repo_path = LTV_HOME/feast, where the sources' relative paths resolve."""
    home = Path(ltv_home) if ltv_home is not None else settings.ltv_home()
    text = string.Template(FEATURE_STORE_YAML.read_text()).safe_substitute(LTV_HOME=str(home))
    config = RepoConfig(**yaml.safe_load(text))
    config.repo_path = feast_home(home)
    return config


def feature_store(ltv_home: Path | None = None) -> FeatureStore:
    """The FeatureStore of LTV_HOME (creates LTV_HOME/feast/data if needed)."""
    config = repo_config(ltv_home)
    (config.repo_path / "data").mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=config)


def repo_objects() -> list[object]:
    """Every Feast object defined in feature_repo/, found as `feast apply` finds them: its
    modules are imported by their top-level names (they import each other that way)."""
    path = str(settings.FEATURE_REPO_DIR)
    if path not in sys.path:
        sys.path.insert(0, path)
    found: list[object] = []
    for name in REPO_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            kinds = (Entity, DataSource, FeatureView, FeatureService)
            if isinstance(value, kinds) and not any(value is seen for seen in found):
                found.append(value)
    return found


def repo_feature_views() -> list[FeatureView]:
    return [o for o in repo_objects() if isinstance(o, FeatureView)]


def apply_repo(store: FeatureStore) -> list[object]:
    """Register feature_repo's objects (and create the online tables); idempotent."""
    objects = repo_objects()
    store.apply(objects)
    return objects


def export_columns(view: FeatureView) -> list[str]:
    """The SELECT list that turns the view's mart into its source: keys, the event timestamp of
    the cutoff, the cutoff marker and every feature cast to its declared type."""
    cols = [f"cast({JOIN_KEY} as varchar) as {JOIN_KEY}",
            f"cast(cutoff_date as timestamp) + interval 1 day - interval 1 microsecond as {TIMESTAMP}"]
    marker = view.tags[CUTOFF_TAG]
    for field in view.features:
        if field.name == marker:
            cols.append(f"strftime(cutoff_date, '%Y-%m-%d') as {marker}")
        elif field.dtype not in SQL_TYPES:
            raise TypeError(f"{view.name}.{field.name}: no export rule for Feast type {field.dtype}")
        else:
            cols.append(f'cast("{field.name}" as {SQL_TYPES[field.dtype]}) as "{field.name}"')
    return cols


def export_mart(warehouse_path: Path, view: FeatureView, dest: Path) -> int:
    """Write the view's mart (tag dbt_model, schema marts) to `dest` as Parquet, atomically:
    DuckDB COPY to a temporary file beside it, then os.replace. Returns the row count."""
    mart = f"{MARTS_SCHEMA}.{view.tags['dbt_model']}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    query = f"select {', '.join(export_columns(view))} from {mart} order by cutoff_date, {JOIN_KEY}"
    try:
        with warehouse.connect(warehouse_path, read_only=True) as con:
            con.execute(f"copy ({query}) to '{_sql_str(tmp)}' (format parquet, compression zstd)")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return pq.ParquetFile(dest).metadata.num_rows


def export_marts(warehouse_path: Path, ltv_home: Path | None = None) -> dict[str, int]:
    """Export the mart behind every feature view to its FileSource path; rows per view."""
    base = feast_home(ltv_home)
    return {v.name: export_mart(warehouse_path, v, base / v.batch_source.path)
            for v in repo_feature_views()}


def latest_cutoff(warehouse_path: Path) -> date:
    """The latest cutoff_date in marts.customer_features (the default scoring date)."""
    with warehouse.connect(warehouse_path, read_only=True) as con:
        (latest,) = con.execute(f"select max(cutoff_date) from {MARTS_SCHEMA}.customer_features").fetchone()
    if latest is None:
        raise ValueError(f"{MARTS_SCHEMA}.customer_features is empty: build the dbt marts first")
    return latest


def service_views(store: FeatureStore, service: str | FeatureService) -> list[tuple[FeatureView, list[str]]]:
    """(feature view, its feature names in the service) for each view of the service."""
    fs = store.get_feature_service(service, allow_cache=True) if isinstance(service, str) else service
    return [(store.get_feature_view(p.name, allow_registry_cache=True), [f.name for f in p.features])
            for p in fs.feature_view_projections]


def _refs(views: list[tuple[FeatureView, list[str]]]) -> tuple[list[str], list[str]]:
    """Feature references with each view's cutoff marker added, and the marker names."""
    markers = [v.tags[CUTOFF_TAG] for v, _ in views]
    refs = [f"{v.name}:{n}" for (v, names), m in zip(views, markers) for n in [m, *names]]
    return refs, markers


def _typed(frame: pd.DataFrame, views: list[tuple[FeatureView, list[str]]]) -> pd.DataFrame:
    """One dtype per Feast type whatever the store returned: numbers and flags float64 (NaN
    when missing), strings object (None when missing), timestamps datetime64 UTC."""
    for view, _ in views:
        for field in view.features:
            if field.name not in frame.columns:
                continue
            col = frame[field.name]
            if field.dtype in (Int64, Float64, Bool):
                frame[field.name] = pd.to_numeric(col.astype(object).where(col.notna(), None),
                                                  errors="raise").astype("float64")
            elif field.dtype == UnixTimestamp:
                frame[field.name] = pd.to_datetime(col, utc=True)
            else:
                frame[field.name] = col.astype(object).where(col.notna(), None)
    return frame


def training_frame(store: FeatureStore, entity_df: pd.DataFrame,
                   service: str | FeatureService = LTV_MODEL_SERVICE) -> pd.DataFrame:
    """Point-in-time features of `service` for each entity row.

    entity_df holds user_id and either cutoff_date (dates) or event_timestamp (values of
    cutoff_timestamp). The result is entity_df (same rows, order and index; duplicates kept)
    with the features appended; a row whose user has no row at that cutoff gets nulls. Raises
    StaleFeaturesError when only an earlier cutoff's row exists (the cutoff was not exported).
    """
    keys = _entity_keys(entity_df)
    views = service_views(store, service)
    refs, markers = _refs(views)
    names = [r.split(":", 1)[1] for r in refs]
    clash = sorted(set(names) & set(entity_df.columns))
    if clash:
        raise ValueError(f"entity_df has columns named like features: {clash}")
    unique = keys.drop_duplicates(ignore_index=True)
    # The file offline store de-duplicates and reorders entity rows: join back on both keys.
    got = store.get_historical_features(entity_df=unique, features=refs).to_df()
    got[TIMESTAMP] = pd.to_datetime(got[TIMESTAMP], utc=True)
    got = got[[JOIN_KEY, TIMESTAMP, *names]]
    if len(got) != len(unique) or got.duplicated([JOIN_KEY, TIMESTAMP]).any():
        raise RuntimeError(f"Feast returned {len(got)} rows for {len(unique)} distinct entity rows")
    joined = keys.merge(got, on=[JOIN_KEY, TIMESTAMP], how="left", validate="many_to_one")
    expected = (joined[TIMESTAMP] + pd.Timedelta(microseconds=1) - pd.Timedelta(days=1)).dt.strftime("%Y-%m-%d")
    _check_markers(joined, markers, expected)
    out = _typed(joined[[n for n in names if n not in markers]].copy(), views)
    out.index = entity_df.index
    return pd.concat([entity_df, out], axis=1)


def _entity_keys(entity_df: pd.DataFrame) -> pd.DataFrame:
    if JOIN_KEY not in entity_df.columns:
        raise ValueError(f"entity_df needs a {JOIN_KEY} column, got {list(entity_df.columns)}")
    if entity_df[JOIN_KEY].isna().any():
        raise ValueError(f"entity_df has {int(entity_df[JOIN_KEY].isna().sum())} null {JOIN_KEY} values")
    if "cutoff_date" in entity_df.columns:
        days = pd.to_datetime(entity_df["cutoff_date"])
        if (days != days.dt.normalize()).any():
            raise ValueError("entity_df.cutoff_date must hold calendar dates")
        stamps = (days + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)).dt.tz_localize("UTC")
    elif TIMESTAMP in entity_df.columns:
        stamps = pd.to_datetime(entity_df[TIMESTAMP], utc=True)
        bad = stamps[(stamps + pd.Timedelta(microseconds=1)) != (stamps + pd.Timedelta(microseconds=1)).dt.normalize()]
        if len(bad):
            raise ValueError(
                f"entity_df.{TIMESTAMP} must be cutoff timestamps (D 23:59:59.999999 UTC, see "
                f"cutoff_timestamp); got e.g. {bad.iloc[:3].astype(str).tolist()}")
    else:
        raise ValueError(f"entity_df needs a cutoff_date or {TIMESTAMP} column")
    return pd.DataFrame({JOIN_KEY: entity_df[JOIN_KEY].astype(str).to_numpy(),
                         TIMESTAMP: stamps.astype("datetime64[us, UTC]").to_numpy()})


def _check_markers(frame: pd.DataFrame, markers: Sequence[str], expected: pd.Series | str) -> None:
    for marker in markers:
        found = frame[marker]
        stale = found.notna() & (found != expected)
        if stale.any():
            sample = frame.loc[stale, [JOIN_KEY, marker]].head(3).to_dict("records")
            raise StaleFeaturesError(
                f"{int(stale.sum())} row(s) matched an older cutoff's features ({marker}), e.g. "
                f"{sample}: the requested cutoff is missing from the export. Build it with dbt and "
                f"re-export (the feast_registry asset).")


def materialize_online(store: FeatureStore, as_of: date | str) -> dict[str, int]:
    """Write the rows of cutoff `as_of` of every feature view into the online store (an upsert
    per user; users absent from that cutoff keep what they had, and online_features reports
    their older cutoff). Returns rows written per view. Raises ValueError when the export has
    no row for the cutoff."""
    stamp = cutoff_timestamp(as_of).tz_convert(None).to_pydatetime()
    written: dict[str, int] = {}
    for view in store.list_feature_views():
        path = store.config.repo_path / view.batch_source.path
        frame = pq.read_table(path, filters=[(TIMESTAMP, "=", stamp)]).to_pandas()
        if frame.empty:
            raise ValueError(f"{path} has no row for cutoff {as_of}: build that cutoff and re-export")
        store.write_to_online_store(view.name, frame)
        written[view.name] = len(frame)
    return written


def online_features(store: FeatureStore, user_ids: Iterable[str],
                    service: str | FeatureService = LTV_MODEL_SERVICE,
                    as_of: date | str | None = None) -> pd.DataFrame:
    """The service's features from the online store: one row per user id, in order, with the
    cutoff marker column(s) telling which cutoff the values are of (null: user not online).
    With as_of, raises StaleFeaturesError when a user's online row is of another cutoff."""
    ids = [str(u) for u in user_ids]
    views = service_views(store, service)
    refs, markers = _refs(views)
    rows = store.get_online_features(features=refs, entity_rows=[{JOIN_KEY: u} for u in ids]).to_dict()
    frame = _typed(pd.DataFrame(rows)[[JOIN_KEY, *(r.split(":", 1)[1] for r in refs)]], views)
    if as_of is not None:
        _check_markers(frame, markers, pd.Timestamp(as_of).strftime("%Y-%m-%d"))
    return frame


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


__all__ = [
    "BTYD_SERVICE", "LTV_MODEL_SERVICE", "StaleFeaturesError", "apply_repo", "cutoff_timestamp",
    "export_mart", "export_marts", "feature_store", "latest_cutoff", "materialize_online",
    "online_features", "repo_config", "repo_objects", "training_frame",
]
