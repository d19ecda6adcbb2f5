"""The one settings module: where things live and the defaults every stage starts from.

Everything the project writes lives under LTV_HOME (default ./.ltv, made absolute). Paths are
computed when asked for, never frozen at import time, so tests and the CLI can point LTV_HOME
somewhere else before running anything.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = ".ltv"
DEFAULT_SOURCE = "cdnow"
DEFAULT_HORIZON_DAYS = 90
BASE_CURRENCY = "USD"
# Size of the synthetic log that `--source synthetic` generates when no size is given.
DEFAULT_SYNTHETIC_USERS = 5_000
DEFAULT_SYNTHETIC_SEED = 0

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
