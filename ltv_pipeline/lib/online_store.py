"""The Feast online store (no Dagster imports): materialize one cutoff, read a service's features.

The store is lib/online_sqlite.WideSqliteOnlineStore (feature_repo/feature_store.yaml): SQLite
with one row per (customer, feature view) holding all of the view's values, instead of Feast's
sqlite store's one row per (customer, feature), 55 million rows for a million customers. Feast
reads and writes it through the OnlineStore interface (store.get_online_features,
write_to_online_store, materialize); write_view uses its bulk writer on a cutoff's Arrow export
(column-wise encoding, lib/online_codec). Any other store (Feast's sqlite, Redis) gets Feast's
own writer (feast_write). tests/unit/test_online_store.py checks that reads after write_view
equal reads after Feast's write_to_online_store.

Feast is imported inside the functions: the Dagster definitions import this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ltv_pipeline.lib.feature_exports import cutoff_file
from ltv_pipeline.lib.feature_store import (
    JOIN_KEY,
    LTV_MODEL_SERVICE,
    TIMESTAMP,
    _check_markers,
    cutoff_timestamp,
    service_plan,
)

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView

FEAST_WRITE_CHUNK = 10_000


def materialize_online(store: FeatureStore, as_of: date | str) -> dict[str, int]:
    """Write the rows of cutoff `as_of` of every feature view into the online store, reading only
    that cutoff's export file (an upsert per user; users absent from that cutoff keep what they
    had, and online_features reports their older cutoff). Returns rows written per view. Raises
    ValueError when a view's export has no file or no row for the cutoff."""
    expected = cutoff_timestamp(as_of)
    written: dict[str, int] = {}
    for view in store.list_feature_views():
        path = cutoff_file(Path(store.config.repo_path) / view.batch_source.path, as_of)
        if not path.is_file():
            raise ValueError(f"{path} does not exist: cutoff {as_of} was not exported; build it "
                             "with dbt and export it (feature_store.export_cutoffs)")
        table = pq.read_table(path)
        if table.num_rows == 0:
            raise ValueError(f"{path} has no row for cutoff {as_of}: build that cutoff and re-export")
        stamps = [pd.Timestamp(t) for t in table.column(TIMESTAMP).unique().to_pylist()]
        if stamps != [expected]:
            raise ValueError(f"{path} holds event timestamps {stamps[:3]}, not only {expected}")
        write_view(store, view, table)
        written[view.name] = table.num_rows
    return written


def fast_write_supported(store: FeatureStore) -> bool:
    """Whether write_view's bulk path applies (the store is online_sqlite's)."""
    # online_sqlite imports feast, which the caller's FeatureStore has loaded already (4 ms).
    from ltv_pipeline.lib.online_sqlite import STORE_TYPE

    return store.config.online_store.type == STORE_TYPE


def feast_write(store: FeatureStore, view: FeatureView, table: pa.Table) -> None:
    """Feast's own writer (store.write_to_online_store), in chunks that bound its memory."""
    for start in range(0, table.num_rows, FEAST_WRITE_CHUNK):
        store.write_to_online_store(view.name, table.slice(start, FEAST_WRITE_CHUNK).to_pandas())


def write_view(store: FeatureStore, view: FeatureView, table: pa.Table, rows_per_transaction: int | None = None) -> None:
    """Upsert `table` (rows of the view's export) into the online store: the rows Feast's
    writer would write, much faster on online_sqlite's store (see the module docstring)."""
    if not fast_write_supported(store):
        feast_write(store, view, table)
        return
    from ltv_pipeline.lib import online_sqlite

    kwargs = {} if rows_per_transaction is None else {"rows_per_transaction": rows_per_transaction}
    online_sqlite.write_table(store.config, view, table, **kwargs)


def _entity_keys(store: FeatureStore, view: FeatureView, table: pa.Table) -> list[bytes]:
    """Feast's serialized entity key (serialize_entity_key) of each row, as the stores key rows."""
    from ltv_pipeline.lib import online_codec

    types = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
    return online_codec.entity_keys({k: table.column(k) for k in types}, types,
                                    store.config.entity_key_serialization_version).to_pylist()


def online_features(store: FeatureStore, user_ids: Iterable[str],
                    service: str | FeatureService = LTV_MODEL_SERVICE,
                    as_of: date | str | None = None) -> pd.DataFrame:
    """The service's features from the online store: one row per user id, in order, typed as
    in feature_store.training_frame, with the cutoff marker column(s) saying which cutoff the
    values are of (null: the user is not in the online store). With as_of, raises
    StaleFeaturesError when a user's online row is of another cutoff."""
    ids = [str(u) for u in user_ids]
    plan = service_plan(store, service)
    rows = store.get_online_features(features=list(plan.refs), entity_rows=[{JOIN_KEY: u} for u in ids]).to_dict()
    columns: dict[str, object] = {JOIN_KEY: ids}
    for name in plan.names:
        values, kind = rows[name], plan.kinds[name]
        if kind == "num":
            columns[name] = np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
        elif kind == "ts":
            columns[name] = pd.to_datetime(values, utc=True)
        else:
            columns[name] = np.array(values, dtype=object)
    frame = pd.DataFrame(columns)
    if as_of is not None:
        _check_markers(frame, plan.markers, pd.Timestamp(as_of).strftime("%Y-%m-%d"),
                       f"materialize the online store as of {as_of} (the online_features asset)")
    return frame
