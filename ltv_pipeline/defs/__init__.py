"""Dagster definitions, one folder per domain; each folder's __init__ exposes `defs`."""
