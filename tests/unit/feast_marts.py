"""Small marts written straight into a temporary warehouse (no dbt), for the Feast tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from feast.types import Bool, Float64, Int64, String, UnixTimestamp

from ltv_pipeline.lib import feature_exports as exports
from ltv_pipeline.lib import feature_store as fs

D0, D1, D2 = date(2025, 6, 30), date(2025, 9, 30), date(2025, 12, 31)
VIEWS = {v.name: v for v in fs.repo_objects() if isinstance(v, fs.feast.FeatureView)}
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
    exports.export_cutoffs(warehouse, home)
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
