"""A Feast offline store whose point-in-time joins run in DuckDB on folders of Parquet files.

feature_store.yaml names it (offline_store.type: ltv_pipeline.lib.feast_offline.
CutoffFolderOfflineStore, Feast's extension point for offline stores). It is Feast 0.67's file
(dask) store except for get_historical_features with an entity DataFrame, done here in DuckDB
over the sources' files (a FileSource path is a folder data/<view>/ of per-cutoff files
<YYYY-MM-DD>.parquet, or one file). Why: Feast's duckdb store needs ibis-framework and crashes
with the installed sqlglot extension (PITFALLS.md); the dask store spent 22 s of CPU on 907k
entity rows, and its point-in-time de-duplication fails on a folder of several files when a
file holds none of the requested entities. Materialization (pull_latest_from_table_or_query,
pull_all_from_table_or_query) and the non-entity mode (entity_df=None) stay the dask store's.

How: per view, the requested columns of the source rows that an entity timestamp can reach
(within [t - ttl, t] of an entity timestamp t: the windows of the distinct entity timestamps,
merged where they overlap) are read into Arrow; DuckDB prunes the other files by their
timestamp statistics, so a view whose ttl is shorter than the spacing of its cutoffs reads only
the files of the requested cutoffs, however many cutoffs the folder holds. One DuckDB query
as-of joins the entity rows to the views' keys and timestamps and returns, per entity row, the
position of its source row; the features are gathered by position (a zero-copy slice when the
entity rows matched consecutive source rows, e.g. entity rows in the export's order).

Semantics per view, as Feast's file store: the source is renamed by its field_mapping and the
projection's join_key_map; an entity row gets the source row with the same join keys and the
latest timestamp_field <= its event timestamp (ties: the latest created_timestamp_column); a
row older than the event timestamp - ttl gives nulls (ttl 0 or None: no bound); with
filter_by_created_timestamp, rows created after the entity timestamp are skipped. The entity
timestamp column is event_timestamp, else the only datetime column; naive values are UTC.
Feature columns are <view>__<feature> with full_feature_names.

Where it differs from the file store: every entity row comes back, in the input order,
duplicates included (the file store de-duplicates rows sharing keys and timestamp, reorders
them, and drops a row whose only source rows are later or older than ttl instead of giving
nulls); created_timestamp ties are always won by the latest created row (the file store's
unstable sort picks either); timestamps are compared at microsecond precision; a source row
with a null timestamp never matches.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast.infra.offline_stores import dask as feast_dask
from feast.infra.offline_stores.file_source import FileSource, SavedDatasetFileStorage
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.utils import _get_requested_feature_views_to_features_dict, _get_requested_on_demand_feature_views

ROW = "__entity_row"
TS = "__entity_ts"


class CutoffFolderOfflineStoreConfig(feast_dask.DaskOfflineStoreConfig):
    """Config of CutoffFolderOfflineStore (no options)."""

    type: Literal["ltv_pipeline.lib.feast_offline.CutoffFolderOfflineStore"] = (
        "ltv_pipeline.lib.feast_offline.CutoffFolderOfflineStore")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _files(source: FileSource, repo_path) -> str:
    """The read_parquet argument of a source: its folder's *.parquet files, or its file."""
    path = Path(str(FileSource.get_uri_for_file_path(repo_path=repo_path, uri=source.file_options.uri)))
    if path.is_dir():
        if not any(path.glob("*.parquet")):
            raise FileNotFoundError(f"{path} holds no .parquet file: export the feature views first")
        return _lit(str(path / "*.parquet"))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Parquet file or folder (source {source.name})")
    return _lit(str(path))


# More windows than this are read as one span, from the first window's start to the last end.
MAX_WINDOWS = 256


def _windows(stamps: pd.Series, ttl: timedelta | None) -> list[tuple[pd.Timestamp | None, pd.Timestamp]]:
    """The spans of source timestamps that the entity timestamps `stamps` (UTC) can match:
    [t - ttl, t] per t, overlapping ones merged; (None, the last t) without ttl."""
    ns = np.unique(stamps.dropna().dt.as_unit("ns").astype("int64").to_numpy())
    if not len(ns):
        ns = np.zeros(1, dtype=np.int64)
    at = lambda v: pd.Timestamp(int(v), tz="UTC")  # noqa: E731
    if ttl is None:
        return [(None, at(ns[-1]))]
    width = ttl // timedelta(microseconds=1) * 1000
    breaks = np.flatnonzero(ns[1:] - width > ns[:-1]) + 1  # a window starts after a gap
    firsts, lasts = ns[np.r_[0, breaks]], ns[np.r_[breaks - 1, len(ns) - 1]]
    if len(firsts) > MAX_WINDOWS:
        return [(at(firsts[0] - width), at(lasts[-1]))]
    return [(at(a - width), at(b)) for a, b in zip(firsts, lasts)]


def _view_join(con, i: int, view, features: list[str], repo_path, stamps: pd.Series,
               filter_created: bool):
    """Read the view's source (the requested features of rows that can match the entity
    timestamps `stamps`, UTC) into Arrow, register its keys as v{i}; returns
    (the features, CTE, join clause onto the entity rows e, expression of the matched row)."""
    source: FileSource = view.batch_source
    back = {new: old for old, new in (source.field_mapping or {}).items()}
    col = lambda name: _q(back.get(name, name))  # noqa: E731 - source column of a mapped name
    keys = [(col(c.name), view.projection.join_key_map.get(c.name, c.name)) for c in view.entity_columns]
    created = source.created_timestamp_column
    ttl = view.ttl if view.ttl and view.ttl.total_seconds() else None
    cols = [f"{src} as __k{j}" for j, (src, _) in enumerate(keys)]
    cols += [f"cast({col(source.timestamp_field)} as timestamptz) as __ts"]
    cols += [f"cast({col(created)} as timestamptz) as __created"] if created else []
    cols += [f"{col(f)} as __f{j}" for j, f in enumerate(features)]
    where = " or ".join(
        f"(__ts <= timestamptz {_lit(hi.isoformat())}"
        + (f" and __ts >= timestamptz {_lit(lo.isoformat())})" if lo is not None else ")")
        for lo, hi in _windows(stamps, ttl))
    table = con.sql(f"select {', '.join(cols)} from read_parquet({_files(source, repo_path)}, "
                    f"union_by_name = true) where {where}").to_arrow_table()
    con.register(f"v{i}_src", table.select([n for n in table.column_names if not n.startswith("__f")])
                 .append_column("__rid", pa.array(np.arange(table.num_rows, dtype=np.int64))))
    on = lambda f: [f"e.{_q(key)} = {f}.__k{j}" for j, (_, key) in enumerate(keys)]  # noqa: E731
    lower = f"e.{TS} - to_microseconds({ttl // timedelta(microseconds=1)})" if ttl else None
    if filter_created and created:  # not an as-of join: the latest row created in time
        cond = " and ".join(on("f") + [f"f.__ts <= e.{TS}", f"f.__created <= e.{TS}"] +
                            ([f"f.__ts >= {lower}"] if lower else []))
        cte = (f"v{i} as (select e.{ROW}, f.* from entities e join v{i}_src f on {cond} "
               f"qualify row_number() over (partition by e.{ROW} order by f.__ts desc, f.__created desc) = 1)")
        join = f"left join v{i} f{i} on f{i}.{ROW} = e.{ROW}"
    else:
        by = ", ".join([f"__k{j}" for j in range(len(keys))] + ["__ts"])
        cte = (f"v{i} as (select * from v{i}_src qualify row_number() over (partition by {by} "
               "order by __created desc nulls last) = 1)" if created  # ties: the latest created
               else f"v{i} as (select * from v{i}_src)")
        join = f"asof left join v{i} f{i} on {' and '.join(on(f'f{i}') + [f'e.{TS} >= f{i}.__ts'])}"
    rid = f"case when f{i}.__ts >= {lower} then f{i}.__rid end" if lower else f"f{i}.__rid"
    return table.select([f"__f{j}" for j in range(len(features))]), cte, join, f"{rid} as __r{i}"


def _entity_timestamp_column(entity_df: pd.DataFrame) -> str:
    if DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL in entity_df.columns:
        return DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
    stamps = entity_df.select_dtypes(include=["datetime", "datetimetz"]).columns
    if len(stamps) != 1:
        raise ValueError(f"Please provide an entity_df with a column named "
                         f"{DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL} representing the time of events.")
    return stamps[0]


def point_in_time(entity_df: pd.DataFrame, plan: list, repo_path, full_names: bool,
                  filter_created: bool = False) -> pa.Table:
    """entity_df (its event timestamps made UTC) with the features of plan, a list of
    (feature view, feature names), appended: one row per entity row, in order."""
    ts_col = _entity_timestamp_column(entity_df)
    frame = entity_df.reset_index(drop=True)
    frame[ts_col] = pd.to_datetime(frame[ts_col], utc=True)
    keys = sorted({v.projection.join_key_map.get(c.name, c.name) for v, _ in plan for c in v.entity_columns})
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise ValueError(f"entity_df lacks the join key column(s) {missing}")
    out = pa.Table.from_pandas(frame, preserve_index=False)
    stamps = out.column(ts_col).cast(pa.timestamp("us", "UTC"), safe=False)
    entities = pa.table({**{k: out.column(k) for k in keys}, TS: stamps,
                         ROW: pa.array(np.arange(len(frame), dtype=np.int64))})
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.register("entities", entities)
        moments = frame[ts_col].drop_duplicates()  # each view's windows start from these
        views = [_view_join(con, i, view, features, repo_path, moments, filter_created)
                 for i, (view, features) in enumerate(plan)]
        ctes, rids = (", ".join(v[k] for v in views) for k in (1, 3))
        joins = " ".join(v[2] for v in views)
        picks = con.sql(f"with {ctes} select {rids} from entities e {joins} order by e.{ROW}"
                        ).to_arrow_table() if views else None
    for i, ((view, features), (table, *_)) in enumerate(zip(plan, views)):
        rows = picks.column(f"__r{i}").combine_chunks()
        prefix = f"{view.projection.name_to_use()}__" if full_names else ""
        start = _contiguous(rows)
        table = table if start is not None else table.combine_chunks()  # take is slow over chunks
        for j, feature in enumerate(features):
            column = table.column(j)
            out = out.append_column(prefix + feature, column.take(rows) if start is None
                                    else column.slice(start, len(rows)))
    return out


def _contiguous(rows: pa.Array) -> int | None:
    """The first source row when the entity rows matched consecutive source rows (entity rows
    in the export's order: the features are then a zero-copy slice), else None."""
    if not len(rows) or rows.null_count:
        return None
    values = rows.to_numpy()
    return int(values[0]) if values[-1] - values[0] == len(values) - 1 and (np.diff(values) == 1).all() else None


class CutoffFolderRetrievalJob(RetrievalJob):
    """A lazy point_in_time query: run on each to_arrow()/to_df()."""

    def __init__(self, run, full_feature_names: bool, on_demand_feature_views: list[OnDemandFeatureView],
                 metadata: RetrievalMetadata, repo_path):
        self._run, self._full, self._odfvs = run, full_feature_names, on_demand_feature_views
        self._metadata, self.repo_path = metadata, repo_path

    @property
    def full_feature_names(self) -> bool:
        return self._full

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata:
        return self._metadata

    def to_df(self, validation_reference=None, timeout=None) -> pd.DataFrame:
        """RetrievalJob.to_df without its reset_index, a copy of every column (to_pandas
        already gives a RangeIndex)."""
        return self.to_arrow(validation_reference=validation_reference, timeout=timeout).to_pandas()

    def _to_arrow_internal(self, timeout=None) -> pa.Table:
        return self._run()

    def _to_df_internal(self, timeout=None) -> pd.DataFrame:
        return self._run().to_pandas()

    def persist(self, storage, allow_overwrite: bool = False, timeout=None) -> None:
        """Write the result to a SavedDatasetFileStorage's local Parquet file."""
        if not isinstance(storage, SavedDatasetFileStorage):
            raise TypeError(f"CutoffFolderRetrievalJob persists to a SavedDatasetFileStorage, got {type(storage)}")
        path = Path(str(FileSource.get_uri_for_file_path(repo_path=self.repo_path, uri=storage.file_options.uri)))
        if path.exists() and not allow_overwrite:
            raise FileExistsError(f"{path} exists (pass allow_overwrite=True to replace it)")
        pq.write_table(self.to_arrow(), path)


class CutoffFolderOfflineStore(feast_dask.DaskOfflineStore):
    """DaskOfflineStore whose point-in-time joins (entity DataFrame given) run in DuckDB."""

    @staticmethod
    def get_historical_features(config, feature_views, feature_refs, entity_df, registry, project,
                                full_feature_names: bool = False, filter_by_created_timestamp: bool = False,
                                **kwargs) -> RetrievalJob:
        if not isinstance(entity_df, pd.DataFrame):  # non-entity mode, dask frames: the file store
            return feast_dask.DaskOfflineStore.get_historical_features(
                config, feature_views, feature_refs, entity_df, registry, project,
                full_feature_names=full_feature_names,
                filter_by_created_timestamp=filter_by_created_timestamp, **kwargs)
        for view in feature_views:
            if not isinstance(view.batch_source, FileSource):
                raise TypeError(f"feature view {view.name}: {type(view).__name__} reads FileSources only")
        odfvs = _get_requested_on_demand_feature_views(feature_refs, config.project, registry)
        by_view, _ = _get_requested_feature_views_to_features_dict(feature_refs, feature_views, odfvs)
        plan = list(by_view.items())
        ts_col = _entity_timestamp_column(entity_df)
        stamps = pd.to_datetime(entity_df[ts_col], utc=True)
        metadata = RetrievalMetadata(features=feature_refs, keys=list(set(entity_df.columns) - {ts_col}),
                                     min_event_timestamp=stamps.min().to_pydatetime(),
                                     max_event_timestamp=stamps.max().to_pydatetime())
        repo_path = config.repo_path
        return CutoffFolderRetrievalJob(
            lambda: point_in_time(entity_df, plan, repo_path, full_feature_names, filter_by_created_timestamp),
            full_feature_names, odfvs, metadata, str(repo_path))
