"""The `ltv` command as a user runs it: a subprocess, a fresh LTV_HOME, exit codes, outputs."""

from __future__ import annotations

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


def test_demo_loads_the_real_cdnow_log_into_ltv_home(tmp_path):
    home = tmp_path / "home"
    proc = run(["demo"], home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "transactions" in proc.stdout and "69,659" in proc.stdout
    # the contract: demo prints the leaderboard and where the outputs are
    assert "backtest leaderboard (scoring date 1998-06-30, horizon 90 days" in proc.stdout
    assert "| bgnbd_gg" in proc.stdout and "champion: " in proc.stdout
    assert "customer_features" in proc.stdout and "gbm_tweedie/v1" in proc.stdout
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        n, users = con.execute(
            "select count(*), count(distinct user_id) from raw.transactions"
        ).fetchone()
    finally:
        con.close()
    assert (n, users) == (69_659, 23_570)
    assert (home / "dagster" / "dagster.yaml").read_text().count("enabled: false") == 1
    # the run is recorded in LTV_HOME's Dagster instance, visible to the UI
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
