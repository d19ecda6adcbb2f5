"""The Feast feature store (no Dagster imports): config, registry, training frames.

The Feast objects live in feature_repo/; the stores under LTV_HOME/feast (registry.db,
online_store.db, data/<view>/<YYYY-MM-DD>.parquet: one export file per cutoff, written by
lib/feature_exports.py). The online store's writer and reader are in lib/online_store.py.

Time convention (feature_repo/data_sources.py): the row of cutoff D has the event timestamp
cutoff_timestamp(D) = D + 1 day - 1 microsecond UTC, the last instant of D's history; entity rows
for cutoff D use that instant, so a point-in-time lookup gets the row of D and never a later one.
Each view also has a cutoff marker field (tag cutoff_field): retrieval checks it and raises
StaleFeaturesError instead of serving an older cutoff's row. The views' ttl is the cutoff day
(feature_repo/features.py), so a lookup at a cutoff that was never exported comes back empty:
training_frame refuses it (StaleFeaturesError) instead of returning null features.
"""

from __future__ import annotations

import importlib
import string
import sys
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from ltv_pipeline import settings
from ltv_pipeline.lib.lazy import lazy

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView, RepoConfig

# Imported on first use (lib/lazy.py): loading the Dagster definitions must not pay for Feast.
feast = lazy("feast")
feast_types = lazy("feast.types")

FEATURE_STORE_YAML = settings.FEATURE_REPO_DIR / "feature_store.yaml"
REPO_MODULES = ("entities", "data_sources", "features", "feature_services")
MARTS_SCHEMA = "marts"
JOIN_KEY = "user_id"
TIMESTAMP = "event_timestamp"
CUTOFF_TAG = "cutoff_field"
LTV_MODEL_SERVICE = "ltv_model_v1"
BTYD_SERVICE = "btyd_v1"


@cache
def feast_kinds() -> tuple[type, ...]:
    """The Feast object classes repo_objects collects."""
    from feast.data_source import DataSource

    return (feast.Entity, DataSource, feast.FeatureView, feast.FeatureService)


@cache
def value_kinds() -> dict[object, str]:
    """The kind (num, str or ts) a Feast type is read back as."""
    t = feast_types
    return {t.Int64: "num", t.Float64: "num", t.Bool: "num", t.String: "str", t.UnixTimestamp: "ts"}


class StaleFeaturesError(ValueError):
    """A lookup found only the row of an earlier cutoff than the one requested."""


def cutoff_timestamp(cutoff: date | str) -> pd.Timestamp:
    """The event timestamp of cutoff D: D + 1 day - 1 microsecond, UTC."""
    day = pd.Timestamp(cutoff)
    if day != day.normalize():
        raise ValueError(f"a cutoff is a calendar date, got {cutoff!r}")
    return (day + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)).tz_localize("UTC")


def feast_home(ltv_home: Path | None = None) -> Path:
    """LTV_HOME/feast: registry.db, online_store.db and data/ (the exports)."""
    return Path(ltv_home) / "feast" if ltv_home is not None else settings.feast_dir()


def repo_config(ltv_home: Path | None = None) -> RepoConfig:
    """feature_repo/feature_store.yaml with ${LTV_HOME} substituted from settings (not from the
    environment) and repo_path = LTV_HOME/feast, where the sources' relative paths resolve."""
    home = Path(ltv_home) if ltv_home is not None else settings.ltv_home()
    text = string.Template(FEATURE_STORE_YAML.read_text()).safe_substitute(LTV_HOME=str(home))
    config = feast.RepoConfig(**yaml.safe_load(text))
    config.repo_path = feast_home(home)
    return config


def feature_store(ltv_home: Path | None = None) -> FeatureStore:
    """The FeatureStore of LTV_HOME (creates LTV_HOME/feast/data if needed)."""
    config = repo_config(ltv_home)
    (config.repo_path / "data").mkdir(parents=True, exist_ok=True)
    return feast.FeatureStore(config=config)


def repo_objects() -> list[object]:
    """Every Feast object defined in feature_repo/, found as `feast apply` finds them: its
    modules are imported by their top-level names (they import each other that way)."""
    path = str(settings.FEATURE_REPO_DIR)
    if path not in sys.path:
        sys.path.insert(0, path)
    found: list[object] = []
    for name in REPO_MODULES:
        module = importlib.import_module(name)
        if Path(module.__file__).parent != settings.FEATURE_REPO_DIR:
            raise ImportError(f"module {name!r} comes from {module.__file__}, not feature_repo/")
        for value in vars(module).values():
            if isinstance(value, feast_kinds()) and not any(value is seen for seen in found):
                found.append(value)
    return found


def apply_repo(store: FeatureStore) -> list[object]:
    """Register feature_repo's objects (and create the online tables); idempotent."""
    objects = repo_objects()
    store.apply(objects)
    _PLANS.pop(store, None)
    return objects


@dataclass(frozen=True)
class ServicePlan:
    """What reading a service takes: feature references (each view's cutoff marker added), the
    output column names, the markers, and each column's kind (num, str or ts)."""

    refs: tuple[str, ...]
    names: tuple[str, ...]
    markers: tuple[str, ...]
    kinds: dict[str, str]
    folders: tuple[str, ...] = ()  # each view's source path, relative to the repo path


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def service_plan(store: FeatureStore, service: str | FeatureService) -> ServicePlan:
    """The plan of a service, cached per store for the registry's cache_ttl_seconds (resolving
    a service from the registry costs several milliseconds, an online read about one)."""
    name = service if isinstance(service, str) else service.name
    cache = _PLANS.setdefault(store, {})
    hit = cache.get(name)
    if hit and time.monotonic() - hit[0] < store.config.registry.cache_ttl_seconds:
        return hit[1]
    fs = store.get_feature_service(service, allow_cache=True) if isinstance(service, str) else service
    refs, names, markers, kinds, folders = [], [], [], {}, []
    for projection in fs.feature_view_projections:
        view = store.get_feature_view(projection.name, allow_registry_cache=True)
        dtypes = {f.name: f.dtype for f in view.features}
        marker = view.tags[CUTOFF_TAG]
        markers.append(marker)
        folders.append(view.batch_source.path)
        for feature in [marker, *(f.name for f in projection.features)]:
            refs.append(f"{projection.name_to_use()}:{feature}")
            names.append(feature)
            kinds[feature] = value_kinds()[dtypes[feature]]
    if len(set(names)) != len(names):
        raise ValueError(f"feature service {name} repeats a feature name: {names}")
    plan = ServicePlan(tuple(refs), tuple(names), tuple(markers), kinds, tuple(folders))
    cache[name] = (time.monotonic(), plan)
    return plan


def _typed(frame: pd.DataFrame, plan: ServicePlan) -> pd.DataFrame:
    """One dtype per Feast type whatever the store returned: numbers and flags float64 (NaN
    when missing), strings object (None when missing), timestamps datetime64 UTC."""
    for name in plan.names:
        col, kind = frame[name], plan.kinds[name]
        if kind == "num" and pd.api.types.is_numeric_dtype(col):
            frame[name] = col.astype("float64")
        elif kind == "num":
            frame[name] = pd.to_numeric(col.astype(object).where(col.notna(), None)).astype("float64")
        elif kind == "ts":
            frame[name] = pd.to_datetime(col, utc=True)
        else:
            frame[name] = col.astype(object).where(col.notna(), None)
    return frame


def training_frame(store: FeatureStore, entity_df: pd.DataFrame,
                   service: str | FeatureService = LTV_MODEL_SERVICE) -> pd.DataFrame:
    """Point-in-time features of `service` for each entity row.

    entity_df holds user_id and either cutoff_date (dates) or event_timestamp (values of
    cutoff_timestamp). The result is entity_df (same rows, order and index; duplicates kept)
    with the features appended; a row whose user has no row at that cutoff gets nulls. Raises
    StaleFeaturesError when no view of the service has an export of a requested cutoff, or a
    lookup found only an earlier cutoff's row (a view whose ttl reaches past its cutoff day).
    """
    keys = _entity_keys(entity_df)
    plan = service_plan(store, service)
    names, markers = list(plan.names), plan.markers
    clash = sorted(set(names) & set(entity_df.columns))
    if clash:
        raise ValueError(f"entity_df has columns named like features: {clash}")
    if keys.empty:
        raise ValueError("entity_df has no rows")
    _require_exports(store, plan, keys[TIMESTAMP])
    # This repo's offline store (lib/feast_offline.py) returns every entity row in input
    # order, duplicates included: its Arrow columns are used as they come. Feast's own file
    # store de-duplicates and reorders entity rows, and drops those whose user has only later
    # rows (instead of returning nulls): with such a store the rows are joined back on both keys.
    got = store.get_historical_features(entity_df=keys, features=list(plan.refs)).to_arrow()
    features = [n for n in names if n not in markers]
    aligned = got.num_rows == len(keys) and \
        got.column(JOIN_KEY).to_numpy(zero_copy_only=False).tolist() == keys[JOIN_KEY].tolist()
    if aligned:
        found = pd.DataFrame({JOIN_KEY: keys[JOIN_KEY].to_numpy(),
                              **{m: got.column(m).to_pandas() for m in markers}})
        typed = pa.table({n: got.column(n).cast(_ARROW_KINDS[plan.kinds[n]]) for n in features}).to_pandas()
    else:
        found = _joined_back(keys, got.to_pandas(), names)
        typed = _typed(found[names].copy(), plan)
    _check_markers(found, markers, _cutoff_days(keys[TIMESTAMP]), "that cutoff is not in the "
                   "export; build it with dbt, then re-export (the feast_registry asset)")
    result = entity_df.reset_index(drop=True)
    for name in features:
        result[name] = typed[name].to_numpy()
    result.index = entity_df.index
    return result


# The dtype of each kind of feature in a training frame, cast in Arrow (to_pandas then gives
# float64 with NaN, object strings with None, datetime64[ns, UTC]); _typed does the same in pandas.
_ARROW_KINDS = {"num": pa.float64(), "str": pa.string(), "ts": pa.timestamp("ns", "UTC")}


def _require_exports(store: FeatureStore, plan: ServicePlan, stamps: pd.Series) -> None:
    """Every requested cutoff has an export file in at least one of the service's folders (a
    view may lack one: no purchaser at that cutoff, no BTYD summary row)."""
    from ltv_pipeline.lib.feature_exports import cutoff_file  # it imports this module

    folders = [Path(store.config.repo_path) / f for f in plan.folders]
    if not folders or not all(f.is_dir() for f in folders):
        return  # sources that are single files: nothing to check per cutoff
    days = sorted(set(_cutoff_days(pd.Series(stamps.unique()))))
    missing = [d for d in days if not any(cutoff_file(f, d).is_file() for f in folders)]
    if missing:
        raise StaleFeaturesError(f"no feature export of cutoff(s) {missing[:5]} under "
                                 f"{', '.join(str(f) for f in folders)}: that cutoff is not in the export; "
                                 "build it with dbt, then re-export (the feast_registry asset)")


def _cutoff_days(stamps: pd.Series) -> pd.Series:
    """The cutoff date (YYYY-MM-DD) each entity timestamp stands for (cutoff_timestamp's inverse)."""
    codes, uniques = pd.factorize(stamps)  # a few cutoffs: format each once
    days = (uniques + pd.Timedelta(microseconds=1) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    return pd.Series(np.asarray(days, dtype=object)[codes], index=stamps.index)


def _joined_back(keys: pd.DataFrame, got: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """A store's result (de-duplicated, reordered) joined back to every entity row."""
    got[TIMESTAMP] = pd.to_datetime(got[TIMESTAMP], utc=True)
    got = got[[JOIN_KEY, TIMESTAMP, *names]].drop_duplicates([JOIN_KEY, TIMESTAMP, *names])
    if got.duplicated([JOIN_KEY, TIMESTAMP]).any():
        raise RuntimeError("Feast returned more than one row for an entity row")
    return keys.merge(got, on=[JOIN_KEY, TIMESTAMP], how="left", validate="many_to_one")


def _entity_keys(entity_df: pd.DataFrame) -> pd.DataFrame:
    """(user_id, event_timestamp) per entity row, validated; event timestamps UTC."""
    if JOIN_KEY not in entity_df.columns or entity_df[JOIN_KEY].isna().any():
        raise ValueError(f"entity_df needs a {JOIN_KEY} column without nulls, got {list(entity_df.columns)}")
    if "cutoff_date" in entity_df.columns:
        days = pd.to_datetime(entity_df["cutoff_date"])
        stamps = (days + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)).dt.tz_localize("UTC")
    elif TIMESTAMP in entity_df.columns:
        stamps = pd.to_datetime(entity_df[TIMESTAMP], utc=True)
    else:
        raise ValueError(f"entity_df needs a cutoff_date or {TIMESTAMP} column")
    next_day = stamps + pd.Timedelta(microseconds=1)
    if (next_day != next_day.dt.normalize()).any():
        bad = stamps[next_day != next_day.dt.normalize()].iloc[:3].astype(str).tolist()
        raise ValueError(f"entity_df: cutoff_date must hold dates and {TIMESTAMP} cutoff timestamps "
                         f"(D 23:59:59.999999 UTC, see cutoff_timestamp); got e.g. {bad}")
    return pd.DataFrame({JOIN_KEY: entity_df[JOIN_KEY].astype(str).to_numpy(),
                         TIMESTAMP: stamps.astype("datetime64[us, UTC]").array})


def _check_markers(frame: pd.DataFrame, markers: Sequence[str], expected: pd.Series | str, fix: str) -> None:
    for marker in markers:
        stale = frame[marker].notna() & (frame[marker] != expected)
        if stale.any():
            sample = frame.loc[stale, [JOIN_KEY, marker]].head(3).to_dict("records")
            raise StaleFeaturesError(f"{int(stale.sum())} row(s) hold features of another cutoff than "
                                     f"the one requested ({marker}), e.g. {sample}: {fix}")
