"""`ltv predict` on lifetimes' CDNOW_sample at the classic split (D = 1997-09-30, H = 273)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import duckdb
import pandas as pd

LTV = str(Path(sys.executable).parent / "ltv")
PUBLISHED = {  # Fader, Hardie and Lee 2005; Fader and Hardie 2013; day units (DESIGN.md)
    "bgnbd": {"r": 0.2426, "alpha": 30.895, "a": 0.7929, "b": 2.4259},
    "pareto_nbd": {"r": 0.5533, "alpha": 74.04, "s": 0.6063, "beta": 81.69},
    "gamma_gamma": {"p": 6.2496, "q": 3.7442, "v": 15.4435},
}


def cdnow_sample_csv(path: Path) -> Path:
    raw = pd.read_csv(files("lifetimes") / "datasets" / "CDNOW_sample.txt", sep=r"\s+", header=None,
                      names=["user_id", "index", "date", "cds", "amount"], dtype={"user_id": str, "date": str})
    raw["ts"] = pd.to_datetime(raw["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d")
    raw[["user_id", "ts", "amount"]].to_csv(path, index=False)
    return path


def run_predict(tmp_path: Path, transactions: Path, cutoff: str, horizon_days: int,
                out: Path) -> subprocess.CompletedProcess:
    """`ltv predict` in a fresh LTV_HOME under tmp_path (report: tmp_path/report.json)."""
    env = {**os.environ, "LTV_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    env.pop("LTV_TODAY", None)
    return subprocess.run(
        [LTV, "predict", "--transactions", str(transactions), "--cutoff", cutoff,
         "--horizon-days", str(horizon_days), "--out", str(out), "--report", str(tmp_path / "report.json")],
        env=env, capture_output=True, text=True, timeout=900,
    )


def assert_published_estimates(report: dict) -> None:
    for model, params in PUBLISHED.items():
        for name, value in params.items():
            got = report["btyd_parameters"][model][name]
            assert abs(got / value - 1) < 0.002, (model, name, got, value)


def test_predict_classic_split_reports_published_btyd_estimates(tmp_path):
    tx = cdnow_sample_csv(tmp_path / "cdnow_sample.csv")
    out, report = tmp_path / "scores.csv", tmp_path / "report.json"
    proc = run_predict(tmp_path, tx, "1997-09-30", 273, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = pd.read_csv(out, dtype={"user_id": str})
    assert list(scores.columns) == ["user_id", "predicted_value", "p10", "p90", "p_alive",
                                    "expected_purchases", "segment", "model", "cold_start"]
    assert len(scores) == 2357 and scores["user_id"].is_unique
    assert (scores["predicted_value"] >= 0).all() and scores["p_alive"].between(0, 1).all()
    assert set(scores["segment"]) == {"high", "medium", "low"}
    rep = json.loads(report.read_text())
    assert rep["cutoff"] == "1997-09-30" and rep["horizon_days"] == 273
    assert rep["champion"] == scores["model"].iloc[0]
    assert rep["currency"] == "USD"  # no currency column: the default base
    assert_published_estimates(rep)
    # the BTYD summary the fits used is in the warehouse
    con = duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True)
    try:
        n = con.execute("select count(*) from marts.customer_btyd_summary "
                        "where cutoff_date = date '1997-09-30'").fetchone()[0]
    finally:
        con.close()
    assert n == 2357


def test_predict_on_a_log_that_ends_before_the_cutoff(tmp_path):
    """A history-only file whose last purchase is two days before --cutoff: the backtest's
    origins and the training labels end by the data's last day (labels after it are not
    complete), so the run goes through the planned backtest instead of failing with 'no
    customer has both history and a complete label' (exit 1, before)."""
    full = pd.read_csv(cdnow_sample_csv(tmp_path / "full.csv"), dtype={"user_id": str})
    history = full[full["ts"] < "1998-03-30"]
    assert history["ts"].max() == "1998-03-29"
    history.to_csv(tmp_path / "history.csv", index=False)
    out, report = tmp_path / "scores.parquet", tmp_path / "report.json"
    proc = run_predict(tmp_path, tmp_path / "history.csv", "1998-03-31", 90, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the data end on 1998-03-29, 2 day(s) before as_of 1998-03-31" in proc.stderr
    scores = pd.read_parquet(out)
    assert len(scores) == history["user_id"].nunique() and scores["predicted_value"].notna().all()
    origins = {o for per_model in json.loads(report.read_text())["leaderboard"].values()
               for o in per_model if o != "mean"}
    assert origins == {"1997-10-30", "1997-11-29", "1997-12-29"}  # 1998-03-29 - 90 - 30 k days


def test_predict_on_a_log_dated_after_the_machines_clock(tmp_path):
    """CDNOW_sample 56 years later (the same calendar: weekdays and leap years repeat every 28
    years), classic split at 2053-09-30. Before, every row after the machine's clock went to
    quarantine as 'ts in the future' and the cutoff was no scoring partition (after the machine's
    yesterday): exit 1. Now the run's today is the end of the forecast window: every row loads
    and the fits reproduce the published estimates as at 1997-09-30."""
    full = pd.read_csv(cdnow_sample_csv(tmp_path / "full.csv"), dtype={"user_id": str})
    later = pd.to_datetime(full["ts"]) + pd.DateOffset(years=56)
    assert later.min() > pd.Timestamp.now() + pd.DateOffset(years=20)
    full.assign(ts=later.dt.strftime("%Y-%m-%d")).to_csv(tmp_path / "later.csv", index=False)
    out, report = tmp_path / "scores.csv", tmp_path / "report.json"
    proc = run_predict(tmp_path, tmp_path / "later.csv", "2053-09-30", 273, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"raw.transactions: {len(full):,} rows, 0 quarantined" in proc.stderr
    scores = pd.read_csv(out, dtype={"user_id": str})
    assert len(scores) == 2357 and scores["predicted_value"].notna().all()
    assert_published_estimates(json.loads(report.read_text()))
