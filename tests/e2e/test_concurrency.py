"""Two writers on one home run one after the other (LTV_HOME/.warehouse.lock), and a scoring
backfill killed with SIGKILL mid-run leaves every stored partition whole; re-running it gives
the rows an uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pandas as pd
from privacy_e2e import LTV, env_for, ltv

COMPARED = ["as_of_date", "user_id", "predicted_value", "p10", "p90", "segment", "rank"]


def stored(home: Path, first: str, last: str) -> pd.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        frame = con.execute("select * from scores.ltv_scores where as_of_date between ? and ? "
                            "order by as_of_date, user_id", [first, last]).df()
    return frame[COMPARED].reset_index(drop=True)


def one_row_per_user_per_date(frame: pd.DataFrame) -> bool:
    return not frame.duplicated(["as_of_date", "user_id"]).any()


def test_two_concurrent_score_runs_run_one_after_the_other(trained_home):
    args = ["score", "--from", "2025-07-01", "--to", "2025-07-02", "--skip-online"]
    procs = [subprocess.Popen([LTV, *args], env=env_for(trained_home), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=1800) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    assert any("waiting for" in err for _, err in outs)  # one waited for the other
    rows = stored(trained_home, "2025-07-01", "2025-07-02")
    assert one_row_per_user_per_date(rows)
    assert rows.groupby("as_of_date").size().min() > 1000


def test_a_backfill_killed_mid_run_keeps_stored_partitions_and_a_rerun_matches(trained_home):
    first, last = "2025-07-03", "2025-07-06"
    ltv(trained_home, "score", "--from", first, "--to", last, "--skip-online", check=True)
    reference = stored(trained_home, first, last)
    assert reference["as_of_date"].nunique() == 4

    # the same backfill again, killed (with dbt, its whole process group) once it has replaced
    # the first partition's rows and is writing the next ones
    proc = subprocess.Popen([LTV, "score", "--from", first, "--to", last, "--skip-online"],
                            env=env_for(trained_home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    deadline = time.time() + 1800
    for line in proc.stderr:
        seen.append(line)
        if f"ltv_scores: {first}:" in line or time.time() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and any(f"ltv_scores: {first}:" in s for s in seen), seen[-5:]

    after_kill = stored(trained_home, first, last)
    assert one_row_per_user_per_date(after_kill)
    pd.testing.assert_frame_equal(after_kill, reference)  # every partition whole: old or new rows

    ltv(trained_home, "score", "--from", first, "--to", last, "--skip-online", check=True)
    pd.testing.assert_frame_equal(stored(trained_home, first, last), reference)
