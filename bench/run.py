"""`make bench`: wall time and peak memory per stage for several log sizes.

Sizes come from BENCH_SIZES (default 100000,300000,1000000). Each stage runs in its own
process; seconds are the stage's own work (without interpreter start-up), peak memory is that
process's max RSS. Prints a table and writes JSON to
LTV_HOME/bench/results.json, with the scaling exponent between the two largest sizes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stages import STAGES
from ltv_pipeline import settings


def run_stage(stage: str, work: Path, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bench.stages", stage, str(work), str(n)],
                            cwd=settings.REPO_ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: stage {stage} failed for {n:,} users")
    work_s = float((work / f"{stage}.seconds").read_text())
    return {"seconds": round(work_s, 2), "process_seconds": round(seconds, 2),
            "peak_mb": round(usage.ru_maxrss / 1024, 1)}


# `ltv predict` end to end took 2,364 s at 100k users under load in session 15 (210 s quiet);
# with the training sample (LTV_TRAIN_MAX_USERS) it took 354 s at 1M users in session 16, so
# it runs at every default size; BENCH_PREDICT_MAX_USERS lowers the size it stops at.
SLOW_STAGES = {"ltv_predict": "BENCH_PREDICT_MAX_USERS"}
SLOW_STAGE_MAX_USERS = 1_000_000


def skipped(stage: str, n: int) -> str | None:
    """Why `stage` does not run for n users, or None when it does."""
    var = SLOW_STAGES.get(stage)
    limit = int(os.environ.get(var) or SLOW_STAGE_MAX_USERS) if var else None
    return f"skipped above {limit:,} users ({var})" if limit is not None and n > limit else None


def main() -> int:
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "100000,300000,1000000").split(",")]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(dir=settings.ensure_home()) as tmp:
            results[str(n)] = {}
            for stage in STAGES:
                if why := skipped(stage, n):
                    print(f"[bench] {n:>9,} users  {stage:<22}{why}", file=sys.stderr, flush=True)
                    continue
                r = run_stage(stage, Path(tmp), n)
                results[str(n)][stage] = r
                print(f"[bench] {n:>9,} users  {stage:<22}{r['seconds']:>8.2f} s{r['peak_mb']:>9.0f} MB",
                      file=sys.stderr, flush=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'stage':<22}" + "".join(f"{n:>20,}" for n in sizes) + "   exponent")
    for stage in STAGES:
        cells = "".join(
            f"{results[str(n)][stage]['seconds']:>10.2f} s{results[str(n)][stage]['peak_mb']:>7.0f} MB"
            if stage in results[str(n)] else f"{'skipped':>20}" for n in sizes
        )
        exp = ""
        if len(sizes) > 1 and all(stage in results[str(n)] for n in sizes[-2:]):
            a, b = results[str(sizes[-2])][stage]["seconds"], results[str(sizes[-1])][stage]["seconds"]
            exp = f"{math.log(b / a) / math.log(sizes[-1] / sizes[-2]):>10.2f}" if a > 0 else ""
        print(f"{stage:<22}{cells}{exp}")
    out = settings.ltv_home() / "bench" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sizes": sizes, "results": results}, indent=2))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
