"""Benchmark stages of the Feast feature store (issue 5); bench/stages.py runs them after
its own, on the same work directory (the generated log and the ingested warehouse are there,
and the dbt_marts stage has built the marts of stages.BENCH_CUTOFF). LTV_HOME is the work
directory, as in dbt_marts. Each stage prepares what it needs (export, apply, materialize) if
an earlier stage has not, and times only its measured step, printed as a [bench] line.

Goals (issue 5): retrieval of 1M entity rows under 5 s; online materialization of 1M users
under 60 s and 3 GB; single-user online read p99 under 10 ms in process.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

LATENCY_READS_ONE = 2_000
LATENCY_READS_BATCH = 30
BATCH_USERS = 1_000


def _say(n: int, text: str) -> None:
    print(f"[bench] {n:>9,} users  {text}", file=sys.stderr, flush=True)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _store(work: Path):
    """The feature store of the work directory, the bench cutoff exported and the repo applied."""
    import os

    os.environ["LTV_HOME"] = str(work)
    from bench.stages import BENCH_CUTOFF
    from ltv_pipeline.lib import feature_exports as exports
    from ltv_pipeline.lib import feature_store as fs

    store = fs.feature_store(work)
    exported = all(exports.cutoff_file(work / "feast" / v.batch_source.path, BENCH_CUTOFF).is_file()
                   for v in fs.repo_objects() if isinstance(v, fs.feast.FeatureView))
    if not exported:
        exports.export_cutoffs(work / "warehouse.duckdb", work, [BENCH_CUTOFF])
    fs.apply_repo(store)  # idempotent; recreates online tables of another store type's layout
    return store


def feast_export(work: Path, n: int) -> None:
    """export_cutoffs of the bench cutoff (both marts) and apply."""
    from bench.stages import BENCH_CUTOFF
    from ltv_pipeline.lib import feature_exports as exports
    from ltv_pipeline.lib import feature_store as fs

    t0 = time.perf_counter()
    rows = exports.export_cutoffs(work / "warehouse.duckdb", work, [BENCH_CUTOFF])
    _say(n, f"feast export of cutoff {BENCH_CUTOFF}: {rows} in {time.perf_counter() - t0:.2f} s")
    fs.apply_repo(_store(work))


def feast_retrieval(work: Path, n: int) -> None:
    """training_frame (point-in-time, ltv_model_v1) for one entity row per user at the cutoff."""
    import pandas as pd
    import pyarrow.parquet as pq

    from bench.stages import BENCH_CUTOFF
    from ltv_pipeline.lib import feature_exports as exports
    from ltv_pipeline.lib import feature_store as fs

    store = _store(work)
    users = pq.read_table(exports.cutoff_file(work / "feast" / "data" / "customer_features", BENCH_CUTOFF),
                          columns=["user_id"]).column("user_id").to_pylist()
    entities = pd.DataFrame({"user_id": users, "cutoff_date": pd.Timestamp(BENCH_CUTOFF).date()})
    t0, c0 = time.perf_counter(), _cpu()
    frame = fs.training_frame(store, entities)
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    if frame["n_orders"].isna().all():
        raise SystemExit("bench: the training frame has no features")
    _say(n, f"feast retrieval of {len(entities):,} entity rows x {frame.shape[1] - 2} features: "
            f"{seconds:.2f} s wall, {cpu:.2f} s CPU (goal: under 5 s)")


def feast_materialize(work: Path, n: int) -> None:
    """materialize_online of the bench cutoff into an empty online store."""
    import sqlite3

    from bench.stages import BENCH_CUTOFF
    from ltv_pipeline.lib import online_store

    store = _store(work)
    db = store.config.online_store.path
    with sqlite3.connect(db) as con:  # start from empty tables, as on a fresh LTV_HOME
        for view in store.list_feature_views():
            con.execute(f'delete from "{store.project}_{view.name}"')
    con.close()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), _cpu()
    written = online_store.materialize_online(store, BENCH_CUTOFF)
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fields = sum(len(v.features) * written[v.name] for v in store.list_feature_views())
    _say(n, f"feast online materialization {written} ({fields:,} feature rows): {seconds:.2f} s wall, "
            f"{cpu:.2f} s CPU, peak {peak:.0f} MB (before: {rss0:.0f} MB) (goal: under 60 s, 3 GB)")


def feast_online_latency(work: Path, n: int) -> None:
    """online_store.online_features (Feast's get_online_features, typed) in process: p50 and
    p99 for one random user per call and for 1,000 random users per call."""
    import random
    import sqlite3

    import numpy as np

    from ltv_pipeline.lib import online_store

    store = _store(work)
    with sqlite3.connect(store.config.online_store.path) as con:
        empty = con.execute(f'select count(*) from (select 1 from "{store.project}_customer_features" limit 1)').fetchone()[0] == 0
    con.close()
    if empty:
        feast_materialize(work, n)
    import pyarrow.parquet as pq

    from bench.stages import BENCH_CUTOFF
    from ltv_pipeline.lib import feature_exports as exports

    users = pq.read_table(exports.cutoff_file(work / "feast" / "data" / "customer_features", BENCH_CUTOFF),
                          columns=["user_id"]).column("user_id").to_pylist()
    rng = random.Random(0)
    online_store.online_features(store, users[:1], as_of=BENCH_CUTOFF)  # warm the registry cache
    for size, reads in ((1, LATENCY_READS_ONE), (BATCH_USERS, LATENCY_READS_BATCH)):
        wall, cpu = [], []
        for _ in range(reads):
            sample = rng.sample(users, size)
            t0, c0 = time.perf_counter(), time.process_time()
            got = online_store.online_features(store, sample, as_of=BENCH_CUTOFF)
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            assert len(got) == size and got["feature_cutoff_date"].eq(BENCH_CUTOFF).all()
        (w50, w99), (c50, c99) = np.percentile(wall, [50, 99]), np.percentile(cpu, [50, 99])
        # CPU time per call is what the read costs on a core of its own (the bench machine is shared)
        _say(n, f"feast online read, {size:,} user(s) per call, {reads} calls: wall p50 {w50:.2f} ms, "
                f"p99 {w99:.2f} ms; CPU p50 {c50:.2f} ms, p99 {c99:.2f} ms"
                + (" (goal: p99 under 10 ms)" if size == 1 else ""))


STAGES: dict[str, Callable[[Path, int], None]] = {
    f.__name__: f for f in (feast_export, feast_retrieval, feast_materialize, feast_online_latency)
}
