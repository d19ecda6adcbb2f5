"""`ltv monitor` as a user runs it on a synthetic log whose behaviour shifts on 2025-03-01
(generator --drift-at): no retrain a few days after the champion's training date, a retrain
with reasons after the shift; bad dates exit 2. The issue's must-show uses 20,000 users; this
test runs the same commands on USERS users to keep its run time reasonable on a shared machine
(the full-size run is reported in the issue)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LTV = str(Path(sys.executable).parent / "ltv")
USERS = 6000


def run(args: list[str], home: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME",)}
    env["LTV_HOME"] = str(home)
    return subprocess.run([LTV, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def drifted_home(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("monitor")
    home = root / "home"
    gen = run(["generate", "--users", str(USERS), "--seed", "5", "--out", str(root / "log"),
               "--drift-at", "2025-03-01"], home)
    assert gen.returncode == 0, gen.stderr[-3000:]
    demo = run(["demo", "--source", str(root / "log"), "--as-of", "2025-02-10"], home)
    assert demo.returncode == 0, demo.stderr[-3000:]
    return home


def monitor(home: Path, day: str) -> dict:
    proc = run(["monitor", "--as-of", day], home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_monitor_says_no_retrain_on_stable_data_before_the_shift(drifted_home):
    out = monitor(drifted_home, "2025-02-14")
    assert out["retrain"] is False and out["reasons"] == []
    assert out["as_of"] == "2025-02-14" and out["reference_date"] == "2025-02-10"
    assert max(f["psi"] for f in out["features"].values()) < 0.1
    assert out["predictions"]["available"] and out["predictions"]["psi"] < 0.1
    # 2024-11-16 is before the champion existed: no stored forecast, no invented error
    assert out["realised_error"]["available"] is False
    assert out["freshness"]["lag_days"] <= 1
    # the figures are the monitoring partition's, also on disk
    assert json.loads((drifted_home / "monitoring" / "2025-02-14.json").read_text()) == out


def test_monitor_says_retrain_after_the_shift_with_reasons(drifted_home):
    out = monitor(drifted_home, "2025-06-15")
    assert out["retrain"] is True and out["reasons"]
    err = out["realised_error"]
    assert err["available"] and err["forecast_date"] == "2025-03-17"
    assert err["n_users"] >= 500 and err["model"] and err["total_ratio"] is not None
    # browsing is unchanged after 2025-03-01 but fewer carts convert: the abandonment rate of
    # the customers who have one moves far more than in the four stable days above
    cart = out["features"]["cart_abandonment_rate_90d"]
    assert cart["ks"] > 0.2 and cart["current_mean"] > 2 * cart["reference_mean"]
    assert any("cart_abandonment_rate_90d" in r for r in out["reasons"])
    assert any("drifted" in r or "total predicted / realised" in r for r in out["reasons"])


def test_monitor_on_a_date_outside_the_partitions_exits_2(drifted_home):
    proc = run(["monitor", "--as-of", "2019-01-01"], drifted_home, timeout=300)
    assert proc.returncode == 2
    assert "--as-of 2019-01-01 is not a monitoring partition" in proc.stderr
    assert "Traceback" not in proc.stderr
    before = run(["monitor", "--as-of", "2025-01-01"], drifted_home, timeout=300)
    assert before.returncode == 2
    assert "before the champion's training scoring date 2025-02-10" in before.stderr
