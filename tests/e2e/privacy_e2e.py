"""Helpers of the privacy and concurrency e2e tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LTV = str(Path(sys.executable).parent / "ltv")
AS_OF = "2025-06-30"


def env_for(home: Path) -> dict[str, str]:
    env = {**os.environ, "LTV_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    return env


def ltv(home: Path, *args: str, check: bool = False, timeout: int = 1800) -> subprocess.CompletedProcess:
    done = subprocess.run([LTV, *args], env=env_for(home), capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done
