"""Benchmark stages of partitioned scoring (issue 8); bench/stages.py runs them after its own,
on the same work directory (the generated log and the ingested warehouse are there).

The champion here is BG/NBD + Gamma-Gamma fitted at the bench cutoff (registered and promoted
in the stage's setup, untimed): the stages time what a scoring partition costs around the
model — the dbt scoring build of the date(s), the forecast, ranking, the replace of the
partition's rows and the audience exports — through Dagster, as `ltv score --skip-online` runs
it. A LightGBM champion adds a Feast point-in-time retrieval per date (see stages_feast).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

BENCH_CUTOFF = date(2025, 9, 30)


def _home(work: Path) -> Path:
    """The work directory as LTV_HOME (its warehouse.duckdb is the ingest stage's), with a
    BTYD champion and the training plan of BENCH_CUTOFF."""
    os.environ["LTV_HOME"] = str(work)
    os.environ.pop("DAGSTER_HOME", None)
    from ltv_pipeline import settings
    from ltv_pipeline.lib import dbt_project, marts, training, warehouse
    from ltv_pipeline.lib.dbt_vars import dbt_vars
    from ltv_pipeline.lib.registry import ModelRegistry

    settings.ensure_home()
    settings.write_data_span(date(2023, 1, 1), BENCH_CUTOFF)
    registry = ModelRegistry(work / "models")
    if registry.champion() is None:
        dbt_project.run_dbt(["run", "--select", "+customer_features +customer_btyd_summary"],
                            dbt_vars([BENCH_CUTOFF], 90, scoring_date=BENCH_CUTOFF))
        with warehouse.connect(work / "warehouse.duckdb", read_only=True) as con:
            summary = marts.btyd_summary(con, [BENCH_CUTOFF])
        model = training.fit_btyd_models(summary, BENCH_CUTOFF, models=("bgnbd",))["bgnbd_gg"]
        version = registry.register(model, "btyd", "bgnbd_gg", {}, [BENCH_CUTOFF.isoformat()],
                                    None, "bench", {})
        registry.set_champion(version.name, version.version, "bench", {})
    return work


def _score(first: date, last: date) -> None:
    import dagster as dg
    import duckdb

    from ltv_pipeline import settings
    from ltv_pipeline.lib import dbt_state, warehouse

    # each date as on the day it is first scored: a re-run of the stage in the same work dir
    # would otherwise find the dates' rows current and skip their dbt build (lib/dbt_state.py)
    with warehouse.connect(settings.warehouse_path()) as con:
        try:
            con.execute(f"delete from {dbt_state.CUTOFFS_BUILT_TABLE} where cutoff_date between ? and ?",
                        [first, last])
        except duckdb.CatalogException:  # nothing recorded yet
            pass

    from ltv_pipeline.definitions import defs

    tags = ({"dagster/partition": first.isoformat()} if first == last else
            {"dagster/asset_partition_range_start": first.isoformat(),
             "dagster/asset_partition_range_end": last.isoformat()})
    keys = [dg.AssetKey(k) for k in ("scoring_features", "ltv_scores", "audience_exports")]
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("score_job").execute_in_process(
            instance=instance, tags=tags, asset_selection=keys, raise_on_error=True)
    assert result.success


def scoring_partition(work: Path, n: int) -> None:
    """One scoring partition (the day after the bench cutoff). Goal: under 20 s at 1M users."""
    _home(work)
    t0 = time.perf_counter()
    _score(BENCH_CUTOFF + timedelta(days=1), BENCH_CUTOFF + timedelta(days=1))
    _report(work, "scoring_partition", time.perf_counter() - t0)


def scoring_backfill_30d(work: Path, n: int) -> None:
    """A 30-day backfill in one run (one dbt build of 30 cutoffs, 30 partition replaces)."""
    _home(work)
    t0 = time.perf_counter()
    _score(BENCH_CUTOFF + timedelta(days=2), BENCH_CUTOFF + timedelta(days=31))
    _report(work, "scoring_backfill_30d", time.perf_counter() - t0)


def history_reads(work: Path, n: int) -> None:
    """What the training job and a LightGBM champion's scoring read once the work dir holds
    many scored dates (run after scoring_backfill_30d): the marts' GX gates (the training
    plan's rows), feast_registry's export (the plan's cutoffs; the other dates' files are
    current) and one Feast retrieval of every user at the newest scored date (ttl: its day)."""
    import resource
    import sys

    import pandas as pd
    import pyarrow.parquet as pq

    from bench.stages import _quality_suites
    from ltv_pipeline.defs.quality.mart_checks import mart_rows
    from ltv_pipeline.lib import feature_exports, feature_store, marts, quality_suites, warehouse

    _home(work)
    with warehouse.connect(work / "warehouse.duckdb", read_only=True) as con:
        plan = marts.read_plan(con)
        dates = [r[0] for r in con.execute("select distinct cutoff_date from marts.customer_features "
                                           "order by 1").fetchall()]
    say = lambda text: print(f"[bench] {n:>9,} users  {text}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"history: {len(dates)} dates in marts.customer_features ({dates[0]}..{dates[-1]}), "
        f"training plan {len(plan.all_cutoffs)} cutoff(s)")
    _quality_suites(work, n, "mart", [(mart_rows("customer_features"), quality_suites.customer_features_suite()),
                                      (mart_rows("customer_btyd_summary"), quality_suites.customer_btyd_summary_suite())])
    t0 = time.perf_counter()
    rows = feature_exports.export_cutoffs(work / "warehouse.duckdb", work, rebuilt=plan.all_cutoffs)
    say(f"feast_registry's export: {rows} rows in {time.perf_counter() - t0:.1f} s")
    newest = dates[-1]
    store = feature_store.feature_store(work)
    feature_store.apply_repo(store)
    users = pq.read_table(feature_exports.cutoff_file(work / "feast" / "data" / "customer_features", newest),
                          columns=["user_id"]).column("user_id").to_pylist()
    t0 = time.perf_counter()
    frame = feature_store.training_frame(store, pd.DataFrame({"user_id": users, "cutoff_date": newest}))
    say(f"retrieval of {len(frame):,} users at {newest}: {time.perf_counter() - t0:.1f} s; "
        f"process peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


def _report(work: Path, stage: str, seconds: float) -> None:
    import sys

    from ltv_pipeline.lib import scores

    counts = scores.partition_counts(work / "warehouse.duckdb")
    print(f"[bench] {stage}: {len(counts)} partition(s) in the table, last "
          f"{max(counts) if counts else '-'} with {counts[max(counts)] if counts else 0:,} users; "
          f"{seconds:.1f} s", file=sys.stderr)


STAGES: dict[str, Callable[[Path, int], None]] = {
    f.__name__: f for f in (scoring_partition, scoring_backfill_30d, history_reads)
}
