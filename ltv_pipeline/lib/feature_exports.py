"""The marts' exports that Feast reads (no Dagster imports): one Parquet file per feature view
and cutoff under LTV_HOME/feast/data/<view>/<YYYY-MM-DD>.parquet, and the record of which
cutoff the online store was last materialized as of.

What to export (each view's mart, folder and typed SELECT list) comes from feature_repo/'s Feast
objects. Building them imports Feast and the repo (~3.5-6 s), which a scoring partition would
otherwise pay only to write files: the list is kept in LTV_HOME/feast/export_plan.json with a
fingerprint of feature_repo/ and of this module, and rebuilt from the repo when either
changes (or the file is missing or unreadable)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ltv_pipeline import settings
from ltv_pipeline.lib import files, warehouse
from ltv_pipeline.lib.feature_store import (
    CUTOFF_TAG,
    JOIN_KEY,
    MARTS_SCHEMA,
    TIMESTAMP,
    feast,
    feast_home,
    feast_types,
    repo_objects,
)

if TYPE_CHECKING:
    from feast import FeatureView


@cache
def sql_types() -> dict[object, str]:
    """DuckDB type each Feast type is exported as (the parquet types Feast then reads)."""
    t = feast_types
    return {t.Float64: "double", t.Int64: "bigint", t.String: "varchar", t.Bool: "boolean",
            t.UnixTimestamp: "timestamp"}


def export_columns(view: FeatureView) -> list[str]:
    """The SELECT list that turns the view's mart into its source: keys, the event timestamp of
    the cutoff, the cutoff marker and every feature cast to its declared type."""
    cols = [f"cast({JOIN_KEY} as varchar) as {JOIN_KEY}",
            # tz-aware UTC: Feast's file store otherwise converts it row by row in Python.
            "(cast(cutoff_date as timestamp) + interval 1 day - interval 1 microsecond) "
            f"at time zone 'UTC' as {TIMESTAMP}"]
    marker = view.tags[CUTOFF_TAG]
    for field in view.features:
        if field.name == marker:
            cols.append(f"strftime(cutoff_date, '%Y-%m-%d') as {marker}")
        elif field.dtype not in sql_types():
            raise TypeError(f"{view.name}.{field.name}: no export rule for Feast type {field.dtype}")
        else:
            cols.append(f'cast("{field.name}" as {sql_types()[field.dtype]}) as "{field.name}"')
    return cols


def cutoff_file(folder: Path, cutoff: date | str) -> Path:
    """The export of one cutoff in a source's folder: <folder>/<YYYY-MM-DD>.parquet (a plain name,
    not a hive-style k=v one, so dask reads the folder's files as they are)."""
    return folder / f"{pd.Timestamp(cutoff):%Y-%m-%d}.parquet"


ONLINE_AS_OF_FILE = "online_as_of.json"


def online_as_of(ltv_home: Path | None = None) -> date | None:
    """The cutoff the online store was last materialized as of (LTV_HOME/feast/online_as_of.json),
    or None when it never was or that cutoff's export no longer exists (the marts were rebuilt
    without it, e.g. after loading other data: the record no longer says anything)."""
    path = feast_home(ltv_home) / ONLINE_AS_OF_FILE
    try:
        day = date.fromisoformat(json.loads(path.read_text())["as_of"])
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        return None
    views = feast_home(ltv_home) / "data"
    exported = views.is_dir() and any(cutoff_file(v, day).is_file() for v in views.iterdir() if v.is_dir())
    return day if exported else None


def record_online_as_of(day: date, ltv_home: Path | None = None) -> None:
    files.write_json({"as_of": day.isoformat()}, feast_home(ltv_home) / ONLINE_AS_OF_FILE)


def online_write_plan(dates: Sequence[date], current: date | None) -> tuple[date | None, str]:
    """Which date a run over `dates` writes to the online store, and why. One date: that date
    (an explicit request, even an older one). A range (a backfill): its last date, unless the
    store is already as of a later date (a backfill of the past must not move serving back)."""
    last = max(dates)
    if len(dates) == 1:
        return last, f"the run's date {last}"
    if current is not None and current > last:
        return None, (f"the online store is already as of {current}, later than this backfill's "
                      f"last date {last}; materialize a single date to move it back")
    return last, f"the backfill's last date {last}"


EXPORT_PLAN_FILE = "export_plan.json"


@dataclass(frozen=True)
class ViewExport:
    """One feature view's export: its name, its mart, its folder under LTV_HOME/feast and the
    SELECT list (export_columns)."""

    name: str
    mart: str
    folder: str
    columns: tuple[str, ...]


def plan_fingerprint() -> str:
    """A digest of what the plan is derived from: feature_repo/'s files and this module."""
    digest = hashlib.sha256()
    paths = sorted(p for p in settings.FEATURE_REPO_DIR.iterdir()
                   if p.is_file() and p.suffix in (".py", ".yaml")) + [Path(__file__)]
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def export_plan(ltv_home: Path | None = None) -> list[ViewExport]:
    """Every feature view's export, from LTV_HOME/feast/export_plan.json when its fingerprint
    is current, else from the Feast repo (and the file is rewritten)."""
    path = feast_home(ltv_home) / EXPORT_PLAN_FILE
    fingerprint = plan_fingerprint()
    try:
        saved = json.loads(path.read_text())
        if saved["fingerprint"] == fingerprint:
            return [ViewExport(v["name"], v["mart"], v["folder"], tuple(v["columns"]))
                    for v in saved["views"]]
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        pass
    plan = [ViewExport(v.name, f"{MARTS_SCHEMA}.{v.tags['dbt_model']}", v.batch_source.path,
                       tuple(export_columns(v)))
            for v in repo_objects() if isinstance(v, feast.FeatureView)]
    files.write_json({"fingerprint": fingerprint, "views": [asdict(v) for v in plan]}, path)
    return plan


def export_cutoffs(warehouse_path: Path, ltv_home: Path | None = None,
                   cutoffs: Iterable[date | str] | None = None, *,
                   rebuilt: Iterable[date | str] | None = None) -> dict[str, int]:
    """Export the mart behind every feature view to its FileSource folder, one Parquet file per
    cutoff (LTV_HOME/feast/data/<view>/<YYYY-MM-DD>.parquet); returns rows written per view.

    cutoffs=None exports every cutoff present in each mart and deletes the files of cutoffs no
    longer in it; a list exports exactly those cutoffs (replacing their files; a cutoff with no
    row in a mart gets an empty file) and raises ValueError when no mart has a row for one of
    them. Each file is written atomically (DuckDB COPY to a hidden temporary file beside it, then
    os.replace); the DuckDB connection is closed before this returns.

    With cutoffs=None and `rebuilt` (the cutoffs a dbt build just wrote: the training plan's),
    a cutoff outside `rebuilt` whose file exists with the schema of a `rebuilt` cutoff's new
    file is left as it is: its rows were exported when it was built (a scoring partition exports
    its own dates) and only a build of that date changes them (an erasure rewrites the files
    too). The marts keep every date ever scored, so exporting all of them again made each
    training run slower by a date a day (1M users: ~3 s per date).
    """
    base = feast_home(ltv_home)
    wanted = None if cutoffs is None else sorted({pd.Timestamp(c).date() for c in cutoffs})
    fresh = None if rebuilt is None else {pd.Timestamp(c).date() for c in rebuilt}
    views = export_plan(ltv_home)
    written: dict[str, int] = {}
    with warehouse.connect(warehouse_path, read_only=True) as con:
        present = {v.name: {r[0] for r in con.execute(
            f"select distinct cutoff_date from {v.mart}").fetchall()} for v in views}
        empty = [v.mart for v in views if not present[v.name]]
        if wanted is None and empty:
            raise ValueError(f"{', '.join(empty)} is empty: build the dbt marts first")
        if wanted is not None:
            absent = [d.isoformat() for d in wanted if not any(d in days for days in present.values())]
            if absent:
                raise ValueError(f"no mart behind the feature views has a row for cutoff(s) {absent}: "
                                 "build them with dbt first")
        for view in views:
            days = sorted(present[view.name]) if wanted is None else wanted
            folder = base / view.folder
            folder.mkdir(parents=True, exist_ok=True)
            export = lambda ds: sum(_export_cutoff(con, view, d, cutoff_file(folder, d)) for d in ds)  # noqa: E731
            if wanted is None and fresh is not None and fresh & set(days):
                built = [d for d in days if d in fresh]
                written[view.name] = export(built)  # first: their new files' schema is the reference
                schema = pq.read_schema(cutoff_file(folder, built[0]))
                written[view.name] += export([d for d in days if d not in fresh
                                              and not _has_schema(cutoff_file(folder, d), schema)])
            else:
                written[view.name] = export(days)
            if wanted is None:
                keep = {cutoff_file(folder, d).name for d in days}
                for stale in folder.glob("*.parquet"):
                    if stale.name not in keep:
                        stale.unlink()
    return written


def delete_cutoff_files(ltv_home: Path | None, cutoffs: Iterable[date | str]) -> int:
    """Delete every feature view's export file of `cutoffs`; returns how many existed."""
    base = feast_home(ltv_home)
    paths = [cutoff_file(base / view.folder, c) for view in export_plan(ltv_home) for c in cutoffs]
    existing = [p for p in paths if p.is_file()]
    for path in existing:
        path.unlink()
    return len(existing)


def _has_schema(path: Path, schema: pa.Schema) -> bool:
    """The Parquet file exists, is readable and has exactly this schema."""
    try:
        return pq.read_schema(path).equals(schema)
    except (OSError, pa.ArrowException):
        return False


def _export_cutoff(con, view: ViewExport, day: date, dest: Path) -> int:
    """COPY the view's mart rows of one cutoff to `dest` (atomically); returns the row count."""
    query = (f"select {', '.join(view.columns)} from {view.mart} "
             f"where cutoff_date = date '{day.isoformat()}' order by {JOIN_KEY}")
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        target = str(tmp).replace("'", "''")
        (rows,) = con.execute(f"copy ({query}) to '{target}' (format parquet, compression zstd)").fetchone()
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return int(rows)
