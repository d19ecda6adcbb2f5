"""Evaluation domain: rolling-origin backtests and the champion (promotion gate). Its assets
need the shared warehouse_db and model_registry resources, merged in ltv_pipeline/definitions.py."""

import dagster as dg

from ltv_pipeline.defs.evaluation.assets import backtest, champion

defs = dg.Definitions(assets=[backtest, champion])
