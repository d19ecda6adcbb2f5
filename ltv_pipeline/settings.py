"""The one settings module: where things live and the defaults every stage starts from.

Everything the project writes lives under LTV_HOME (default ./.ltv, made absolute). Paths are
computed when asked for, never frozen at import time, so tests and the CLI can point LTV_HOME
somewhere else before running anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

DEFAULT_HOME = ".ltv"
DEFAULT_SOURCE = "cdnow"
DEFAULT_HORIZON_DAYS = 90
# The currency amounts are reported in when neither LTV_BASE_CURRENCY nor the loaded data says
# otherwise (settings.base_currency).
DEFAULT_BASE_CURRENCY = "USD"
# Size of the synthetic log that `--source synthetic` generates when no size is given.
DEFAULT_SYNTHETIC_USERS = 5_000
DEFAULT_SYNTHETIC_SEED = 0
# First scoring partition when no data has been loaded yet (CDNOW's first day); once a source is
# loaded, the partitions start at its first transaction date (LTV_HOME/data_span.json).
DEFAULT_PARTITIONS_START = "1997-01-01"

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
FEATURE_REPO_DIR = REPO_ROOT / "feature_repo"

# Runs that write the warehouse carry this tag (full_pipeline_job, score_job, retrain_job,
# erase_users_job); the run queue of the UI/daemon starts at most one of them at a time (the
# others wait, queued). In-process CLI runs take LTV_HOME/.warehouse.lock instead (lib/locks.py).
WRITES_WAREHOUSE_TAG = "ltv/writes-warehouse"
WRITES_WAREHOUSE_LIMIT = {"key": WRITES_WAREHOUSE_TAG, "limit": 1}
DAGSTER_YAML = f"""\
telemetry:
  enabled: false
concurrency:
  runs:
    tag_concurrency_limits:
      - key: "{WRITES_WAREHOUSE_TAG}"
        limit: 1
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


def write_data_span(first: date, last: date, currency: str = DEFAULT_BASE_CURRENCY) -> None:
    """Record the loaded data's date range (for the daily partitions) and the currency its
    amounts are reported in (base_currency), atomically."""
    path = data_span_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"first_date": first.isoformat(), "last_date": last.isoformat(),
                               "base_currency": currency}))
    os.replace(tmp, path)


def data_span() -> tuple[date, date] | None:
    """(first, last) transaction date of the loaded data, or None before any load."""
    try:
        span = json.loads(data_span_path().read_text())
        return date.fromisoformat(span["first_date"]), date.fromisoformat(span["last_date"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def configured_base_currency() -> str | None:
    """LTV_BASE_CURRENCY (upper-cased), or None when it is not set. InputError when it is not an
    ISO 4217 code."""
    raw = os.environ.get("LTV_BASE_CURRENCY", "").strip()
    if not raw:
        return None
    from ltv_pipeline.lib.currencies import ISO_4217_CODES
    from ltv_pipeline.lib.errors import InputError

    if raw.upper() not in ISO_4217_CODES:
        raise InputError(f"LTV_BASE_CURRENCY={raw!r} is not an ISO 4217 currency code (such as USD, EUR, GBP)")
    return raw.upper()


def base_currency() -> str:
    """The currency every amount is converted to and reported in: LTV_BASE_CURRENCY if set,
    else the one the last load recorded (a log in a single currency that comes without fx
    rates is kept in that currency, lib/sources.load_currency), else DEFAULT_BASE_CURRENCY."""
    configured = configured_base_currency()
    if configured:
        return configured
    try:
        return json.loads(data_span_path().read_text())["base_currency"]
    except (FileNotFoundError, KeyError, ValueError):
        return DEFAULT_BASE_CURRENCY


def today() -> date:
    """The pipeline's today: the machine's date, or LTV_TODAY (an ISO date) when that is later.
    The daily partitions end the day before it (partitions.py), and an input row is in the
    future only when it is after both the machine's clock and the start of that day
    (lib/validation). `ltv predict` sets LTV_TODAY to the end of its forecast window (cutoff +
    1 day + H days), so a log dated after the machine's clock (a simulation, or a machine whose
    clock is behind) is read as of the cutoff it is given, not cut at the machine's now."""
    machine = date.today()
    raw = os.environ.get("LTV_TODAY", "").strip()
    if not raw:
        return machine
    try:
        given = date.fromisoformat(raw)
    except ValueError:
        from ltv_pipeline.lib.errors import InputError

        raise InputError(f"LTV_TODAY={raw!r} is not an ISO date (YYYY-MM-DD)") from None
    return max(machine, given)


@contextmanager
def today_at_least(day: date) -> Iterator[None]:
    """LTV_TODAY moved to `day` while inside, when that is later than today(); restored after
    (subprocesses started inside inherit it)."""
    previous = os.environ.get("LTV_TODAY")
    if day > today():
        os.environ["LTV_TODAY"] = day.isoformat()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("LTV_TODAY", None)
        else:
            os.environ["LTV_TODAY"] = previous


def clock() -> datetime:
    """The time (UTC, naive) after which a loaded row is in the future: the machine's clock, or
    the start of today() when LTV_TODAY makes that later."""
    machine = datetime.now(timezone.utc).replace(tzinfo=None)
    return max(machine, datetime.combine(today(), datetime.min.time()))


def partitions_start() -> str:
    """Where the daily partitions begin: LTV_PARTITIONS_START if set, else the loaded data's
    first transaction date, else DEFAULT_PARTITIONS_START."""
    if os.environ.get("LTV_PARTITIONS_START"):
        return date.fromisoformat(os.environ["LTV_PARTITIONS_START"]).isoformat()
    span = data_span()
    return span[0].isoformat() if span else DEFAULT_PARTITIONS_START


# DuckDB's buffer memory per process, for the pipeline's warehouse connections and dbt's
# (dbt_project/profiles.yml reads the same variable, same default; they never run at the same
# time). DuckDB's own default is 80% of the machine's RAM: a 30-date scoring backfill at 1M
# users peaked at 20.5 GB. Beyond the limit DuckDB spills to <warehouse>.duckdb.tmp. A fixed
# 4GB cost a 1M-user scoring partition ~3 s of re-reads, hence a share of RAM.
DUCKDB_MEMORY_LIMIT = "50%"


def duckdb_memory_limit() -> str:
    return os.environ.get("LTV_DUCKDB_MEMORY_LIMIT") or DUCKDB_MEMORY_LIMIT


# Users that training cutoffs and backtest origins are built for (dbt's int_training_users: all
# users up to this many, else a fixed md5-ordered sample of this size); scoring dates always
# cover everyone. `ltv predict` at 300k users peaked at 6.7 GB before the cap; the LightGBM
# family keeps at most gbm.MAX_ROWS rows whatever the population.
TRAIN_MAX_USERS = 100_000


def _whole_number_env(name: str, what: str) -> int | None:
    """The whole number >= 1 in the environment variable `name` (None when it is not set); an
    InputError naming the variable for anything else."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        from ltv_pipeline.lib.errors import InputError

        raise InputError(f"{name}={raw!r}: give a whole number of {what} >= 1")
    return int(raw)


def train_max_users() -> int:
    """LTV_TRAIN_MAX_USERS if set, else TRAIN_MAX_USERS."""
    return _whole_number_env("LTV_TRAIN_MAX_USERS", "users") or TRAIN_MAX_USERS


# User-dates per dbt scoring build: customer_features aggregates every user's history once per
# date in one hash aggregate (~2 KB of state per user-date); past DuckDB's memory limit it
# spills, and a 30-date backfill at 1M users ran at 2-3x the time per date of a single date.
# A longer range is built in consecutive dbt runs of at most this many user-dates.
SCORING_BUILD_MAX_USER_DATES = 3_000_000


def scoring_build_max_user_dates() -> int:
    """LTV_SCORING_BUILD_MAX_USER_DATES if set, else SCORING_BUILD_MAX_USER_DATES."""
    return _whole_number_env("LTV_SCORING_BUILD_MAX_USER_DATES", "user-dates") or SCORING_BUILD_MAX_USER_DATES


# Scored dates whose per-date features (marts.customer_features, marts.customer_btyd_summary)
# and Feast export files are kept, counted back from the newest date in the marts: a scoring
# partition deletes older ones, except the training plan's cutoffs and the date the online
# store serves. Each date holds a row per known user (at 1M users ~0.11 GB of marts and 0.06
# GB of exports). Unset (the default): every date is kept. scores.ltv_scores keeps every date.
def keep_scored_days() -> int | None:
    """LTV_KEEP_SCORED_DAYS if set (whole number >= 1), else None: keep every scored date."""
    return _whole_number_env("LTV_KEEP_SCORED_DAYS", "days")


def compute_threads() -> int:
    """Threads for LightGBM: LTV_THREADS if set, else the CPUs this process may run on (a
    fixed 2 left a bigger machine idle). DuckDB picks its own."""
    return _whole_number_env("LTV_THREADS", "threads") or max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def dbt_target_dir() -> Path:
    """A build artifact beside the dbt project (like .venv), prepared by `make install`; it
    holds the parsed manifest dagster-dbt needs at import time, not data."""
    return DBT_PROJECT_DIR / "target"


def dbt_log_dir() -> Path:
    return ltv_home() / "dbt" / "logs"


def upgrade_dagster_yaml(cfg: Path) -> bool:
    """Add the one-warehouse-writer limit to a dagster.yaml written before it existed (or
    edited by hand): into concurrency.runs.tag_concurrency_limits, unless a limit on the tag is
    there already or the file limits runs the legacy way (run_queue / run_coordinator config,
    which Dagster refuses to combine with concurrency.runs: left to its owner). The rest of the
    file is kept (comments are not). Returns whether the file was rewritten."""
    import yaml

    text = cfg.read_text()
    if WRITES_WAREHOUSE_TAG in text:
        return False
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        return False
    legacy = [data.get("run_queue") or {}, (data.get("run_coordinator") or {}).get("config") or {}]
    if any(isinstance(c, dict) and c.get("tag_concurrency_limits") for c in legacy):
        return False
    runs = data.setdefault("concurrency", {}).setdefault("runs", {})
    runs["tag_concurrency_limits"] = [*(runs.get("tag_concurrency_limits") or []),
                                      dict(WRITES_WAREHOUSE_LIMIT)]
    tmp = cfg.with_name(f".{cfg.name}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, cfg)
    return True


def ensure_home() -> Path:
    """Create LTV_HOME and DAGSTER_HOME (telemetry off, one warehouse writer at a time) and
    export both; idempotent. An existing dagster.yaml is kept, with the writers' limit added
    when it lacks it (upgrade_dagster_yaml)."""
    home = ltv_home()
    dh = dagster_home()
    dh.mkdir(parents=True, exist_ok=True)
    cfg = dh / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    else:
        upgrade_dagster_yaml(cfg)
    os.environ["DAGSTER_HOME"] = str(dh)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    return home


# ---- Drift monitoring and retraining (lib/drift.py decide, defs/monitoring) ------------------
# PSI bins: quantiles of the reference (the champion's training scoring date); see lib/drift.py.
DRIFT_PSI_BINS = 10
# A monitored feature has drifted when its PSI exceeds 0.25, the usual "major shift" line of
# the PSI scale (< 0.1 stable, 0.1-0.25 moderate), or when the KS statistic among its observed
# values exceeds 0.2 with at least 200 observed values on each side (KS noise at that size is
# about 0.14 at the 5% level; 0.2 is a shift a person would see in a histogram). PSI over the
# whole base is diluted by the many inactive customers; KS among the observed values is not.
# One drifted feature is enough: both lines sit far above the day-to-day noise.
DRIFT_FEATURE_PSI = 0.25
DRIFT_FEATURE_KS = 0.2
DRIFT_MIN_KS_VALUES = 200
DRIFT_MIN_DRIFTED_FEATURES = 1
# The predicted values are one variable the champion's whole output depends on: 0.25 as well.
DRIFT_PREDICTION_PSI = 0.25
# Realised error of the forecasts made H days before D, once their window has matured:
# retrain when total predicted / total realised leaves [0.8, 1.25] (an aggregate bias of
# 20-25%; the champion's backtest total ratio is reported beside it but is not the baseline:
# its windows fall in other seasons), when the normalized Gini falls more than 0.10 below the
# champion's backtest Gini, or when the MAE is more than 30% above its backtest MAE. Only with
# at least 500 matured customers (fewer make these ratios noisy).
DRIFT_TOTAL_RATIO_LOW = 0.8
DRIFT_TOTAL_RATIO_HIGH = 1.25
DRIFT_GINI_DROP = 0.10
DRIFT_MAE_INCREASE = 0.30
DRIFT_MIN_MATURED_USERS = 500
# Data problems hold a retrain back (it would learn from a broken feed): the last transaction
# more than 3 days before D, or the last 28 days' transactions per day under half of the
# 28 days before the reference date.
DRIFT_MAX_FRESHNESS_LAG_DAYS = 3
DRIFT_MIN_VOLUME_RATIO = 0.5
# The drift sensor requests at most one retraining run per cool-down (and one per monitoring
# date, by its run key), and looks for a new monitoring result this often.
DRIFT_RETRAIN_COOLDOWN_HOURS = 24
DRIFT_SENSOR_INTERVAL_SECONDS = 300


def drift_thresholds():
    """The thresholds above as the lib.drift.Thresholds that decide() takes."""
    from ltv_pipeline.lib.drift import Thresholds

    return Thresholds(
        feature_psi=DRIFT_FEATURE_PSI, feature_ks=DRIFT_FEATURE_KS,
        min_ks_values=DRIFT_MIN_KS_VALUES, min_drifted_features=DRIFT_MIN_DRIFTED_FEATURES,
        prediction_psi=DRIFT_PREDICTION_PSI, total_ratio_low=DRIFT_TOTAL_RATIO_LOW,
        total_ratio_high=DRIFT_TOTAL_RATIO_HIGH, gini_drop=DRIFT_GINI_DROP,
        mae_increase=DRIFT_MAE_INCREASE, min_matured_users=DRIFT_MIN_MATURED_USERS,
        max_freshness_lag_days=DRIFT_MAX_FRESHNESS_LAG_DAYS, min_volume_ratio=DRIFT_MIN_VOLUME_RATIO,
    )
