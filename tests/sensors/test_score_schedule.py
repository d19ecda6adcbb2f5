"""The daily scoring schedule asks for yesterday's partition of score_job."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg


def test_score_schedule_requests_yesterdays_partition():
    from ltv_pipeline.definitions import defs

    schedule = defs.get_schedule_def("score_job_schedule")
    assert schedule.job_name == "score_job" and schedule.cron_schedule == "0 2 * * *"
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2025, 3, 10, 2, 0, tzinfo=timezone.utc))
        data = schedule.evaluate_tick(context)
    [request] = data.run_requests
    assert request.partition_key == "2025-03-09"


def test_score_job_runs_its_steps_in_one_process():
    # a process per step would load the definitions again for each (~2.5 s apiece)
    from ltv_pipeline.definitions import defs

    assert defs.resolve_job_def("score_job").executor_def.name == dg.in_process_executor.name
