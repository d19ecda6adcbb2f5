"""The drift sensor and the jobs of the monitoring domain.

drift_sensor reads the latest materialization of the monitoring asset, re-applies the ONE
decision function (lib/drift.decide, thresholds from settings) to its figures and, on a
retrain, requests a run of retrain_job as of that monitoring date. Repeats are prevented
three ways: the cursor remembers the last monitoring result it evaluated (the next tick sees
nothing new), the run key retrain-<D> makes Dagster drop a second request for the same date,
and a cool-down (settings.DRIFT_RETRAIN_COOLDOWN_HOURS) spaces retrains out, counted from the
sensor's last request and from any retrain_job run created in that window.
"""

import json
import time
from datetime import datetime, timedelta, timezone

import dagster as dg

from ltv_pipeline import groups, settings
from ltv_pipeline.defs.hooks import RELEASE_MEMORY
from ltv_pipeline.defs.jobs import PARTITIONED
from ltv_pipeline.defs.monitoring.assets import FIGURES_KEY, monitoring
from ltv_pipeline.defs.transform.assets import DBT_ASSETS_NAME
from ltv_pipeline.lib import drift

# The unpartitioned training graph without the loads: dbt build as of D (with its tests),
# the quality and leakage checks, the Feast registry, training, backtests and the champion
# with its promotion gate (a worse challenger does not replace the champion; the champion
# asset's metadata says why).
retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.all() - PARTITIONED - dg.AssetSelection.groups(groups.INGEST),
    description="Retrain as of a date on the data already loaded: dbt build, checks, Feast "
    "registry, training, backtests, champion (promotion gate). Requested by drift_sensor.",
    tags={settings.WRITES_WAREHOUSE_TAG: "true"},  # one warehouse writer at a time
    hooks=RELEASE_MEMORY,
)

monitor_job = dg.define_asset_job(
    "monitor_job", selection=dg.AssetSelection.assets(monitoring),
    tags={settings.WRITES_WAREHOUSE_TAG: "true"},
    hooks=RELEASE_MEMORY,
    description="Materialize monitoring partitions (the scores of the day must exist).",
)


def retrain_run_config(day: str, horizon_days: int) -> dict:
    """retrain_job's run config: the dbt plan as of `day` with the champion's horizon."""
    return {"ops": {DBT_ASSETS_NAME: {"config": {"as_of": day, "horizon_days": int(horizon_days)}}}}


def _recent_retrain(instance: dg.DagsterInstance, since: float) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(
        job_name=retrain_job.name, created_after=datetime.fromtimestamp(since, tz=timezone.utc)), limit=1)
    return runs[0] if runs else None


@dg.sensor(job=retrain_job, minimum_interval_seconds=settings.DRIFT_SENSOR_INTERVAL_SECONDS,
           description="Requests retrain_job when the latest monitoring result calls for it "
           "(lib/drift.decide), once per monitoring date and at most once per cool-down.")
def drift_sensor(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    found = context.instance.fetch_materializations(monitoring.key, limit=1).records
    event = found[0] if found else None
    if event is None:
        return dg.SkipReason("no monitoring result yet: materialize a monitoring partition")
    if event.storage_id <= cursor.get("storage_id", -1):
        return dg.SkipReason(f"no new monitoring result since {cursor.get('as_of')}")
    materialization = event.asset_materialization
    entry = materialization.metadata.get(FIGURES_KEY)
    day = materialization.partition
    cursor |= {"storage_id": event.storage_id, "as_of": day}
    if entry is None:
        context.update_cursor(json.dumps(cursor))
        return dg.SkipReason(f"monitoring {day} carries no figures: re-materialize it")
    figures = entry.value
    decision = drift.decide(figures, settings.drift_thresholds())
    if not decision.retrain:
        context.update_cursor(json.dumps(cursor))
        return dg.SkipReason(f"monitoring {day}: no retrain" +
                             (f" ({'; '.join(decision.reasons)})" if decision.reasons else ""))
    now = time.time()
    cooldown = timedelta(hours=settings.DRIFT_RETRAIN_COOLDOWN_HOURS).total_seconds()
    last = cursor.get("requested_at")
    if last is not None and now - last < cooldown:
        context.update_cursor(json.dumps(cursor))
        return dg.SkipReason(f"monitoring {day} calls for a retrain but the last one was requested "
                             f"{(now - last) / 3600:.1f} h ago (for {cursor.get('requested_for')}); "
                             f"cool-down {settings.DRIFT_RETRAIN_COOLDOWN_HOURS} h")
    recent = _recent_retrain(context.instance, now - cooldown)
    if recent is not None:
        context.update_cursor(json.dumps(cursor))
        return dg.SkipReason(f"monitoring {day} calls for a retrain but retrain_job run {recent.run_id} "
                             f"started within the {settings.DRIFT_RETRAIN_COOLDOWN_HOURS} h cool-down")
    context.update_cursor(json.dumps(cursor | {"requested_at": now, "requested_for": day}))
    return dg.RunRequest(
        run_key=f"retrain-{day}",
        run_config=retrain_run_config(day, figures["horizon_days"]),
        tags={"ltv/trigger": "drift_sensor", "ltv/monitoring_date": day,
              "ltv/reasons": "; ".join(decision.reasons)[:4000]},
    )
