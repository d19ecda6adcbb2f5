"""Locating, preparing and running the dbt project (no Dagster imports)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ltv_pipeline import settings
from ltv_pipeline.lib import files
from ltv_pipeline.lib.dbt_vars import as_cli_args

# Files whose change makes a parsed manifest stale.
_SOURCE_DIRS = ("models", "macros", "tests")
_SOURCE_FILES = ("dbt_project.yml", "profiles.yml")


def dbt_executable() -> str:
    """The venv's dbt, found next to this interpreter even when the venv is not activated."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_env() -> dict[str, str]:
    """Environment for a dbt subprocess: LTV_HOME (absolute; profiles.yml reads it), the
    profiles dir, logs under LTV_HOME and the target dir beside the project."""
    settings.ensure_home()
    env = dict(os.environ)
    env["DBT_PROFILES_DIR"] = str(settings.DBT_PROJECT_DIR)
    env["DBT_LOG_PATH"] = str(settings.dbt_log_dir())
    env["DBT_TARGET_PATH"] = str(settings.dbt_target_dir())
    env["LTV_DUCKDB_MEMORY_LIMIT"] = settings.duckdb_memory_limit()  # profiles.yml reads it
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def manifest_path() -> Path:
    return settings.dbt_target_dir() / "manifest.json"


def _newest_source_mtime() -> float:
    root = settings.DBT_PROJECT_DIR
    times = [(root / f).stat().st_mtime for f in _SOURCE_FILES if (root / f).exists()]
    for d in _SOURCE_DIRS:
        times.extend(p.stat().st_mtime for p in (root / d).rglob("*") if p.is_file())
    return max(times, default=0.0)


def manifest_is_stale() -> bool:
    path = manifest_path()
    return not path.exists() or path.stat().st_mtime < _newest_source_mtime()


def ensure_manifest(force: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing or older than a dbt source file (or
    force); return its path. The parse writes to a private directory and the manifest is
    moved into place atomically, so a process importing the definitions meanwhile never
    reads half a file."""
    path = manifest_path()
    if force or manifest_is_stale():
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".parse-", dir=path.parent))
        try:
            env = dbt_env() | {"DBT_TARGET_PATH": str(scratch)}
            done = subprocess.run(
                [dbt_executable(), "parse", "--quiet", "--project-dir", str(settings.DBT_PROJECT_DIR)],
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"`dbt parse` of {settings.DBT_PROJECT_DIR} failed:\n{done.stdout}{done.stderr}"
                )
            os.replace(scratch / "manifest.json", path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return path


def run_dbt(
    args: Sequence[str],
    vars: Mapping[str, Any] | None = None,
    target_path: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run one dbt command on the project (e.g. ["build"]) as a subprocess, with `vars`
    (from lib.dbt_vars) as --vars. No DuckDB connection may be open in this process (one
    writer per file). Raises RuntimeError with dbt's output when check and dbt fails."""
    env = dbt_env()
    cache = None
    if target_path is not None:
        env["DBT_TARGET_PATH"] = str(target_path)
        cache = parse_cache_path(vars)
        if cache.is_file():  # a fresh run dir starts from the last parse with the same vars
            Path(target_path).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cache, Path(target_path) / PARTIAL_PARSE_FILE)
    cmd = [dbt_executable(), *args, "--project-dir", str(settings.DBT_PROJECT_DIR)]
    if vars is not None:
        cmd += as_cli_args(vars)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"`dbt {' '.join(args)}` failed:\n{done.stdout[-8000:]}{done.stderr}")
    if cache is not None and done.returncode == 0:
        _keep_parse(Path(target_path) / PARTIAL_PARSE_FILE, cache)
    return done


# dbt's saved parse state. dbt reuses it when only some project files changed, and parses
# everything again when the --vars differ (or dbt, the profile or an env var it reads did):
# the full parse of this project costs ~2 s, the partial one ~0.2 s. Each Dagster run has its
# own target dir (run_target), so the state is kept per set of vars under LTV_HOME/dbt/parse.
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
PARSE_STATES_KEPT = 8


def parse_cache_path(vars: Mapping[str, Any] | None) -> Path:
    key = hashlib.sha256(json.dumps(dict(vars or {}), sort_keys=True).encode()).hexdigest()[:16]
    return settings.ltv_home() / "dbt" / "parse" / f"{key}.msgpack"


def _keep_parse(state: Path, cache: Path) -> None:
    """Copy a run's parse state to `cache` (atomically), keeping the newest PARSE_STATES_KEPT."""
    if not state.is_file():
        return
    with files.replacing(cache) as tmp:
        shutil.copyfile(state, tmp)
    others = sorted((p for p in cache.parent.glob("*.msgpack") if p != cache),
                    key=lambda p: p.stat().st_mtime)
    for old in others[:max(len(others) - PARSE_STATES_KEPT + 1, 0)]:
        old.unlink(missing_ok=True)


# Run directories kept under LTV_HOME/dbt/runs (each holds a manifest, the compiled SQL and
# run_results.json: a few MB; a daily schedule would otherwise add about a GB a year).
DBT_RUNS_KEPT = 30


def run_target(ltv_home: Path, run_id: str, keep: int = DBT_RUNS_KEPT) -> Path:
    """LTV_HOME/dbt/runs/<run_id>, the target dir of one Dagster run's dbt invocation, after
    removing all but the newest `keep` other run dirs (oldest modified first)."""
    runs = Path(ltv_home) / "dbt" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    others = sorted((p for p in runs.iterdir() if p.is_dir() and p.name != run_id),
                    key=lambda p: p.stat().st_mtime)
    for old in others[:max(len(others) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    return runs / run_id
