"""Locating and preparing the dbt project (no Dagster imports)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ltv_pipeline import settings


def dbt_executable() -> str:
    """The venv's dbt, found next to this interpreter even when the venv is not activated."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_env() -> dict[str, str]:
    settings.ensure_home()
    env = dict(os.environ)
    env["DBT_PROFILES_DIR"] = str(settings.DBT_PROJECT_DIR)
    env["DBT_LOG_PATH"] = str(settings.dbt_log_dir())
    env["DBT_TARGET_PATH"] = str(settings.dbt_target_dir())
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def manifest_path() -> Path:
    return settings.dbt_target_dir() / "manifest.json"


def ensure_manifest(force: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing (or force); return its path."""
    path = manifest_path()
    if force or not path.exists():
        env = dbt_env()
        subprocess.run(
            [dbt_executable(), "parse", "--quiet", "--project-dir", str(settings.DBT_PROJECT_DIR)],
            check=True,
            env=env,
        )
    return path
