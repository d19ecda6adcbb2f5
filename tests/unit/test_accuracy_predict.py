"""bench/accuracy_predict.py's helpers: the `ltv predict` command of a case and the conversion of
the generator's transactions to the base currency the lifetimes baselines read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench import accuracy_predict as ap


def test_predict_command_passes_users_and_events_beside_transactions_with_context(tmp_path: Path):
    tx = tmp_path / "transactions_usd.parquet"
    for name in ("users.parquet", "events.parquet"):
        (tmp_path / name).write_bytes(b"")
    cmd = ap.predict_command(str(tx), "2025-09-30", 90, tmp_path / "out", "syn_2025-09-30_90", context=True)
    assert cmd[cmd.index("--users") + 1] == str(tmp_path / "users.parquet")
    assert cmd[cmd.index("--events") + 1] == str(tmp_path / "events.parquet")
    assert cmd[cmd.index("--horizon-days") + 1] == "90"
    plain = ap.predict_command(str(tx), "2025-09-30", 90, tmp_path / "out", "syn_2025-09-30_90")
    assert "--users" not in plain and "--events" not in plain


def test_predict_command_with_context_names_the_missing_file(tmp_path: Path):
    (tmp_path / "users.parquet").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="events.parquet"):
        ap.predict_command(str(tmp_path / "t.parquet"), "2025-09-30", 90, tmp_path, "x", context=True)


def _generator_dir(tmp_path: Path, fx_days: list[str]) -> Path:
    pd.DataFrame({
        "user_id": ["u1", "u2", "u3"],
        "ts": pd.to_datetime(["2025-01-02 10:00", "2025-01-03 11:00", "2025-01-03 12:00"]),
        "amount": [10.0, 20.0, 30.0], "currency": ["USD", "EUR", "GBP"],
        "is_refund": [False, False, True], "variable_cost": [5.0, 8.0, 12.0],
    }).to_parquet(tmp_path / "transactions.parquet", index=False)
    pd.DataFrame({
        "date": pd.to_datetime([d for d in fx_days for _ in ("EUR", "GBP")]).date,
        "currency": ["EUR", "GBP"] * len(fx_days),
        "rate_to_base": [1.1, 1.3, 1.2, 1.25][:2 * len(fx_days)],
    }).to_parquet(tmp_path / "fx_rates.parquet", index=False)
    return tmp_path


def test_to_base_converts_amount_and_cost_at_the_rate_of_the_transaction_day(tmp_path: Path):
    gen = _generator_dir(tmp_path, ["2025-01-02", "2025-01-03"])
    out = pd.read_parquet(ap.to_base(gen))
    # EUR on 2025-01-03 is 1.2 (not 1.1, the rate of 01-02); GBP on 01-03 is 1.25; USD as given
    assert out["amount"].tolist() == [10.0, 24.0, 37.5]
    assert out["variable_cost"].tolist() == [5.0, 9.6, 15.0]
    assert set(out["currency"]) == {"USD"}
    assert out["is_refund"].tolist() == [False, False, True]
    assert ap.read_transactions(str(gen / "transactions_usd.parquet"))["amount"].tolist() == [10.0, 24.0, -37.5]


def test_to_base_refuses_a_day_without_a_rate(tmp_path: Path):
    gen = _generator_dir(tmp_path, ["2025-01-02"])
    with pytest.raises(ValueError, match="no rate"):
        ap.to_base(gen)


def test_lifetimes_baselines_are_the_same_on_every_call():
    from ltv_pipeline.lib import generator

    tx = generator.generate(600, seed=5)["transactions"]
    tx = tx[tx["currency"] == "USD"].assign(is_refund=False)
    tx = tx.assign(user_id=tx["user_id"].astype(str), ts=pd.to_datetime(tx["ts"]),
                   amount=tx["amount"].astype(float))
    cutoff = pd.Timestamp(tx["ts"].max()).date() - pd.Timedelta(days=90)
    first, _ = ap.lifetimes_baselines(tx, cutoff, 90)
    second, _ = ap.lifetimes_baselines(tx, cutoff, 90)
    assert len(first) > 100 and first["pareto_gg"].gt(0).any()
    pd.testing.assert_frame_equal(first, second)


def test_run_predict_runs_in_the_source_tree_with_absolute_paths(tmp_path, monkeypatch):
    # `python -c` puts the working directory before PYTHONPATH on sys.path: a run started in a
    # checkout imported that checkout instead of --src (session 19 found its "old code" run
    # was the new code)
    seen = {}

    def fake_run(cmd, **kw):
        seen.update(cmd=cmd, **kw)
        return ap.subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(ap.subprocess, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    ap.run_predict("log.csv", "2025-01-31", 30, Path("out"), "case", src="/somewhere/src")
    assert seen["cwd"] == "/somewhere/src" and seen["env"]["PYTHONPATH"] == "/somewhere/src"
    assert str(tmp_path / "log.csv") in seen["cmd"]
    assert seen["env"]["LTV_HOME"] == str(tmp_path / "out" / "home-case")


def test_help_prints_the_usage_and_a_bad_argument_exits_2(capsys):
    assert ap.main(["--help"]) == 0
    assert "LABEL=TRANSACTIONS:D:H" in capsys.readouterr().out
    for bad in (["--bogus"], ["a.csv"], ["x=a.csv:2025-09-30"]):
        assert ap.main(bad) == 2
        assert "neither an option nor a case" in capsys.readouterr().err
