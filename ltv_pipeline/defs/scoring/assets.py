"""Scoring: the daily partitions (ltv_pipeline.partitions). For a scoring date D: the features
of D (a dbt scoring build), the champion's forecasts in scores.ltv_scores, audience exports.

Every asset here takes a range of partitions in one run (BackfillPolicy.single_run): a 30-day
backfill is one dbt build of 30 cutoffs, then 30 replacements of a partition's rows.
"""

import time
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from ltv_pipeline import groups, settings
from ltv_pipeline.defs.ingest.assets import RAW_ASSETS
from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.defs.transform.assets import data_span
from ltv_pipeline.lib import (dbt_state, feature_exports, feature_store, lazy, marts, memory, plots, quality,
                              ranking, scores, scoring)
from ltv_pipeline.lib.dbt_project import run_dbt, run_target
from ltv_pipeline.lib.dbt_vars import DEFAULT_DECAY_HALF_LIFE_DAYS, vars_for_scoring
from ltv_pipeline.lib.errors import InputError
from ltv_pipeline.partitions import daily_partitions

# The per-cutoff marts a scoring date needs (labels are not built), and everything upstream of
# them when the raw tables, the dbt project or the base currency changed since the upstream
# models were last built for scoring (lib/dbt_state.py): a partition always sees the data
# loaded now, and a backfill or the next day's run does not rebuild the same day table again.
SCORING_SELECT = "+customer_features +customer_btyd_summary"
PER_CUTOFF_SELECT = "int_cutoffs_planned customer_features customer_btyd_summary"
SINGLE_RUN = dg.BackfillPolicy.single_run()


class ScoringConfig(dg.Config):
    """How a scoring partition forecasts and ranks."""

    horizon_days: int | None = Field(
        default=None, gt=0,
        description="Forecast horizon in days; default: the horizon of the training plan "
        "(intermediate.int_cutoffs_planned), the one the champion was selected for.",
    )
    exploration_share: float = Field(
        default=0.1, ge=0, le=1,
        description="Share of every top-k of the priority ranking reserved for new and uncertain customers.",
    )
    audience_size: int = Field(default=1000, ge=0, description="Users per audience export (top k).")
    seed: int = Field(default=0, description="Tie-break seed of the priority ranking.")
    explain_top: int = Field(
        default=1000, ge=0,
        description="Users (highest predicted value first) whose top LightGBM feature "
        "contributions are stored in top_features; TreeSHAP costs about 1 ms per user.",
    )


def partition_days(context: dg.AssetExecutionContext) -> list[str]:
    """The scoring dates of this run (one partition, or a backfill's range), oldest first."""
    return sorted(context.partition_keys)


def training_horizon(plan: marts.BuiltPlan | None, config: ScoringConfig) -> int:
    """The configured horizon, else the training plan's, else the project default."""
    if config.horizon_days:
        return config.horizon_days
    return plan.horizon_days if plan else settings.DEFAULT_HORIZON_DAYS


@dg.asset(
    partitions_def=daily_partitions, backfill_policy=SINGLE_RUN, group_name=groups.SCORING,
    kinds={"dbt", "duckdb"}, deps=list(RAW_ASSETS.values()),
)
def scoring_features(
    context: dg.AssetExecutionContext, config: ScoringConfig, warehouse_db: WarehouseResource
) -> dg.MaterializeResult:
    """The rows of cutoff D in marts.customer_features and marts.customer_btyd_summary (one row
    per user known at D), built by dbt with build_kind 'scoring' (the training plan is left
    alone) with the training plan's decay half-life, then exported to the Feast sources.
    Re-building D replaces its rows; a date whose rows were built from the same inputs already
    is not built again (lib/dbt_state.py: in `ltv predict`, the training build just built D).
    With LTV_KEEP_SCORED_DAYS, the features and exports of older dates are deleted
    (prune_history; the scores stay)."""
    days = partition_days(context)
    span = f"{days[0]}..{days[-1]}" if len(days) > 1 else days[0]
    first, last = data_span(warehouse_db)
    if date.fromisoformat(days[0]) < first:
        raise InputError(f"scoring date {days[0]} is before the first transaction date {first} "
                         f"(the data spans {first} to {last}): choose dates from {first} on")
    plan = warehouse_db.training_plan()
    currency = settings.base_currency()
    if plan and plan.base_currency and plan.base_currency != currency:
        raise InputError(f"the models were trained on amounts in {plan.base_currency} (the training plan, "
                         f"intermediate.int_cutoffs_planned) and the base currency is now {currency} "
                         "(LTV_BASE_CURRENCY, else the last load's): scoring would feed amounts in "
                         f"{currency} to models fitted on amounts in {plan.base_currency}. "
                         f"Retrain (`ltv demo`, `ltv predict` or the full pipeline) in {currency}, or set "
                         f"LTV_BASE_CURRENCY={plan.base_currency}")
    horizon = training_horizon(plan, config)
    keep = settings.keep_scored_days()  # a bad value fails here, before any build
    # the half-life the models learnt the decayed spend feature with
    half_life = plan.decay_half_life_days if plan else DEFAULT_DECAY_HALF_LIFE_DAYS
    started = time.perf_counter()
    with warehouse_db.connect() as con:
        inputs = dbt_state.fingerprint(con, settings.DBT_PROJECT_DIR, currency)
        upstream_current = dbt_state.recorded(con) == inputs
        # the dates whose rows were built from these inputs already (the training build's
        # scoring date, as in `ltv predict`, or an earlier scoring build): dbt builds the others
        reused = dbt_state.current_cutoffs(con, days, inputs, half_life) if upstream_current else []
        todo = [d for d in days if d not in reused]
        if not upstream_current:
            dbt_state.clear(con)
        # one date is one build whatever the users (counting them reads every raw table: 0.7 s at 1M)
        users = dbt_state.known_users(con) if len(todo) > 1 else 0
    if reused:
        context.log.info(f"the features of {len(reused)} of the {len(days)} date(s) ({', '.join(reused[:3])}"
                         f"{', ...' if len(reused) > 3 else ''}) were built from the same inputs (raw "
                         "tables, dbt project, base currency, decay half-life): not built again")
    runs = dbt_state.batches(todo, users, settings.scoring_build_max_user_dates())
    if len(runs) > 1:
        context.log.info(f"{len(todo)} dates of {users:,} users in {len(runs)} dbt builds of at most "
                         f"{len(runs[0])} date(s) (LTV_SCORING_BUILD_MAX_USER_DATES "
                         f"{settings.scoring_build_max_user_dates():,})")
    for i, batch in enumerate(runs):  # each batch recorded once built: a re-run resumes
        rebuild_upstream = not upstream_current and i == 0
        with warehouse_db.connect() as con:
            requested = dbt_state.request_cutoffs(con, batch)
        build_features(context, warehouse_db, batch, requested, horizon, half_life, not rebuild_upstream)
        with warehouse_db.connect() as con:
            if rebuild_upstream:
                dbt_state.record(con, inputs)
            dbt_state.record_cutoffs(con, batch, inputs, half_life)
    dbt_seconds = time.perf_counter() - started
    exported = feature_exports.export_cutoffs(warehouse_db.path, Path(warehouse_db.ltv_home), days)
    pruned = prune_history(context, warehouse_db, days, plan, keep)
    with warehouse_db.connect(read_only=True) as con:
        per_day = dict(con.execute(
            "select strftime(cutoff_date, '%Y-%m-%d'), count(*) from marts.customer_features "
            f"where cutoff_date in ({marts.in_list(days)}) group by 1 order by 1").fetchall())
    return dg.MaterializeResult(metadata={
        "scoring_dates": span,
        "users_per_date": dg.MetadataValue.json(per_day),
        "dagster/row_count": per_day.get(days[-1], 0),
        "feast_rows_exported": dg.MetadataValue.json(exported),
        "data_last_date": last.isoformat(),
        "dbt_seconds": round(dbt_seconds, 2),
        "upstream_models_rebuilt": not upstream_current,
        "features_reused": not todo,  # no dbt run
        "dates_reused": len(reused),
        "dbt_builds": len(runs),
        "decay_half_life_days": half_life,
        "keep_scored_days": keep or "all",
        "dates_pruned": dg.MetadataValue.json(pruned),
    })


def prune_history(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource, days: list[str],
                  plan: marts.BuiltPlan | None, keep: int | None) -> dict[str, object]:
    """With keep (LTV_KEEP_SCORED_DAYS, settings.keep_scored_days), delete the per-date mart
    rows and Feast export files of dates older than the newest date in the marts by that many
    days, except this run's dates, the training plan's cutoffs and the date the online store
    serves. The files go first: a failure in between leaves rows whose files feast_registry
    writes again, never files without rows. Returns what was deleted (empty when nothing was)."""
    if not keep:
        return {}
    home = Path(warehouse_db.ltv_home)
    protected = {date.fromisoformat(d) for d in days} | set(plan.all_cutoffs if plan else ())
    online = feature_exports.online_as_of(home)
    protected |= {online} if online else set()
    with warehouse_db.connect(read_only=True) as con:
        expired = dbt_state.expired_cutoffs(con, keep, protected)
    if not expired:
        return {}
    files = feature_exports.delete_cutoff_files(home, expired)
    with warehouse_db.connect() as con:
        rows = dbt_state.delete_cutoffs(con, expired)
    context.log.info(f"LTV_KEEP_SCORED_DAYS={keep}: deleted the features of {len(expired)} older date(s) "
                     f"({expired[0]}..{expired[-1]}): {rows} rows, {files} export files")
    return {"dates": len(expired), "first": expired[0].isoformat(), "last": expired[-1].isoformat(),
            "rows": rows, "export_files": files}


def build_features(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource, days: list[str],
                   requested: str, horizon: int, half_life: float, upstream_current: bool) -> None:
    """The dbt scoring build of `days` (their dates in the table `requested`)."""
    target = run_target(Path(warehouse_db.ltv_home), context.run.run_id)
    started = time.perf_counter()
    # while dbt works in its subprocess, import what the next steps need (the leakage check's
    # GX, the champion's lifetimes, the segment plot's matplotlib): ~2.5 s of a 1M partition
    lazy.prefetch(quality.gx_pandas, quality.gxe, "lifetimes", plots.plt)
    # cautious: only the tests whose every parent is built here (not the labels' tests); the
    # unit tests check SQL logic, not data: the training build runs them
    done = run_dbt(["build", "--select", PER_CUTOFF_SELECT if upstream_current else SCORING_SELECT,
                    "--indirect-selection", "cautious", "--exclude-resource-type", "unit_test"],
                   vars_for_scoring(requested, horizon, decay_half_life_days=half_life), target)
    with warehouse_db.connect(read_only=True) as con:
        planned = [r[0] for r in con.execute(
            "select strftime(cutoff_date, '%Y-%m-%d') from intermediate.int_cutoffs_scoring "
            "order by 1").fetchall()]
    if planned != days:  # another build replaced the request meanwhile
        raise dg.Failure(f"dbt planned the scoring dates {planned}, not {days}: "
                         "another scoring build ran at the same time; re-run this one")
    context.log.info(f"dbt built {len(days)} date(s) {days[0]}..{days[-1]} in {time.perf_counter() - started:.1f} s "
                     f"({'upstream models current' if upstream_current else 'upstream models rebuilt'}): "
                     f"{done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ''}")


@dg.asset(
    partitions_def=daily_partitions, backfill_policy=SINGLE_RUN, group_name=groups.SCORING,
    kinds={"duckdb"}, deps=[scoring_features, dg.AssetKey("champion")],
)
def ltv_scores(
    context: dg.AssetExecutionContext, config: ScoringConfig, warehouse_db: WarehouseResource
) -> dg.MaterializeResult:
    """scores.ltv_scores: one row per user known at D per as_of_date D with the champion's
    predicted_value, p10, p90, p_alive, expected_purchases, segment, uncertain, priority rank
    (with exploration slots), model, top LightGBM contributions (for the explain_top most
    valuable users) and cold_start. Re-scoring D replaces its rows in one transaction."""
    home = Path(warehouse_db.ltv_home)
    horizon = training_horizon(warehouse_db.training_plan(), config)
    summaries: dict[str, dict] = {}
    started = time.perf_counter()
    for day in partition_days(context):
        forecast, used = scoring.score_as_of(home, day, horizon, config.explain_top)
        rows = scores.partition_rows(day, forecast, used, config.exploration_share, config.seed)
        scores.replace_partition(warehouse_db.path, day, rows, used)
        scores.write_record(home, day, rows, used)
        summaries[day] = ranking.summary(rows)
        context.log.info(f"{day}: {len(rows):,} users scored with {used['champion']}")
        del forecast, rows
        memory.release()  # per date: a backfill's dates otherwise stack their heap fragments
    last = summaries[max(summaries)]
    return dg.MaterializeResult(metadata={
        "customers_scored": last["customers_scored"],
        "dagster/row_count": last["customers_scored"],
        "cold_starts": last["cold_starts"],
        "segment_sizes": dg.MetadataValue.json(last["segment_sizes"]),
        "predicted_value_quantiles": dg.MetadataValue.json(last["predicted_value_quantiles"]),
        "total_predicted_value": round(last["total_predicted_value"], 2),
        "per_date": dg.MetadataValue.json({d: s["customers_scored"] for d, s in summaries.items()}),
        "champion": used["champion"],
        "horizon_days": horizon,
        "explained_by": str(used.get("explained_by")),
        "segments_plot": dg.MetadataValue.md(plots.barh(
            pd.Series(last["segment_sizes"]), f"customers per segment on {max(summaries)}", "customers")),
        "seconds": round(time.perf_counter() - started, 2),
        "table": scores.TABLE,
    })


@dg.asset(
    partitions_def=daily_partitions, backfill_policy=SINGLE_RUN, group_name=groups.SCORING,
    kinds={"csv", "parquet"}, deps=[ltv_scores],
)
def audience_exports(
    context: dg.AssetExecutionContext, config: ScoringConfig, warehouse_db: WarehouseResource
) -> dg.MaterializeResult:
    """LTV_HOME/exports/<D>/<audience>.{csv,parquet}: the top k users by predicted value, by
    predicted margin, by churn risk among high-value users, and by priority (with exploration
    slots for new and uncertain users). Re-exporting D replaces its files."""
    written: dict[str, dict[str, int]] = {}
    for day in partition_days(context):
        rows = scores.read_partition(warehouse_db.path, day)
        if rows.empty:
            raise dg.Failure(f"{scores.TABLE} has no rows for {day}: materialize ltv_scores for it first")
        lists = ranking.audiences(rows, config.audience_size, config.exploration_share, config.seed)
        ranking.write_audiences(lists, Path(warehouse_db.ltv_home) / "exports" / day)
        written[day] = {name: len(frame) for name, frame in lists.items()}
    last = max(written)
    return dg.MaterializeResult(metadata={
        "audiences": dg.MetadataValue.json(written[last]),
        "directory": dg.MetadataValue.path(str(Path(warehouse_db.ltv_home) / "exports" / last)),
        "dates": dg.MetadataValue.json(sorted(written)),
    })
