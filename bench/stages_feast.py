"""Benchmark stages of the Feast feature store (issue 5); bench/stages.py runs them after
its own, on the same work directory (the generated log and the ingested warehouse are there)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

STAGES: dict[str, Callable[[Path, int], None]] = {}
