"""lib/privacy.py, lib/erasure.py, lib/locks.py and the dagster.yaml upgrade on small stores."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltv_pipeline import settings
from ltv_pipeline.lib import erasure, locks, privacy, sources
from ltv_pipeline.lib.errors import InputError
from ltv_pipeline.lib.warehouse import TableLoad


def make_warehouse(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        for schema in ("raw", "quarantine", "marts", "scores", "staging"):
            con.execute(f"create schema {schema}")
        con.execute("create table raw.transactions (user_id varchar, amount double)")
        con.execute("insert into raw.transactions values ('a', 1), ('b', 2), ('a', 3)")
        con.execute("create table quarantine.transactions (user_id varchar, reason varchar)")
        con.execute("insert into quarantine.transactions values ('a', 'bad amount')")
        con.execute("create table marts.customer_features (user_id varchar, cutoff_date date)")
        con.execute("insert into marts.customer_features values ('a', '2025-01-01'), ('b', '2025-01-01')")
        con.execute("create table marts.cohort_revenue (cohort varchar, revenue double)")
        con.execute("insert into marts.cohort_revenue values ('2025-01', 6)")
        con.execute("create table scores.ltv_scores (user_id varchar, predicted_value double)")
        con.execute("insert into scores.ltv_scores values ('a', 9), ('b', 1)")
        con.execute("create view staging.v as select * from raw.transactions")


def test_validate_ids_strips_dedupes_and_refuses_empty_long_or_control_ids():
    assert privacy.validate_ids([" a ", "a", "b'; drop"]) == ["a", "b'; drop"]
    for bad in (["  "], ["x" * 300], ["a\nb"], ["a\x00"]):
        with pytest.raises(InputError, match="nothing was erased"):
            privacy.validate_ids(bad)


def test_secret_is_created_0600_and_hashes_are_keyed(tmp_path):
    key = privacy.secret(tmp_path, create=True)
    path = tmp_path / "privacy" / privacy.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    assert privacy.secret(tmp_path) == key and stat.S_IMODE(path.stat().st_mode) == 0o600
    other = privacy.secret(tmp_path / "other", create=True)
    assert privacy.id_hash(key, "a") != privacy.id_hash(other, "a")
    import hashlib
    import hmac

    assert privacy.id_hash(key, "a") == hmac.new(key, b"a", hashlib.sha256).hexdigest()


def test_erase_warehouse_deletes_every_user_table_row_in_any_schema(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    make_warehouse(db)
    removed = erasure.erase_warehouse(db, ["a"])
    assert removed == {"raw.transactions": {"a": 2}, "quarantine.transactions": {"a": 1},
                       "marts.customer_features": {"a": 1}, "scores.ltv_scores": {"a": 1}}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("raw.transactions", "marts.customer_features", "scores.ltv_scores", "staging.v"):
            assert con.execute(f"select count(*) from {table} where user_id = 'a'").fetchone()[0] == 0
        assert con.execute("select count(*) from raw.transactions").fetchone()[0] == 1
        assert con.execute("select revenue from marts.cohort_revenue").fetchone()[0] == 6
    assert erasure.erase_warehouse(db, ["a"]) == {}


def test_parquet_and_csv_exports_are_rewritten_without_the_id(tmp_path):
    day = tmp_path / "exports" / "2025-01-01"
    day.mkdir(parents=True)
    frame = pd.DataFrame({"user_id": ["a", "b", "c"], "predicted_value": [3.0, 2.0, 1.0]})
    frame.to_csv(day / "top.csv", index=False)
    frame.to_parquet(day / "top.parquet", index=False)
    pq.write_table(pa.table({"x": [1]}), day / "no_users.parquet")
    removed = erasure.erase_audience_exports(tmp_path / "exports", ["b"])
    assert removed == {"2025-01-01/top.parquet": {"b": 1}, "2025-01-01/top.csv": {"b": 1}}
    assert pd.read_csv(day / "top.csv")["user_id"].tolist() == ["a", "c"]
    assert pd.read_parquet(day / "top.parquet")["user_id"].tolist() == ["a", "c"]
    assert not [p for p in day.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_scrub_drops_sample_rows_and_values_of_the_id_only():
    from collections import Counter

    result = {"failed": [{"sample": [{"user_id": "a", "_row": 3}, {"user_id": "b", "_row": 4}],
                          "values": ["a", "b"], "type": "expect_x"}], "columns": ["user_id"],
              "observed": {"max": "a"}}

    found = Counter()
    clean = erasure.scrub(result, {"a"}, found)
    assert clean == {"failed": [{"sample": [{"user_id": "b", "_row": 4}], "values": ["b"],
                                 "type": "expect_x"}], "columns": ["user_id"], "observed": {"max": "[erased]"}}
    assert found == {"a": 3}


def test_forget_records_hashes_logs_and_is_idempotent(tmp_path):
    make_warehouse(tmp_path / "warehouse.duckdb")
    first = privacy.forget(tmp_path, ["a"])
    assert first["rows_removed"] == 5 and not first["nothing_found"]
    again = privacy.forget(tmp_path, ["a"])
    assert again["rows_removed"] == 0 and again["nothing_found"] and again["newly_excluded_from_loads"] == 0
    log = (tmp_path / "privacy" / "erasures.jsonl").read_text().splitlines()
    assert len(log) == 2
    key = privacy.secret(tmp_path)
    assert [json.loads(line)["id_hash"] for line in log] == [privacy.id_hash(key, "a")] * 2
    text = "".join(p.read_text() for p in (tmp_path / "privacy").iterdir() if p.name != privacy.SECRET_FILE)
    assert '"a"' not in text
    assert privacy.erased_hashes(tmp_path) == {privacy.id_hash(key, "a")}


def test_drop_erased_leaves_erased_ids_out_of_clean_and_quarantined_rows(tmp_path):
    privacy.record_erased(tmp_path, [privacy.id_hash(privacy.secret(tmp_path, create=True), "12")])
    clean = pd.DataFrame({"user_id": pd.array(["12", "13"], dtype="string"), "amount": [1.0, 2.0]})
    bad = pd.DataFrame({"user_id": pd.array([" 12.0", "14"], dtype="string"), "reason": ["x", "y"]})
    loads = [TableLoad("transactions", "t.csv", 4, clean, bad)]
    out, dropped = sources.drop_erased(loads, tmp_path)
    assert dropped == {"transactions": 2}
    assert out[0].clean["user_id"].tolist() == ["13"]
    assert out[0].quarantined["user_id"].tolist() == ["14"]
    assert out[0].rows_in_file == 2  # accounted: raw + quarantined rows of the file left in


def test_an_erasure_list_without_its_key_stops_the_load(tmp_path):
    privacy.record_erased(tmp_path, ["ab" * 32])
    ids = pd.Series(["a"], dtype="string")
    with pytest.raises(InputError, match="restore the key"):
        privacy.erased_mask(ids, tmp_path)


HOLD = """
import sys, time
from ltv_pipeline.lib import locks
with locks.exclusive(sys.argv[1], "holder test"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_writer_waits_for_the_lock_then_gives_up_naming_the_holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        told = []
        with pytest.raises(locks.WriterBusy, match="holder test"):
            with locks.exclusive(tmp_path, "second", timeout=0.5, on_wait=told.append):
                pass
        assert len(told) == 1 and "holder test" in told[0]
        t0 = time.monotonic()
        with locks.exclusive(tmp_path, "third", timeout=30):  # waits for the holder to finish
            assert time.monotonic() - t0 > 0.5
            with locks.exclusive(tmp_path, "re-entered", timeout=0):
                pass
    finally:
        proc.wait(timeout=30)


def test_a_killed_holder_releases_the_lock(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "60"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.kill()
    proc.wait(timeout=30)
    with locks.exclusive(tmp_path, "after kill", timeout=5):
        pass


def test_an_old_dagster_yaml_gets_the_writers_limit_and_a_custom_one_keeps_its_settings(tmp_path):
    import yaml

    cfg = tmp_path / "dagster.yaml"
    cfg.write_text("telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: true\n")
    assert settings.upgrade_dagster_yaml(cfg)
    data = yaml.safe_load(cfg.read_text())
    assert data["run_monitoring"] == {"enabled": True}
    assert data["concurrency"]["runs"]["tag_concurrency_limits"] == [{"key": "ltv/writes-warehouse", "limit": 1}]
    assert not settings.upgrade_dagster_yaml(cfg)  # idempotent
    legacy = tmp_path / "legacy.yaml"
    legacy.write_text("run_queue:\n  tag_concurrency_limits:\n    - key: x\n      limit: 2\n")
    assert not settings.upgrade_dagster_yaml(legacy)
    assert yaml.safe_load(settings.DAGSTER_YAML)["concurrency"]["runs"]["tag_concurrency_limits"][0]["limit"] == 1


def test_erase_users_job_erases_a_list_from_a_file_under_the_lock(ltv_home, tmp_path):
    import dagster as dg

    from ltv_pipeline.defs.privacy.jobs import erase_users_job
    from ltv_pipeline.defs.resources import shared_resources

    make_warehouse(ltv_home / "warehouse.duckdb")
    ids = tmp_path / "ids.txt"
    ids.write_text("a\nb\n")
    job = dg.Definitions(jobs=[erase_users_job], resources=shared_resources()).resolve_job_def("erase_users_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            run_config={"ops": {"erase_users": {"config": {"ids_file": str(ids)}}}}, instance=instance)
        run = instance.get_run_by_id(result.run_id)
    assert result.success and run.tags[settings.WRITES_WAREHOUSE_TAG] == "true"
    assert '"a"' not in json.dumps(run.run_config)  # only the file's path is in the run's config
    with duckdb.connect(str(ltv_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from scores.ltv_scores").fetchone()[0] == 0
        assert con.execute("select count(*) from marts.cohort_revenue").fetchone()[0] == 1
    assert len((ltv_home / "privacy" / "erasures.jsonl").read_text().splitlines()) == 2


HOLD_FOR_PROCESS = """
import subprocess, sys, time
from ltv_pipeline.lib import locks
locks.hold_until_exit(sys.argv[1], "command test")
print("held", flush=True)
child = subprocess.run([sys.executable, "-c", "import sys; from ltv_pipeline.lib import locks; "
                        "locks.hold_until_exit(sys.argv[1], 'child', on_wait=print); print('child ok')",
                        sys.argv[1]], capture_output=True, text=True, timeout=60)
print(child.stdout.strip(), flush=True)
time.sleep(2)
"""


def test_a_command_holds_the_lock_until_it_exits_and_its_child_works_under_it(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD_FOR_PROCESS, str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    assert proc.stdout.readline().strip() == "child ok"  # no wait for its own parent
    with pytest.raises(locks.WriterBusy):
        with locks.exclusive(tmp_path, "other", timeout=0.2):
            pass
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Exception" not in err, err
    with locks.exclusive(tmp_path, "after exit", timeout=5):
        pass
