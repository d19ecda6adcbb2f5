"""The `ltv` command as a user runs it: a subprocess, a fresh LTV_HOME, exit codes, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

LTV = str(Path(sys.executable).parent / "ltv")


def run(args: list[str], home: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME",)}
    env["LTV_HOME"] = str(home)
    return subprocess.run([LTV, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_demo_then_score_a_week_twice_on_the_real_cdnow_log(tmp_path):
    """DESIGN.md's flow: demo as of a date (whole graph + that date's scoring partition), then
    a 7-day backfill run twice: 7 partitions, each with one row per CDNOW customer."""
    home = tmp_path / "home"
    proc = run(["demo", "--as-of", "1998-01-31"], home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "transactions" in proc.stdout and "69,659" in proc.stdout
    # the contract: demo prints the leaderboard and where the outputs are
    assert "backtest leaderboard (scoring date 1998-01-31, horizon 90 days" in proc.stdout
    assert "| bgnbd_gg" in proc.stdout and "champion: " in proc.stdout
    assert "customer_features" in proc.stdout and "gbm_tweedie/v1" in proc.stdout
    assert "23,570 users in scores.ltv_scores for 1998-01-31" in proc.stdout
    assert (home / "dagster" / "dagster.yaml").read_text().count("enabled: false") == 1
    for _ in range(2):
        proc = run(["score", "--from", "1998-02-01", "--to", "1998-02-07"], home)
        assert proc.returncode == 0, proc.stderr[-3000:]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        n, users = con.execute("select count(*), count(distinct user_id) from raw.transactions").fetchone()
        per_day = con.execute(
            "select strftime(as_of_date, '%Y-%m-%d'), count(*), count(distinct user_id) "
            "from scores.ltv_scores group by 1 order by 1").fetchall()
        row = con.execute("select user_id, predicted_value, segment, model from scores.ltv_scores "
                          "where as_of_date = date '1998-02-07' and not cold_start order by rank limit 1"
                          ).fetchone()
    finally:
        con.close()
    assert (n, users) == (69_659, 23_570)
    days = ["1998-01-31"] + [f"1998-02-0{d}" for d in range(1, 8)]
    assert per_day == [(d, 23_570, 23_570) for d in days]
    assert sorted(p.name for p in (home / "exports" / "1998-02-07").iterdir()) == sorted(
        f"{a}.{ext}" for a in ("top_value", "top_margin", "churn_risk_high_value", "priority")
        for ext in ("csv", "parquet"))
    # the online store now holds 1998-02-07 (the backfill's last day): score-user agrees
    proc = run(["score-user", row[0]], home, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    online = json.loads(proc.stdout)
    assert online["as_of_date"] == "1998-02-07"
    assert (online["predicted_value"], online["segment"], online["model"]) == (row[1], row[2], row[3])
    # the runs are recorded in LTV_HOME's Dagster instance, visible to the UI
    assert any((home / "dagster").rglob("*.db"))


def test_demo_on_a_bad_directory_exits_2_without_traceback(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "transactions.csv").write_text("user_id,when,amount\n1,2025-01-01,3\n")
    proc = run(["demo", "--source", str(src)], tmp_path / "home")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "transactions.csv: missing required column(s) ts" in proc.stderr
    assert "Traceback" not in proc.stderr and "Stack Trace" not in proc.stderr


def test_unknown_option_exits_2(tmp_path):
    proc = run(["demo", "--colour", "red"], tmp_path / "home", timeout=120)
    assert proc.returncode == 2
    assert "unrecognized arguments: --colour red" in proc.stderr


def test_generate_then_demo_on_the_directory(tmp_path):
    out = tmp_path / "log"
    proc = run(["generate", "--users", "3000", "--seed", "11", "--out", str(out)], tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "events.parquet", "fx_rates.parquet", "transactions.parquet", "users.parquet"
    ]
    proc = run(["demo", "--source", str(out)], tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True)
    try:
        loaded = dict(con.execute(
            "select table_name, rows_loaded + rows_quarantined from raw.load_batches"
        ).fetchall())
        users = con.execute("select count(*) from raw.users").fetchone()[0]
    finally:
        con.close()
    assert users == 3000
    # every generated row is accounted for: loaded or quarantined
    import pandas as pd
    for name in ("transactions", "users", "events", "fx_rates"):
        assert loaded[name] == len(pd.read_parquet(out / f"{name}.parquet"))
