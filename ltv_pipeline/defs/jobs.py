"""Jobs that span domains, and the concise progress logger the `ltv` CLI runs them with."""

import logging
import sys

import dagster as dg

from ltv_pipeline import groups
from ltv_pipeline.defs.hooks import RELEASE_MEMORY

# The daily-partitioned assets (scoring, monitoring, the online store per scoring date) run in
# their own jobs (defs/scoring/schedules.py score_job); everything else is one as-of build.
PARTITIONED = dg.AssetSelection.groups(groups.SCORING, groups.MONITORING) | dg.AssetSelection.tag(
    "ltv/serves", "online"
)

full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=dg.AssetSelection.all() - PARTITIONED,
    tags={"ltv/writes-warehouse": "true"},  # settings.WRITES_WAREHOUSE_TAG: one such run at a time
    hooks=RELEASE_MEMORY,
    description="Load the source and build everything downstream of it as of one date: checks, "
    "features, Feast registry, training, backtests, champion. `ltv demo` and `ltv predict` run it, "
    "then the scoring partition of that date (score_job).",
)

_SHOWN_EVENTS = {"STEP_START": "started", "STEP_SUCCESS": "done"}


class _ProgressFormatter(logging.Formatter):
    """One short line per user message or step start/end; errors are reported once by the
    CLI, so failure events (which carry stack traces) are left out here."""

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", {}) or {}
        step = meta.get("step_key") or "run"
        event = meta.get("dagster_event")
        if event is None:
            return f"[ltv] {step}: {meta.get('orig_message', record.getMessage())}"
        return f"[ltv] {step}: {_SHOWN_EVENTS[event.event_type_value]}"


class _ProgressFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", {}) or {}
        event = meta.get("dagster_event")
        return (event is None and record.levelno < logging.ERROR) or (
            event is not None and event.event_type_value in _SHOWN_EVENTS
        )


@dg.logger(
    config_schema={"log_level": dg.Field(str, default_value="INFO")},
    description="Short progress lines on stderr (used by the ltv CLI).",
)
def ltv_progress(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.getLogger("ltv_progress")
    log.setLevel(init_context.logger_config["log_level"])
    log.propagate = False
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_ProgressFormatter())
        handler.addFilter(_ProgressFilter())
        log.addHandler(handler)
    return log


defs = dg.Definitions(
    jobs=[full_pipeline_job],
    loggers={"console": dg.colored_console_logger, "ltv_progress": ltv_progress},
)
