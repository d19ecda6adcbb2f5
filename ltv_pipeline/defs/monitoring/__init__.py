"""Monitoring domain: the daily monitoring partitions (drift, realised error, volume,
freshness, the retrain decision), the drift sensor and the retraining job it requests. Needs
the shared warehouse_db and model_registry resources (definitions.py)."""

import dagster as dg

from ltv_pipeline.defs.monitoring.assets import monitoring
from ltv_pipeline.defs.monitoring.sensors import drift_sensor, monitor_job, retrain_job

defs = dg.Definitions(assets=[monitoring], jobs=[retrain_job, monitor_job], sensors=[drift_sensor])
