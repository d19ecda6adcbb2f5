"""Running a Dagster job in the `ltv` process (execute_in_process against LTV_HOME's
instance, so every run is recorded and shown in the UI), one writer at a time."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

from ltv_pipeline import settings
from ltv_pipeline.cli import progress


def run_job(job_name: str, run_config: dict[str, Any], tags: dict[str, str] | None = None,
            skip_online: bool = False):
    """Execute a job in this process against LTV_HOME's Dagster instance, so the run is
    recorded and visible in the UI. Raises the failure (wrapped by Dagster) on error."""
    settings.ensure_home()
    import dagster as dg

    from ltv_pipeline.definitions import defs

    job = defs.resolve_job_def(job_name)
    selection = None
    if skip_online:  # assets that only serve the online store (`ltv predict` skips them)
        graph = job.asset_layer.asset_graph
        selection = [k for k in graph.get_all_asset_keys() if graph.has(k) and graph.get(k).is_executable
                     and graph.get(k).tags.get("ltv/serves") != "online"]
    run_config = {"loggers": {"ltv_progress": {"config": {"log_level": "INFO"}}}, **run_config}
    # One writer at a time (lib/locks.py): this command holds LTV_HOME's lock from its first
    # run to its end (the reads after a run too: DuckDB refuses them while another process
    # writes); another `ltv` command writing this home is waited for (a message on stderr;
    # exit 2 after LTV_LOCK_TIMEOUT_SECONDS), and so are runs the UI/daemon started with the
    # writers' tag; the daemon's queue holds its runs back while this one is in progress (it
    # carries the job's tag too).
    from ltv_pipeline.lib import locks

    locks.hold_until_exit(settings.ltv_home(), f"ltv {job_name}", on_wait=progress)
    with dg.DagsterInstance.get() as instance:
        _settle_runs(instance, job_name)
        # Progress (dagster-dbt echoes dbt's log lines on stdout) belongs on stderr: stdout is
        # for data and JSON.
        with contextlib.redirect_stdout(sys.stderr):
            result = job.execute_in_process(
                run_config=run_config, instance=instance, raise_on_error=True,
                tags={**(tags or {}), CLI_PID_TAG: str(os.getpid())}, asset_selection=selection,
            )
    return result


CLI_PID_TAG = "ltv/cli-pid"


def _settle_runs(instance, job_name: str) -> None:
    """Before an in-process run (holding the lock): mark runs of earlier `ltv` processes still
    recorded as in progress failed (they died, a kill -9 for instance: a live one would hold
    the lock, and their records would keep the daemon's queue closed); then wait (up to the
    lock's timeout) while a run launched by the UI/daemon that writes the warehouse is in
    progress."""
    import dagster as dg

    from ltv_pipeline.lib import locks
    from ltv_pipeline.lib.errors import InputError

    active = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=active)):
        if run.tags.get(CLI_PID_TAG, str(os.getpid())) != str(os.getpid()):
            instance.report_run_failed(run, message=f"the `ltv` process {run.tags[CLI_PID_TAG]} "
                                       "that ran it ended without finishing it")
    filters = dg.RunsFilter(statuses=active, tags={settings.WRITES_WAREHOUSE_TAG: "true"})
    limit, started, told = locks.timeout_seconds(), time.monotonic(), False
    while running := instance.get_runs(filters=filters, limit=1):
        if time.monotonic() - started >= limit:
            raise InputError(f"run {running[0].run_id} ({running[0].job_name}) is writing the "
                             f"warehouse; waited {limit:g} s (LTV_LOCK_TIMEOUT_SECONDS): run "
                             f"{job_name} again when it has finished")
        if not told:
            progress(f"waiting for run {running[0].run_id} ({running[0].job_name}) to finish "
                     "writing the warehouse")
            told = True
        time.sleep(locks.POLL_SECONDS * 4)
