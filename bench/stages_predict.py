"""Benchmark stage of `ltv predict` end to end (issues 7 and 11); bench/stages.py runs it after
its own, on the same work directory (the generated log is in WORK/log).

`ltv predict` runs as a user runs it (`python -m ltv_pipeline.cli predict`, its own process)
on the generated files, as of the bench cutoff with H = 90 days, in a fresh LTV_HOME under
the work directory (WORK/predict_home: the ingest stage's warehouse is not touched). It prints
the wall time, the peak RSS of the predict process (and the largest process over it and
the dbt subprocesses it ran), each Dagster step's seconds from the run's step stats, and the
ratio to the lifetimes_reference stage's seconds when that stage ran in the same work
directory (issue 11's goal: at most 10x, peak under 4 GB, at 1M users).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HORIZON_DAYS = 90
GOAL_RATIO, GOAL_PEAK_MB = 10.0, 4096


def _say(n: int, text: str) -> None:
    print(f"[bench] {n:>9,} users  {text}", file=sys.stderr, flush=True)


def _step_seconds(home: Path) -> list[tuple[str, float]]:
    """(step, seconds) of the newest full_pipeline_job and score_job runs in home's instance,
    slowest first."""
    os.environ["LTV_HOME"] = str(home)
    from ltv_pipeline import settings

    settings.ensure_home()
    import dagster as dg

    steps: list[tuple[str, float]] = []
    with dg.DagsterInstance.get() as instance:
        for job in ("full_pipeline_job", "score_job"):
            runs = instance.get_runs(dg.RunsFilter(job_name=job), limit=1)
            if not runs:
                continue
            for s in instance.get_run_step_stats(runs[0].run_id):
                if s.start_time is not None and s.end_time is not None:
                    steps.append((f"{job}:{s.step_key}", s.end_time - s.start_time))
    return sorted(steps, key=lambda kv: -kv[1])


def ltv_predict(work: Path, n: int) -> None:
    """`ltv predict` on the generated log as of the bench cutoff, H = 90, fresh LTV_HOME."""
    from bench.stages import BENCH_CUTOFF

    home = work / "predict_home"
    shutil.rmtree(home, ignore_errors=True)
    log = work / "log"
    env = {**os.environ, "LTV_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    cmd = [sys.executable, "-m", "ltv_pipeline.cli", "predict",
           "--transactions", str(log / "transactions.parquet"),
           *(arg for name in ("users", "events") if (log / f"{name}.parquet").is_file()
             for arg in (f"--{name}", str(log / f"{name}.parquet"))),
           "--cutoff", BENCH_CUTOFF, "--horizon-days", str(HORIZON_DAYS),
           "--out", str(work / "predict.parquet"), "--report", str(work / "predict_report.json")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: ltv predict failed for {n:,} users (exit "
                         f"{os.waitstatus_to_exitcode(status)}; see {home / 'last-error.log'})")
    peak_mb = usage.ru_maxrss / 1024
    # predict's own peak, and the largest over it and every subprocess it waited for (dbt)
    tree_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    for step, seconds in _step_seconds(home)[:12]:
        _say(n, f"  ltv_predict step {step:<58}{seconds:8.1f} s")
    ref_file = work / "lifetimes_reference.seconds"
    ratio = ""
    if ref_file.is_file():
        ref = float(ref_file.read_text())
        ratio = (f"; {wall / ref:.1f}x the plain lifetimes workflow ({ref:.2f} s; goal at most "
                 f"{GOAL_RATIO:g}x)")
    _say(n, f"ltv_predict: {wall:.1f} s wall, peak RSS {peak_mb:.0f} MB (largest process of "
            f"predict and its dbt subprocesses {tree_mb:.0f} MB; goal under {GOAL_PEAK_MB} MB){ratio}")


STAGES: dict[str, Callable[[Path, int], None]] = {f.__name__: f for f in (ltv_predict,)}
