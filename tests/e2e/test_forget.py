"""`ltv forget` on a trained home: no trace of the customer in any table, export or the online
store; score-user no longer knows them; idempotent; hostile ids are data, never SQL; a reload of
the same source leaves the erased customer out."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from privacy_e2e import AS_OF, env_for, ltv


def warehouse_rows(home: Path, user_id: str) -> dict[str, int]:
    """Rows of user_id in every table AND view with a user_id column (staging views included)."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        tables = con.execute("select table_schema, table_name from information_schema.columns "
                             "where column_name = 'user_id'").fetchall()
        return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}" where cast(user_id as varchar) = ?',
                                        [user_id]).fetchone()[0] for s, t in tables}


def online_rows(home: Path, user_id: str) -> int:
    from ltv_pipeline.lib import feature_store, online_store

    store = feature_store.feature_store(home)
    view = store.list_feature_views()[0]
    key = online_store._entity_keys(store, view, pa.table({"user_id": [user_id]}))[0]
    with sqlite3.connect(home / "feast" / "online_store.db") as con:
        tables = [t for (t,) in con.execute("select name from sqlite_master where type = 'table'")
                  if any(c[1] == "entity_key" for c in con.execute(f'pragma table_info("{t}")'))]
        assert tables, "the online store has no table of entity rows"
        return sum(con.execute(f'select count(*) from "{t}" where entity_key = ?', [key]).fetchone()[0]
                   for t in tables)


def file_mentions(root: Path, user_id: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.suffix == ".parquet":
            if user_id in set(pd.read_parquet(path, columns=["user_id"])["user_id"].astype(str)):
                found.append(str(path))
        elif path.suffix in (".csv", ".json", ".jsonl") and f'"{user_id}"' in path.read_text() \
                or path.suffix == ".csv" and user_id in path.read_text().split():
            found.append(str(path))
    return found


@pytest.fixture(scope="module")
def victim(trained_home) -> str:
    """The top-ranked customer of the as-of partition: in every store, audiences included."""
    with duckdb.connect(str(trained_home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("select user_id from scores.ltv_scores where as_of_date = ? order by rank limit 1",
                           [AS_OF]).fetchone()[0]


def test_forget_leaves_no_trace_and_score_user_no_longer_knows_the_id(trained_home, victim):
    before = json.loads(ltv(trained_home, "score-user", victim, "--as-of", AS_OF, check=True).stdout)
    assert before["known"] is True
    assert sum(warehouse_rows(trained_home, victim).values()) > 0
    assert online_rows(trained_home, victim) > 0 and file_mentions(trained_home / "exports", victim)

    done = ltv(trained_home, "forget", victim, check=True)
    report = json.loads(done.stdout)
    removed = report["erasures"][0]["removed"]
    assert {"warehouse", "feast_exports", "online_store", "audience_exports"} <= set(removed)
    assert removed["warehouse"]["raw.transactions"] > 0 and report["rows_removed"] > 0

    assert {t: n for t, n in warehouse_rows(trained_home, victim).items() if n} == {}
    assert online_rows(trained_home, victim) == 0
    for folder in ("feast/data", "exports", "quality", "scores", "privacy", "monitoring", "evaluation"):
        assert file_mentions(trained_home / folder, victim) == [], folder
    after = json.loads(ltv(trained_home, "score-user", victim, "--as-of", AS_OF, check=True).stdout)
    assert after["known"] is False and after["cold_start"] is True
    log = [json.loads(line) for line in (trained_home / "privacy" / "erasures.jsonl").read_text().splitlines()]
    assert log[-1]["id_hash"] == report["erasures"][0]["id_hash"] and victim not in json.dumps(log)


def test_forget_twice_removes_nothing_and_says_so(trained_home, victim):
    done = ltv(trained_home, "forget", victim, check=True)
    report = json.loads(done.stdout)
    assert report["nothing_found"] is True and report["rows_removed"] == 0
    assert "nothing left to remove" in done.stderr


def test_hostile_ids_are_data_not_sql(trained_home):
    with duckdb.connect(str(trained_home / "warehouse.duckdb"), read_only=True) as con:
        before = con.execute("select count(*) from raw.transactions").fetchone()[0]
    done = ltv(trained_home, "forget", "x'; drop table raw.transactions; --", check=True)
    assert json.loads(done.stdout)["nothing_found"] is True
    for hostile in ("../../etc/passwd", "x'; drop table raw.transactions; --", '"; delete from x; --'):
        out = ltv(trained_home, "score-user", hostile, "--as-of", AS_OF)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        assert json.loads(out.stdout)["known"] is False
    bad_date = ltv(trained_home, "score", "--from", "2025-07-01'; drop table raw.users; --", "--to", "2025-07-01")
    assert bad_date.returncode == 2 and "Traceback" not in bad_date.stderr
    with duckdb.connect(str(trained_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.transactions").fetchone()[0] == before
        assert con.execute("select count(*) from raw.users").fetchone()[0] > 0


RELOAD = """
import dagster as dg, sys
from ltv_pipeline.definitions import defs
keys = [dg.AssetKey(k) for k in ("raw_transactions", "raw_users", "raw_events", "fx_rates")]
with dg.DagsterInstance.get() as instance:
    result = defs.resolve_job_def("full_pipeline_job").execute_in_process(
        run_config={"ops": {"raw_tables": {"config": {"source": sys.argv[1]}}}},
        instance=instance, asset_selection=keys, raise_on_error=False)
checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
assert checks and all(c.passed for c in checks), [(c.check_name, c.passed) for c in checks]
meta = {m.asset_key.path[-1]: m.metadata for m in result.asset_materializations_for_node("raw_tables")}
print(meta["raw_transactions"]["rows_erased"].value, meta["raw_events"]["rows_erased"].value)
"""


def test_a_reload_of_the_same_source_leaves_the_erased_id_out_and_balances(trained_home, victim):
    env = env_for(trained_home)
    done = subprocess.run([sys.executable, "-c", RELOAD, str((trained_home / "source").resolve())],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    erased_tx, erased_events = map(int, done.stdout.split()[-2:])
    assert erased_tx > 0 and erased_events > 0  # counted as erased, not quarantined
    rows = warehouse_rows(trained_home, victim)
    assert rows["raw.transactions"] == rows["quarantine.transactions"] == rows["raw.events"] == 0
