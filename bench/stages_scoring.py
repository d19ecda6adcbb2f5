"""Benchmark stages of partitioned scoring and `ltv predict` (issues 8 and 11); bench/stages.py runs them after
its own, on the same work directory (the generated log and the ingested warehouse are there)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

STAGES: dict[str, Callable[[Path, int], None]] = {}
