"""Dagster definitions, one folder per domain; each folder's __init__ exposes `defs`."""

import warnings

import dagster as dg

# The daily assets run a backfill as one run (BackfillPolicy.single_run), a parameter Dagster
# still marks beta: every process that loaded the definitions (each `ltv` command) printed five
# BetaWarnings on stderr, where `ltv` writes its progress. Set here, before any asset module.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy`", category=dg.BetaWarning)
