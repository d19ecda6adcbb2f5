"""What the `ltv` commands that run Dagster jobs do once their arguments are parsed (demo, score,
predict, monitor; cli.py has the contract, commands_local.py the others)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

from ltv_pipeline import settings
from ltv_pipeline.cli import EXIT_INPUT, EXIT_OK, progress
from ltv_pipeline.runner import run_job


def demo(args: argparse.Namespace) -> int:
    home = settings.ensure_home()
    progress(f"LTV_HOME={home}; source={args.source}")
    t0 = time.perf_counter()
    transform: dict[str, Any] = {}
    if args.as_of:
        transform["as_of"] = args.as_of.isoformat()
    if args.horizon_days:
        transform["horizon_days"] = args.horizon_days
    run_config = {
        "ops": {
            "raw_tables": {"config": {"source": args.source}},
            "ltv_dbt_models": {"config": transform},
        }
    }
    # an --as-of after the machine's date is a scoring partition of this run (settings.today);
    # later `ltv score` or `ltv monitor` runs of such dates need LTV_TODAY set likewise
    later = settings.today_at_least(args.as_of + timedelta(days=1)) if args.as_of else nullcontext()
    with later:
        result = run_job("full_pipeline_job", run_config, tags={"ltv/command": "demo"})
        progress(f"run {result.run_id} finished in {time.perf_counter() - t0:.1f} s")
        day = _scoring_date(result)
        scored = score_range(day, day, {"ltv/command": "demo"})
        monitored = run_job("monitor_job", {}, tags={"dagster/partition": day, "ltv/command": "demo"})
    print_leaderboard(result)
    print_outputs(result.run_id)
    print(f"scores: {_scores_line(day)} (run {scored})")
    print(f"monitoring: {settings.ltv_home() / 'monitoring' / f'{day}.json'} "
          f"(run {monitored.run_id}; `ltv monitor --as-of D` for later dates)")
    return EXIT_OK


def _scoring_date(result) -> str:
    """The as-of date the full pipeline built (the scoring date of its dbt plan)."""
    from ltv_pipeline.lib import marts, warehouse

    with warehouse.connect(settings.warehouse_path(), read_only=True) as con:
        return marts.read_plan(con).scoring_date.isoformat()


def _scores_line(day: str) -> str:
    from ltv_pipeline.lib import scores

    n = scores.partition_counts(settings.warehouse_path()).get(day, 0)
    return (f"{n:,} users in {scores.TABLE} for {day}; audiences in "
            f"{settings.exports_dir() / day}")


def score_range(first: str, last: str, tags: dict[str, str] | None = None,
                skip_online: bool = False) -> str:
    """Materialize the scoring partitions first..last (score_job) in one run; returns its id.
    The partitions are read when the definitions load: when this process loaded them before a
    source with an earlier start was ingested, the run happens in a fresh `ltv score` process."""
    from ltv_pipeline.partitions import has_partition

    if not has_partition(first) and "ltv_pipeline.definitions" in sys.modules:
        progress(f"the partitions were loaded before {first} existed: scoring in a new process")
        done = subprocess.run([sys.executable, "-m", "ltv_pipeline.cli", "score", "--from", first,
                               "--to", last, *(["--skip-online"] if skip_online else [])])
        if done.returncode == EXIT_INPUT:  # it said why on stderr
            from ltv_pipeline.lib.errors import InputError

            raise InputError(f"`ltv score --from {first} --to {last}` refused its dates (above)")
        done.check_returncode()
        return "(see the UI)"
    run_tags = {"dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last, **(tags or {})}
    if first == last:
        run_tags = {"dagster/partition": first, **(tags or {})}
    return run_job("score_job", {}, tags=run_tags, skip_online=skip_online).run_id


def score(args: argparse.Namespace) -> int:
    """`ltv score --from D1 --to D2`: the scoring partitions D1..D2 through Dagster, one run."""
    from ltv_pipeline.lib import scores
    from ltv_pipeline.lib.errors import InputError
    from ltv_pipeline.partitions import daily_partitions, has_partition

    settings.ensure_home()
    first, last = args.date_from.isoformat(), args.date_to.isoformat()
    for option, day in (("--from", first), ("--to", last)):
        if not has_partition(day):
            start = daily_partitions.start.date().isoformat()
            raise InputError(f"{option} {day} is not a scoring partition: partitions run from "
                             f"{start} (the loaded data's first day) to yesterday")
    if not (settings.model_registry_dir() / "champion.json").exists():
        raise InputError("there is no champion model yet: run `ltv demo` (or the full pipeline) "
                         "before scoring partitions")
    t0 = time.perf_counter()
    run_id = score_range(first, last, {"ltv/command": "score"}, skip_online=args.skip_online)
    counts = scores.partition_counts(settings.warehouse_path())
    days = [d for d in counts if first <= d <= last]
    progress(f"scored {len(days)} partition(s) {first}..{last} in {time.perf_counter() - t0:.1f} s "
             f"(run {run_id})")
    for day in days:
        print(f"{day}\t{counts[day]:,} users")
    return EXIT_OK


def _materialized(result, key: str) -> dict[str, Any]:
    import dagster as dg

    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(key)]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()} if events else {}


def print_leaderboard(result) -> None:
    """The backtest leaderboard and the champion decision of this run."""
    board, champ = _materialized(result, "backtest"), _materialized(result, "champion")
    if board:
        print(f"backtest leaderboard (scoring date {board['scoring_date']}, horizon "
              f"{board['horizon_days']} days, origins {', '.join(board['origins']) or 'none'}):")
        print(board["leaderboard"])
    if champ:
        print(f"champion: {champ['champion']} (challenger {champ['challenger']}, promoted: "
              f"{champ['promoted']}; {champ['selection']}; {champ['decision']})")


def print_outputs(run_id: str) -> None:
    """Where the outputs are: warehouse tables, marts, registered models, Feast, the run."""
    from ltv_pipeline.lib import warehouse
    from ltv_pipeline.lib.registry import ModelRegistry

    path = settings.warehouse_path()
    raw, bad = warehouse.table_counts(path, "raw"), warehouse.table_counts(path, "quarantine")
    print(f"warehouse: {path}")
    print(f"  {'raw table':<24}{'rows':>12}{'quarantined':>13}")
    for table, n in raw.items():
        print(f"  {table:<24}{n:>12,}{bad[table]:>13,}")
    with warehouse.connect(path, read_only=True) as con:
        marts = con.execute(
            "select table_name, estimated_size from duckdb_tables() where schema_name = 'marts' "
            "order by table_name"
        ).fetchall()
    if marts:
        print(f"  {'mart (schema marts)':<24}{'rows':>12}")
        for name, rows in marts:
            print(f"  {name:<24}{rows:>12,}")
    registry = ModelRegistry(settings.model_registry_dir())
    if registry.names():
        print(f"models: {registry.root}")
        for name in registry.names():
            version = registry.version(name)
            print(f"  {version.ref:<24}{version.manifest['family']:<10}"
                  f"trained on {', '.join(version.manifest['training_cutoffs'][-3:])}")
    if (settings.feast_dir() / "registry.db").exists():
        print(f"feature store: {settings.feast_dir()} (feature_repo/ applied)")
    print(f"Dagster run {run_id}: see it with `make ui` (DAGSTER_HOME={settings.dagster_home()})")


def _stage_inputs(args: argparse.Namespace) -> Path:
    """The given files under the names a source directory uses (symlinks), in LTV_HOME."""
    import shutil

    staged = settings.ltv_home() / "inputs" / "predict"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    if args.fx_rates is None:  # the rates a source directory would hold beside its transactions
        beside = [p for p in (args.transactions.with_name(f"fx_rates{s}") for s in (".parquet", ".csv"))
                  if p.is_file()]
        if beside:
            args.fx_rates = beside[0]
            progress(f"fx rates: {args.fx_rates} (beside --transactions; --fx-rates chooses another file)")
    for name in ("transactions", "users", "events", "fx_rates"):
        path = getattr(args, name)
        if path is not None:
            if path.suffix not in (".csv", ".parquet"):
                from ltv_pipeline.lib.errors import InputError

                raise InputError(f"--{name} {path}: the extension must be .csv or .parquet")
            (staged / f"{name}{path.suffix}").symlink_to(path)
    return staged


def _report(cutoff: str, horizon_days: int, used: dict[str, Any]) -> dict[str, Any]:
    """The --report JSON: leaderboard per origin and mean, champion, BTYD parameters."""
    import json

    from ltv_pipeline.lib.registry import ModelRegistry

    results = settings.ltv_home() / "evaluation" / "backtest.json"
    board: dict[str, dict[str, dict[str, float]]] = {}
    if results.is_file():
        for row in json.loads(results.read_text()).get("metrics", []):
            board.setdefault(row["model"], {}).setdefault(str(row["origin"]), {})[row["metric"]] = row["value"]
        for per_origin in board.values():
            metrics = {m for vals in per_origin.values() for m in vals}
            per_origin["mean"] = {m: sum(v[m] for v in per_origin.values() if m in v)
                                  / sum(1 for v in per_origin.values() if m in v) for m in metrics}
    registry = ModelRegistry(settings.model_registry_dir())
    params: dict[str, dict[str, float]] = {}
    for name, label, keys in (("bgnbd_gg", "bgnbd", ("r", "alpha", "a", "b")),
                              ("pareto_gg", "pareto_nbd", ("r", "alpha", "s", "beta"))):
        if name in registry.names():
            p = registry.version(name).manifest["params"]
            params[label] = {k: p[k] for k in keys if k in p}
            params["gamma_gamma"] = {k: p[f"gg_{k}"] for k in "pqv" if f"gg_{k}" in p}
    return {"cutoff": cutoff, "horizon_days": horizon_days, "leaderboard": board,
            "champion": used["champion"], "btyd_parameters": params, "units": "days",
            "currency": settings.base_currency()}


def predict(args: argparse.Namespace) -> int:
    """The asset graph in-process on the given files as of --cutoff, then one row per user
    with the champion's forecast (lib/scoring.py) in --out, and the report in --report."""
    import json

    from ltv_pipeline.lib import scores
    from ltv_pipeline.lib.files import write_frame
    from ltv_pipeline.lib.scoring import OUTPUT_COLUMNS
    from ltv_pipeline.lib.sources import ids_as_given

    home = settings.ensure_home()
    cutoff = args.cutoff.isoformat()
    staged = _stage_inputs(args)
    progress(f"LTV_HOME={home}; predicting as of {cutoff}, horizon {args.horizon_days} days")
    t0 = time.perf_counter()
    run_config = {"ops": {
        "raw_tables": {"config": {"source": str(staged)}},
        "ltv_dbt_models": {"config": {"as_of": cutoff, "horizon_days": args.horizon_days}},
    }}
    # the run's today is the end of the forecast window at least: a log dated after the
    # machine's clock is read as of the cutoff (no row up to then is "in the future") and the
    # cutoff is a scoring partition even when it is after the machine's yesterday
    with settings.today_at_least(args.cutoff + timedelta(days=1 + args.horizon_days)):
        result = run_job("full_pipeline_job", run_config, tags={"ltv/command": "predict"})
        # the scoring partition of the cutoff, as the daily schedule would write it (no online store)
        score_range(cutoff, cutoff, {"ltv/command": "predict"}, skip_online=True)
    rows = scores.read_partition(settings.warehouse_path(), cutoff)
    rows["user_id"] = ids_as_given(rows["user_id"], args.transactions)
    write_frame(rows.sort_values("user_id", kind="stable")[OUTPUT_COLUMNS], args.out)
    champion = rows["model"].iloc[0] if len(rows) else "none"
    progress(f"{len(rows):,} users forecast with {champion} (values in {settings.base_currency()}) in "
             f"{time.perf_counter() - t0:.1f} s (run {result.run_id}): {args.out}")
    if args.report:
        report = _report(cutoff, args.horizon_days, {"champion": champion})
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, default=str))
        progress(f"report: {args.report}")
    return EXIT_OK


def monitor(args: argparse.Namespace) -> int:
    """`ltv monitor --as-of D`: the monitoring partition D through Dagster, then its figures,
    `retrain` and `reasons` (lib/drift.decide, the drift sensor's function) as JSON on stdout.
    Scores what the figures compare first, when not stored yet (score_job, no online store):
    D, the reference date R (the champion's training scoring date) and D - H, the forecasts
    whose horizon matures at D, when D - H >= R (a date the current champion could have
    scored in production; earlier forecasts made now would have seen their own window)."""
    import json

    from ltv_pipeline.lib import marts, scores, warehouse
    from ltv_pipeline.lib.errors import InputError
    from ltv_pipeline.partitions import daily_partitions, has_partition

    from ltv_pipeline.lib import locks

    home = settings.ensure_home()
    locks.hold_until_exit(home, "ltv monitor", on_wait=progress)  # reads before its first run
    day = args.as_of
    if not has_partition(day):
        raise InputError(f"--as-of {day} is not a monitoring partition: partitions run from "
                         f"{daily_partitions.start.date().isoformat()} (the loaded data's first day) "
                         "to yesterday")
    if not (settings.model_registry_dir() / "champion.json").exists():
        raise InputError("there is no champion model yet: run `ltv demo` (or the full pipeline) "
                         "before monitoring")
    with warehouse.connect(settings.warehouse_path(), read_only=True) as con:
        plan = marts.read_plan(con)
    ref, horizon = plan.scoring_date, plan.horizon_days
    if day < ref:
        raise InputError(f"--as-of {day} is before the champion's training scoring date {ref}: "
                         f"monitoring compares later dates with it; choose {ref} or later")
    t0 = time.perf_counter()
    matured = day - timedelta(days=horizon)
    wanted = sorted({ref, day, *([matured] if matured >= ref else [])})
    stored = scores.partition_counts(settings.warehouse_path())
    for when in (d.isoformat() for d in wanted):
        if not stored.get(when):
            progress(f"scoring {when} (not stored yet)")
            score_range(when, when, {"ltv/command": "monitor"}, skip_online=True)
    result = run_job("monitor_job", {}, tags={"dagster/partition": day.isoformat(),
                                              "ltv/command": "monitor"})
    figures = json.loads((settings.ltv_home() / "monitoring" / f"{day}.json").read_text())
    progress(f"monitoring {day} in {time.perf_counter() - t0:.1f} s (run {result.run_id}): "
             f"retrain {figures['retrain']}")
    print(json.dumps(figures, indent=2))
    return EXIT_OK
