"""One benchmark stage per process, so each stage's peak memory is its own.

Usage: python -m bench.stages STAGE WORKDIR N_USERS
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path


def generate(work: Path, n: int) -> None:
    from ltv_pipeline.lib.generator import generate as make_log
    from ltv_pipeline.lib.generator import write

    write(make_log(n_users=n, seed=1), work / "log")


def ingest(work: Path, n: int) -> None:
    """Validation against the contract plus the atomic raw load (lib, no Dagster)."""
    from ltv_pipeline.lib import sources, warehouse

    loads = sources.prepare_loads(sources.read_directory(work / "log"))
    warehouse.replace_raw_tables(work / "warehouse.duckdb", "bench", "bench", loads)


def _quality_suites(work: Path, n: int, layer: str, suites, goal: str = "") -> None:
    """Run (table, suite) pairs as the blocking checks run them (lib.quality_read.read_frame,
    then lib.quality.run_suite) and print read and GX seconds per table and in all, with the
    process's CPU seconds (DuckDB's threads included) beside the wall-clock ones."""
    from ltv_pipeline.lib import quality, quality_read, warehouse

    total_read = total_gx = 0.0
    cpu0 = time.process_time()
    for table, suite in suites:
        t0, c0 = time.perf_counter(), time.process_time()
        with warehouse.connect(work / "warehouse.duckdb", read_only=True) as con:
            frame = quality_read.read_frame(con, table, suite)
        t1 = time.perf_counter()
        result = quality.run_suite(frame, suite)
        t2 = time.perf_counter()
        if not result.success:
            raise SystemExit(f"bench: {result.summary()}")
        total_read, total_gx = total_read + t1 - t0, total_gx + t2 - t1
        print(f"[bench] {n:>9,} users  {layer} GX suite {suite.name:<22}{len(frame):>11,} rows "
              f"read {t1 - t0:6.2f} s  GX {t2 - t1:6.2f} s  (CPU {time.process_time() - c0:5.2f} s)",
              file=sys.stderr, flush=True)
    print(f"[bench] {n:>9,} users  {layer} GX suites, all tables: {total_read + total_gx:.2f} s "
          f"(read {total_read:.2f} s + GX {total_gx:.2f} s; CPU {time.process_time() - cpu0:.2f} s){goal}",
          file=sys.stderr, flush=True)


def raw_quality_suites(work: Path, n: int) -> None:
    """Every raw GX suite (lib.quality_suites.RAW_SUITES, as the blocking raw checks run them)
    on the tables the ingest stage wrote (goal: all suites under 5 s, reading included)."""
    from ltv_pipeline.lib.quality_suites import RAW_SUITES

    _quality_suites(work, n, "raw", [(f"raw.{t}", build()) for t, build in RAW_SUITES.items()],
                    goal="  goal: under 5 s")


def staging_quality_suites(work: Path, n: int) -> None:
    """Every staging GX suite (lib.quality_staging.STAGING_SUITES) on the views the dbt_marts
    stage built, then the raw -> staging row accounting of all four views."""
    import pandas as pd

    from ltv_pipeline.lib import warehouse
    from ltv_pipeline.lib.quality_staging import (
        STAGING_SCHEMA,
        STAGING_SUITES,
        layer_counts_sql,
        layer_row_counts,
    )

    _quality_suites(work, n, "staging",
                    [(f"{STAGING_SCHEMA}.{m}", build()) for m, build in STAGING_SUITES.items()])
    t0 = time.perf_counter()
    with warehouse.connect(work / "warehouse.duckdb", read_only=True) as con:
        counts = [con.execute(layer_counts_sql(m)).df() for m in STAGING_SUITES]
    result = layer_row_counts(pd.concat(counts, ignore_index=True))
    if not result.success:
        raise SystemExit(f"bench: {result.summary()}")
    print(f"[bench] {n:>9,} users  raw -> staging row counts, 4 views: "
          f"{time.perf_counter() - t0:.2f} s", file=sys.stderr, flush=True)


def duckdb_floor(work: Path, n: int) -> None:
    """One aggregate over the whole log: the floor of what reading the data costs."""
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"select user_id, count(distinct ts::date), sum(amount), min(ts), max(ts) "
        f"from read_parquet('{work / 'log' / 'transactions.parquet'}') group by user_id"
    ).fetchall()
    con.close()


def lifetimes_reference(work: Path, n: int) -> None:
    """The plain lifetimes workflow on the same file: summary, BG/NBD, Gamma-Gamma, predict."""
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    tx = pd.read_parquet(work / "log" / "transactions.parquet",
                         columns=["user_id", "ts", "amount", "is_refund"])
    tx = tx[~tx["is_refund"]]
    end = pd.Timestamp(date(2025, 9, 30))
    summary = summary_data_from_transaction_data(
        tx[tx["ts"] < end + pd.Timedelta(days=1)], "user_id", "ts", "amount",
        freq="D", observation_period_end=end,
    )
    bg = BetaGeoFitter(penalizer_coef=0.001).fit(summary["frequency"], summary["recency"], summary["T"])
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    gg = GammaGammaFitter(penalizer_coef=0.001).fit(repeat["frequency"], repeat["monetary_value"])
    gg.customer_lifetime_value(bg, summary["frequency"], summary["recency"], summary["T"],
                               summary["monetary_value"], time=3, freq="D")


BENCH_CUTOFF = "2025-09-30"


def dbt_marts(work: Path, n: int) -> None:
    """`dbt run` of every model (staging, intermediate, all marts) for one cutoff, on the
    warehouse the ingest stage wrote (LTV_HOME is the bench's work directory)."""
    import os

    os.environ["LTV_HOME"] = str(work)
    from ltv_pipeline.lib.dbt_project import run_dbt
    from ltv_pipeline.lib.dbt_vars import dbt_vars

    run_dbt(["run"], vars=dbt_vars([BENCH_CUTOFF], 90), target_path=work / "dbt_target")


def _summary(work: Path):
    from ltv_pipeline.lib import marts, warehouse

    with warehouse.connect(work / "warehouse.duckdb", read_only=True) as con:
        return marts.btyd_summary(con, [date.fromisoformat(BENCH_CUTOFF)])


def btyd_bgnbd_weighted(work: Path, n: int) -> None:
    """BG/NBD as the pipeline fits it: unique (frequency, recency, T) rows with weights."""
    from ltv_pipeline.lib import btyd

    fit = btyd.fit_btyd(_summary(work), model="bgnbd", penalizers=(0.001,))
    assert fit.converged, fit.notes


def btyd_bgnbd_unweighted(work: Path, n: int) -> None:
    """The same BG/NBD fit on one row per customer (lifetimes as usually called)."""
    from lifetimes import BetaGeoFitter

    s = _summary(work)
    BetaGeoFitter(penalizer_coef=0.001).fit(s["frequency"], s["recency"], s["T"])


STAGES = {f.__name__: f for f in (generate, ingest, raw_quality_suites, duckdb_floor,
                                  lifetimes_reference, dbt_marts, staging_quality_suites,
                                  btyd_bgnbd_weighted, btyd_bgnbd_unweighted)}
# Stages of other domains live in their own modules (each a STAGES dict of the same form);
# they run after these, in this order, on the same work directory.
from bench import stages_feast, stages_predict, stages_scoring  # noqa: E402

STAGES |= stages_feast.STAGES | stages_scoring.STAGES | stages_predict.STAGES

if __name__ == "__main__":
    stage, work, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    # import the heavy libraries first so a stage's seconds are its work, not imports
    import duckdb, great_expectations, lifetimes, pandas, pyarrow.parquet  # noqa: E401, F401
    from ltv_pipeline.lib import btyd, generator, quality, sources, warehouse  # noqa: F401

    t0 = time.perf_counter()
    STAGES[stage](work, n)
    # the stage's own work, without interpreter start-up and imports done before the call
    (work / f"{stage}.seconds").write_text(f"{time.perf_counter() - t0:.3f}")
