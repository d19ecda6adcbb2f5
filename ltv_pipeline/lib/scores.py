"""The scores table, scores.ltv_scores: one row per user per as_of_date (no Dagster imports).

A scoring partition D writes the rows of as_of_date D: the champion's forecast (lib.scoring),
segment and uncertainty (lib.ranking.annotate with the partition's own thresholds), the
priority ranking with its exploration slots (lib.ranking.priority), the model used and the top
LightGBM contributions. Re-writing a partition deletes and inserts its rows in ONE transaction:
it never duplicates them and a failure leaves the previous rows in place. The thresholds of
each partition are kept in scores.segment_thresholds and in LTV_HOME/scores/<D>.json (with the
champion, horizon and the cold-start prior), so a user scored online later (`ltv score-user`,
which never opens the warehouse) gets the segment the batch would give.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ltv_pipeline.lib import files, ranking, warehouse

SCHEMA = "scores"
TABLE = f"{SCHEMA}.ltv_scores"
THRESHOLDS_TABLE = f"{SCHEMA}.segment_thresholds"
COLUMNS = {
    "as_of_date": "DATE", "user_id": "VARCHAR", "predicted_value": "DOUBLE", "p10": "DOUBLE",
    "p90": "DOUBLE", "p_alive": "DOUBLE", "expected_purchases": "DOUBLE", "segment": "VARCHAR",
    "uncertain": "BOOLEAN", "priority_score": "DOUBLE", "rank": "BIGINT", "margin_rate": "DOUBLE",
    "cold_start": "BOOLEAN", "model": "VARCHAR", "top_features": "VARCHAR",
    "explained_by": "VARCHAR", "horizon_days": "INTEGER", "scored_at": "TIMESTAMP",
}
DDL = f"create table if not exists {TABLE} (" + ", ".join(f"{c} {t}" for c, t in COLUMNS.items()) + ")"
THRESHOLDS_DDL = (f"create table if not exists {THRESHOLDS_TABLE} (as_of_date DATE, model VARCHAR, "
                  "horizon_days INTEGER, thresholds_json VARCHAR, scored_at TIMESTAMP)")


def partition_rows(day: date | str, forecast: pd.DataFrame, used: dict,
                   exploration_share: float, seed: int = 0) -> pd.DataFrame:
    """The table's rows of partition `day` from lib.scoring.score_as_of's (forecast, used)."""
    annotated, _ = ranking.annotate(forecast, used["segment_thresholds"])
    # the day in the seed: users tied for a slot (new users, mostly) rotate from day to day
    ranked = ranking.priority(annotated, exploration_share=exploration_share,
                              seed=seed + pd.Timestamp(day).toordinal())
    rows = ranked.assign(
        as_of_date=pd.Timestamp(day).date(),
        explained_by=used.get("explained_by"),
        horizon_days=int(used["horizon_days"]),
        scored_at=datetime.now(timezone.utc).replace(tzinfo=None),
    )
    for column in COLUMNS:
        if column not in rows.columns:
            rows[column] = None
    # by rank: rank is a permutation of 1..n, so its inverse orders the rows without a sort
    # (sort_values and reset_index copied the frame twice: 0.8 s at 1M users)
    order = np.empty(len(rows), dtype=np.int64)
    order[rows["rank"].to_numpy(np.int64) - 1] = np.arange(len(rows))
    out = rows[list(COLUMNS)].take(order)
    out.index = pd.RangeIndex(len(out))
    return out


def replace_partition(warehouse_path: Path, day: date | str, rows: pd.DataFrame, used: dict) -> int:
    """Replace the rows (and thresholds) of as_of_date `day` in one transaction."""
    day = pd.Timestamp(day).date()
    if len(rows) and set(pd.to_datetime(rows["as_of_date"]).dt.date) != {day}:
        raise ValueError(f"rows for partition {day} hold other as_of_dates")
    with warehouse.connect(warehouse_path) as con:
        con.execute(f"create schema if not exists {SCHEMA}")
        con.execute(DDL)
        con.execute(THRESHOLDS_DDL)
        con.execute("begin transaction")
        try:
            con.execute(f"delete from {TABLE} where as_of_date = ?", [day])
            con.execute(f"delete from {THRESHOLDS_TABLE} where as_of_date = ?", [day])
            con.register("_scores", rows[list(COLUMNS)])
            con.execute(f"insert into {TABLE} by name select * from _scores")
            con.unregister("_scores")
            con.execute(f"insert into {THRESHOLDS_TABLE} values (?, ?, ?, ?, ?)",
                        [day, used["champion"], int(used["horizon_days"]),
                         json.dumps(used["segment_thresholds"]), datetime.now(timezone.utc).replace(tzinfo=None)])
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return len(rows)


def write_record(ltv_home: Path, day: date | str, rows: pd.DataFrame, used: dict) -> Path:
    """LTV_HOME/scores/<D>.json (atomically): champion, horizon_days, segment_thresholds and
    cold_start_value (mean forecast of the partition's cold starts: the prior for an id the
    stores have never seen)."""
    day = pd.Timestamp(day).date().isoformat()
    cold = rows.loc[rows["cold_start"].astype(bool), "predicted_value"]
    record = {"as_of_date": day, "champion": used["champion"], "horizon_days": int(used["horizon_days"]),
              "segment_thresholds": used["segment_thresholds"],
              "cold_start_value": float(cold.mean()) if len(cold) else 0.0, "users": int(len(rows))}
    return files.write_text_atomic(Path(ltv_home) / "scores" / f"{day}.json",
                                   json.dumps(record, indent=2))


def read_record(ltv_home: Path, day: date | str) -> dict | None:
    path = Path(ltv_home) / "scores" / f"{pd.Timestamp(day).date().isoformat()}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def latest_record_date(ltv_home: Path) -> str | None:
    """The latest scored date with a record (LTV_HOME/scores/<D>.json), or None."""
    days = sorted(p.stem for p in (Path(ltv_home) / "scores").glob("*.json") if not p.name.startswith("."))
    return days[-1] if days else None


def read_partition(warehouse_path: Path, day: date | str) -> pd.DataFrame:
    """The rows of as_of_date `day`, by rank (empty when the partition was never scored)."""
    with warehouse.connect(warehouse_path, read_only=True) as con:
        if not warehouse.has_table(con, TABLE):
            return pd.DataFrame(columns=list(COLUMNS))
        return con.execute(f"select * from {TABLE} where as_of_date = ? order by rank",
                           [pd.Timestamp(day).date()]).df()


def thresholds(warehouse_path: Path, day: date | str) -> dict | None:
    """The segment thresholds partition `day` was scored with, or None."""
    with warehouse.connect(warehouse_path, read_only=True) as con:
        if not warehouse.has_table(con, THRESHOLDS_TABLE):
            return None
        row = con.execute(f"select thresholds_json from {THRESHOLDS_TABLE} where as_of_date = ?",
                          [pd.Timestamp(day).date()]).fetchone()
    return json.loads(row[0]) if row else None


def partition_counts(warehouse_path: Path) -> dict[str, int]:
    """Rows per as_of_date over the whole table (ISO date -> rows)."""
    with warehouse.connect(warehouse_path, read_only=True) as con:
        if not warehouse.has_table(con, TABLE):
            return {}
        rows = con.execute(f"select as_of_date, count(*) from {TABLE} group by 1 order by 1").fetchall()
    return {d.isoformat(): int(n) for d, n in rows}
