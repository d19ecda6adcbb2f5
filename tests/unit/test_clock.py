"""The pipeline's today (settings.today: the machine's date, or LTV_TODAY when later) and what
follows from it: which rows are in the future, where the daily partitions end."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from ltv_pipeline import settings
from ltv_pipeline.lib import sources
from ltv_pipeline.lib.errors import InputError


def test_ltv_today_moves_today_and_the_clock_forward_only(monkeypatch):
    monkeypatch.delenv("LTV_TODAY", raising=False)
    machine = date.today()
    assert settings.today() == machine
    monkeypatch.setenv("LTV_TODAY", (machine + timedelta(days=400)).isoformat())
    assert settings.today() == machine + timedelta(days=400)
    assert settings.clock() == datetime.combine(machine + timedelta(days=400), datetime.min.time())
    monkeypatch.setenv("LTV_TODAY", "2001-01-01")  # earlier than the machine's date: no effect
    assert settings.today() == machine
    assert settings.clock() > datetime(2001, 1, 2)
    monkeypatch.setenv("LTV_TODAY", "tomorrow")
    with pytest.raises(InputError, match=r"LTV_TODAY='tomorrow' is not an ISO date"):
        settings.today()


def test_today_at_least_sets_and_restores(monkeypatch):
    monkeypatch.delenv("LTV_TODAY", raising=False)
    later = date.today() + timedelta(days=30)
    with settings.today_at_least(later):
        assert os.environ["LTV_TODAY"] == later.isoformat() and settings.today() == later
        with settings.today_at_least(date(2001, 1, 1)):  # earlier: left as it is
            assert settings.today() == later
        assert settings.today() == later
    assert "LTV_TODAY" not in os.environ
    monkeypatch.setenv("LTV_TODAY", "2001-01-01")
    with pytest.raises(RuntimeError), settings.today_at_least(later):
        raise RuntimeError("a failed run")
    assert os.environ["LTV_TODAY"] == "2001-01-01"  # restored after a failure too


def test_rows_after_the_machines_clock_are_kept_up_to_the_pipelines_today(tmp_path, monkeypatch):
    """A simulated log dated a year ahead of the machine: with the machine's clock its rows went
    to quarantine as 'ts in the future'; up to LTV_TODAY they are loaded."""
    monkeypatch.delenv("LTV_TODAY", raising=False)
    ahead = pd.Timestamp(date.today()) + pd.Timedelta(days=365)
    tx = pd.DataFrame({"user_id": ["0", "1", "2", "3"], "amount": [1.0, 10.0, 5.0, 7.0],
                       "ts": ["2025-01-01", str(ahead), str(ahead + pd.Timedelta(days=9)),
                              str(ahead + pd.Timedelta(days=11))]})
    tx.to_csv(tmp_path / "transactions.csv", index=False)

    def loaded() -> tuple[list[str], list[str]]:
        load = next(l for l in sources.prepare_loads(sources.read_directory(tmp_path), now=settings.clock())
                    if l.table == "transactions")
        return load.clean["user_id"].tolist(), load.quarantined["reason"].tolist()

    assert loaded() == (["0"], ["ts in the future"] * 3)
    monkeypatch.setenv("LTV_TODAY", (ahead + pd.Timedelta(days=10)).date().isoformat())
    assert loaded() == (["0", "1", "2"], ["ts in the future"])


def test_the_daily_partitions_run_to_the_day_before_the_pipelines_today(tmp_path):
    later = date.today() + timedelta(days=45)
    code = ("from ltv_pipeline.partitions import daily_partitions, has_partition, END_OFFSET_DAYS; "
            f"print(daily_partitions.get_last_partition_key(), has_partition('{later}'), "
            f"has_partition('{later - timedelta(days=1)}'), END_OFFSET_DAYS)")
    env = {**os.environ, "LTV_HOME": str(tmp_path / "home"), "LTV_TODAY": later.isoformat()}
    env.pop("DAGSTER_HOME", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [(later - timedelta(days=1)).isoformat(), "False", "True", "45"]
    env.pop("LTV_TODAY")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == (date.today() - timedelta(days=1)).isoformat()
    assert out.stdout.split()[-1] == "0"


def test_a_date_the_scoring_process_refuses_is_an_input_error_not_an_internal_one(ltv_home, monkeypatch):
    """score_range hands a date this process's partitions lack to a fresh `ltv score` process;
    when that one refuses it (exit 2, its message on stderr), the caller exits 2 as well (it
    reported an internal error, exit 1, before)."""
    import ltv_pipeline.definitions  # noqa: F401 - the partitions as loaded in this process
    from ltv_pipeline import commands

    monkeypatch.delenv("LTV_TODAY", raising=False)
    far = (date.today() + timedelta(days=3650)).isoformat()
    with pytest.raises(InputError, match=rf"`ltv score --from {far} --to {far}` refused its dates"):
        commands.score_range(far, far, skip_online=True)
