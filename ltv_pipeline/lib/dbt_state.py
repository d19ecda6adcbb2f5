"""Whether a scoring build may reuse the upstream dbt models (no Dagster imports).

A scoring partition needs the per-cutoff marts of its date (customer_features,
customer_btyd_summary and the cutoff plan they read). Everything upstream of them (the staging
views and the intermediate tables: one row per user per active day over the whole log) depends
only on the raw tables, the dbt project's code and the base currency, so rebuilding it for every
date of a backfill or every day of the schedule repeats the same work. After a scoring build
that rebuilt the upstream models, `record` stores a fingerprint of those inputs in the
warehouse; the next scoring build rebuilds them only when the fingerprint differs (a new load,
an erasure, an upgraded dbt project, another base currency) or was never recorded.

The training build records the same fingerprint when it builds every upstream model (the
`ltv predict` and `make demo` runs score right after it: they no longer rebuild the day table
a second time). The dates of a scoring build travel in a table (request_cutoffs), not in
dbt's --vars.

Per date, the per-cutoff marts' rows of every user known at it (a scoring date: not a training
sample) are recorded with the fingerprint and the decay half-life they were built from and
their row counts (record_cutoffs, by the training build for its scoring date and by every
scoring build). A scoring build leaves out the dates whose record still holds (current_cutoffs:
the same inputs and half-life, the same row counts in both marts) and runs no dbt when that is
all of them: `ltv predict` and `make demo` score the date the training build has just built.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import duckdb

from ltv_pipeline.lib import warehouse

RAW_TABLES = ("transactions", "users", "events", "fx_rates")
STATE_SCHEMA = "ltv_state"
STATE_TABLE = f"{STATE_SCHEMA}.dbt_upstream"
# The dates a scoring build is asked for (dbt var cutoffs_table): dbt reads them when the
# models run, so the --vars of every scoring build are the same and dbt reuses its parse.
SCORING_CUTOFFS_TABLE = f"{STATE_SCHEMA}.scoring_cutoffs"


# The models a scoring build builds for its dates; every model they read is upstream.
PER_CUTOFF_MODELS = ("int_cutoffs_planned", "customer_features", "customer_btyd_summary")
PER_CUTOFF_MARTS = ("marts.customer_features", "marts.customer_btyd_summary")
CUTOFFS_BUILT_TABLE = f"{STATE_SCHEMA}.cutoffs_built"


def upstream_models(manifest_path: Path) -> frozenset[str]:
    """Names of the models upstream of the scoring marts (the staging views and intermediate
    tables that a scoring build reuses while the fingerprint holds), from dbt's manifest."""
    manifest = json.loads(Path(manifest_path).read_text())
    parents, names = manifest["parent_map"], {}
    for uid, node in manifest["nodes"].items():
        if node.get("resource_type") == "model":
            names[uid] = node["name"]
    wanted = [uid for uid, name in names.items() if name in PER_CUTOFF_MODELS[1:]]
    seen: set[str] = set()
    while wanted:
        for parent in parents.get(wanted.pop(), []):
            if parent not in seen:
                seen.add(parent)
                wanted.append(parent)
    return frozenset(names[u] for u in seen if u in names) - set(PER_CUTOFF_MODELS)


def project_digest(project_dir: Path) -> str:
    """sha256 over the dbt project's models, macros and dbt_project.yml (paths and contents)."""
    digest = hashlib.sha256()
    files = [project_dir / "dbt_project.yml",
             *sorted(p for folder in ("models", "macros") for p in (project_dir / folder).rglob("*")
                     if p.is_file())]
    for path in files:
        digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(con: duckdb.DuckDBPyConnection, project_dir: Path, base_currency: str) -> str:
    """The inputs of the upstream models: each raw table's row count and first and last load
    batch (every load has a new batch id; an erasure changes the counts), the project's digest
    and the base currency."""
    parts = [f"base_currency={base_currency}", project_digest(project_dir)]
    for table in RAW_TABLES:
        n, first, last = con.execute(
            f"select count(*), min(_batch_id), max(_batch_id) from raw.{table}").fetchone()
        parts.append(f"{table}:{n}:{first}:{last}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def recorded(con: duckdb.DuckDBPyConnection) -> str | None:
    """The fingerprint the last upstream build recorded, or None."""
    try:
        row = con.execute(f"select fingerprint from {STATE_TABLE}").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def clear(con: duckdb.DuckDBPyConnection) -> None:
    """Forget the recorded fingerprint (before a build that rebuilds the upstream models: if
    it fails half-way, the next scoring build rebuilds them again)."""
    con.execute(f"drop table if exists {STATE_TABLE}")


def record(con: duckdb.DuckDBPyConnection, value: str) -> None:
    """Record that the upstream models were built from the inputs with fingerprint `value`."""
    con.execute(f"create schema if not exists {STATE_SCHEMA}")
    con.execute(f"create or replace table {STATE_TABLE} as select ? as fingerprint, "
                "current_timestamp as built_at", [value])


def request_cutoffs(con: duckdb.DuckDBPyConnection, days: list[str]) -> str:
    """Replace the dates of the next scoring build (SCORING_CUTOFFS_TABLE) with `days`
    ('YYYY-MM-DD'); returns the table's name for dbt_vars.vars_for_scoring. Raises ValueError
    for a malformed date or an empty list."""
    parsed = sorted({date.fromisoformat(str(d).strip()) for d in days})
    if not parsed:
        raise ValueError("no scoring dates to build")
    con.execute(f"create schema if not exists {STATE_SCHEMA}")
    con.execute(f"create or replace table {SCORING_CUTOFFS_TABLE} (cutoff_date date)")
    con.executemany(f"insert into {SCORING_CUTOFFS_TABLE} values (?)", [[d] for d in parsed])
    return SCORING_CUTOFFS_TABLE


def _row_counts(con: duckdb.DuckDBPyConnection, days: list[date]) -> dict[date, tuple[int, ...]]:
    """Per date: its row count in each of PER_CUTOFF_MARTS (0 where absent)."""
    counts: dict[date, list[int]] = {d: [0] * len(PER_CUTOFF_MARTS) for d in days}
    for i, mart in enumerate(PER_CUTOFF_MARTS):
        for day, n in con.execute(f"select cutoff_date, count(*) from {mart} "
                                  "where list_contains(?, cutoff_date) group by 1", [days]).fetchall():
            counts[day][i] = n
    return {d: tuple(c) for d, c in counts.items()}


def record_cutoffs(con: duckdb.DuckDBPyConnection, days: list[str | date], inputs: str,
                   half_life: float) -> None:
    """Record that the per-cutoff marts hold the rows of every user known at each date of
    `days`, built from the upstream inputs with fingerprint `inputs` and the decay half-life
    `half_life`, with their row counts now (replacing the dates' earlier records)."""
    parsed = sorted({date.fromisoformat(str(d)) for d in days})
    con.execute(f"create schema if not exists {STATE_SCHEMA}")
    con.execute(f"create table if not exists {CUTOFFS_BUILT_TABLE} (cutoff_date date primary key, "
                "fingerprint varchar, decay_half_life_days double, row_counts varchar)")
    rows = [[d, inputs, float(half_life), json.dumps(n)] for d, n in _row_counts(con, parsed).items()]
    con.executemany(f"insert or replace into {CUTOFFS_BUILT_TABLE} values (?, ?, ?, ?)", rows)


def current_cutoffs(con: duckdb.DuckDBPyConnection, days: list[str | date], inputs: str,
                    half_life: float) -> list[str]:
    """The dates of `days` ('YYYY-MM-DD') whose record (record_cutoffs) has this fingerprint and
    half-life and whose row counts in the marts are still the recorded ones: their rows are what
    a scoring build would write again."""
    parsed = sorted({date.fromisoformat(str(d)) for d in days})
    try:
        recorded = {d: json.loads(n) for d, f, h, n in con.execute(
            f"select cutoff_date, fingerprint, decay_half_life_days, row_counts from {CUTOFFS_BUILT_TABLE} "
            "where list_contains(?, cutoff_date)", [parsed]).fetchall()
            if f == inputs and h == float(half_life)}
    except duckdb.CatalogException:
        return []
    if not recorded:
        return []
    now = _row_counts(con, sorted(recorded))
    return [d.isoformat() for d, n in sorted(recorded.items()) if tuple(n) == now[d] and all(now[d])]


def expired_cutoffs(con: duckdb.DuckDBPyConnection, keep_days: int, protected: set[date]) -> list[date]:
    """The dates of the per-cutoff marts older than the newest one by keep_days or more (the
    newest keep_days dates stay), without the `protected` ones."""
    rows = con.execute(f"select distinct cutoff_date from {PER_CUTOFF_MARTS[0]} order by 1").fetchall()
    dates = [r[0] for r in rows]
    if not dates:
        return []
    first_kept = dates[-1] - timedelta(days=keep_days - 1)
    return [d for d in dates if d < first_kept and d not in protected]


def delete_cutoffs(con: duckdb.DuckDBPyConnection, days: list[date]) -> dict[str, int]:
    """Delete the rows of `days` from the per-cutoff marts and their build records (a later
    scoring of such a date builds it again), in one transaction; rows deleted per mart."""
    deleted: dict[str, int] = {}
    if not days:
        return deleted
    recorded = warehouse.has_table(con, CUTOFFS_BUILT_TABLE)
    con.execute("begin transaction")
    try:
        for mart in PER_CUTOFF_MARTS:
            (n,) = con.execute(f"delete from {mart} where list_contains(?, cutoff_date)", [days]).fetchone()
            deleted[mart] = int(n)
        if recorded:
            con.execute(f"delete from {CUTOFFS_BUILT_TABLE} where list_contains(?, cutoff_date)", [days])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return deleted


def known_users(con: duckdb.DuckDBPyConnection) -> int:
    """Distinct users in the raw tables: an upper bound on the users a scoring date covers."""
    return int(con.execute(
        "select count(distinct user_id) from (select user_id from raw.transactions union all "
        "select user_id from raw.users union all select user_id from raw.events)").fetchone()[0])


def batches(days: list[str], users: int, max_user_dates: int) -> list[list[str]]:
    """`days` in consecutive batches of at most max_user_dates // users dates (at least one):
    the dates of one dbt scoring build (settings.SCORING_BUILD_MAX_USER_DATES)."""
    size = max(1, max_user_dates // max(users, 1))
    return [days[i:i + size] for i in range(0, len(days), size)]
