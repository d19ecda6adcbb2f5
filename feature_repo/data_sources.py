"""Parquet exports of the dbt marts: a folder per mart under LTV_HOME/feast/data/, one file per
cutoff (data/customer_features/2025-09-30.parquet).

ltv_pipeline.lib.feature_store.export_cutoffs writes them (DuckDB COPY to a hidden temporary
file, then os.replace); the file offline store reads a folder with dask, which skips names
starting with '.'. Scoring a day exports just that day's file; the online store reads just it.
Paths are relative: Feast resolves them against repo_path, which the pipeline sets to
LTV_HOME/feast, so nothing here reads the environment.

Timestamp convention. A mart row of cutoff D describes the customer at the end of day D (its
history is every row with ts < D + 1 day). Its event_timestamp is the last instant of that
history: D + 1 day - 1 microsecond, i.e. D 23:59:59.999999 UTC (naive timestamps are UTC).
A point-in-time lookup at the entity timestamp of cutoff D, which is that same instant
(lib.feature_store.cutoff_timestamp), therefore matches the row of D exactly and can never
see the row of a later cutoff E > D, whose timestamp is at least a day later. The midnight
D + 1 day is deliberately not used: it is the first instant *outside* D's history.
"""

from feast import FileSource
from feast.data_format import ParquetFormat

customer_features_source = FileSource(
    name="customer_features_source",
    path="data/customer_features",
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="marts.customer_features: one row per user_id per cutoff_date.",
    tags={"dbt_model": "customer_features"},
    owner="ltv_pipeline",
)

customer_btyd_summary_source = FileSource(
    name="customer_btyd_summary_source",
    path="data/customer_btyd_summary",
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="marts.customer_btyd_summary: one row per purchaser per cutoff_date.",
    tags={"dbt_model": "customer_btyd_summary"},
    owner="ltv_pipeline",
)
