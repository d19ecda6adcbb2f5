"""The one settings module: where things live and the defaults every stage starts from.

Everything the project writes lives under LTV_HOME (default ./.ltv, made absolute). Paths are
computed when asked for, never frozen at import time, so tests and the CLI can point LTV_HOME
somewhere else before running anything.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

DEFAULT_HOME = ".ltv"
DEFAULT_SOURCE = "cdnow"
DEFAULT_HORIZON_DAYS = 90
BASE_CURRENCY = "USD"
# Size of the synthetic log that `--source synthetic` generates when no size is given.
DEFAULT_SYNTHETIC_USERS = 5_000
DEFAULT_SYNTHETIC_SEED = 0
# First scoring partition when no data has been loaded yet (CDNOW's first day); once a source is
# loaded, the partitions start at its first transaction date (LTV_HOME/data_span.json).
DEFAULT_PARTITIONS_START = "1997-01-01"

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
FEATURE_REPO_DIR = REPO_ROOT / "feature_repo"

DAGSTER_YAML = """\
telemetry:
  enabled: false
"""


def ltv_home() -> Path:
    """LTV_HOME as an absolute path; exported back to the environment so subprocesses
    (dbt, dagster dev) see the same absolute value."""
    home = Path(os.environ.get("LTV_HOME") or DEFAULT_HOME).expanduser().resolve()
    os.environ["LTV_HOME"] = str(home)
    return home


def warehouse_path() -> Path:
    return ltv_home() / "warehouse.duckdb"


def dagster_home() -> Path:
    return ltv_home() / "dagster"


def feast_dir() -> Path:
    return ltv_home() / "feast"


def model_registry_dir() -> Path:
    return ltv_home() / "models"


def exports_dir() -> Path:
    return ltv_home() / "exports"


def data_span_path() -> Path:
    """First and last transaction dates of the loaded data, written by the ingest asset."""
    return ltv_home() / "data_span.json"


def write_data_span(first: date, last: date) -> None:
    """Record the loaded data's date range (atomically) for the daily partitions."""
    path = data_span_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"first_date": first.isoformat(), "last_date": last.isoformat()}))
    os.replace(tmp, path)


def data_span() -> tuple[date, date] | None:
    """(first, last) transaction date of the loaded data, or None before any load."""
    try:
        span = json.loads(data_span_path().read_text())
        return date.fromisoformat(span["first_date"]), date.fromisoformat(span["last_date"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def partitions_start() -> str:
    """Where the daily partitions begin: LTV_PARTITIONS_START if set, else the loaded data's
    first transaction date, else DEFAULT_PARTITIONS_START."""
    if os.environ.get("LTV_PARTITIONS_START"):
        return date.fromisoformat(os.environ["LTV_PARTITIONS_START"]).isoformat()
    span = data_span()
    return span[0].isoformat() if span else DEFAULT_PARTITIONS_START


def dbt_target_dir() -> Path:
    """A build artifact beside the dbt project (like .venv), prepared by `make install`; it
    holds the parsed manifest dagster-dbt needs at import time, not data."""
    return DBT_PROJECT_DIR / "target"


def dbt_log_dir() -> Path:
    return ltv_home() / "dbt" / "logs"


def ensure_home() -> Path:
    """Create LTV_HOME and DAGSTER_HOME (telemetry off) and export both; idempotent."""
    home = ltv_home()
    dh = dagster_home()
    dh.mkdir(parents=True, exist_ok=True)
    cfg = dh / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(dh)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    return home
