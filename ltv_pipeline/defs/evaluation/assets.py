"""Evaluation: rolling-origin backtests of every candidate and the champion with its promotion
gate. Thin assets over lib/backtest.py and lib/champion.py; the backtest hands its results to
the champion through LTV_HOME/evaluation/backtest.json (one file, tagged with its run and
scoring date, never "the newest file")."""

import json
import time

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from ltv_pipeline import groups, settings
from ltv_pipeline.defs.evaluation import inputs
from ltv_pipeline.defs.resources import ModelRegistryResource, WarehouseResource
from ltv_pipeline.lib import backtest as bt
from ltv_pipeline.lib import backtest_days, cadence, gbm, marts, stack
from ltv_pipeline.lib import champion as ch

MART_DEPS = [dg.AssetKey(k) for k in ("customer_btyd_summary", "customer_labels", "customer_features",
                                       "int_user_days_aggregated")]
LEADERBOARD_COLUMNS = ["model", "n_origins", "gini", "mae", "rmse", "wape", "spearman",
                       "top_decile_share", "decile_calibration_error", "total_ratio",
                       "p10_p90_coverage", "share_above_p90", "share_above_p90_top_decile"]


def leaderboard(table: pd.DataFrame) -> pd.DataFrame:
    """Mean metrics per model, by Gini: the candidates and baselines first, then the
    mapped_<name> rows (a candidate with its value map, at the origins after the first)."""
    wide = bt.pivot(table)
    if wide.empty:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    cols = [c for c in LEADERBOARD_COLUMNS if c in wide.columns]
    wide = wide.assign(_mapped=wide["model"].str.startswith(bt.MAPPED_PREFIX))
    return wide.sort_values(["_mapped", "gini"], ascending=[True, False],
                            ignore_index=True)[cols]


class BacktestConfig(dg.Config):
    expected_origins: int = Field(default=3, ge=0, description="Origins the plan should provide; "
                                  "fewer fitting ones are reported in the metadata.")
    max_rows: int = Field(default=gbm.MAX_ROWS, gt=0, description="LightGBM training rows at most.")
    seed: int = Field(default=0, description="LightGBM and sampling seed.")


@dg.asset(group_name=groups.EVALUATION, kinds={"lightgbm", "lifetimes"},
          deps=[dg.AssetKey("feast_registry"), *MART_DEPS])
def backtest(context: dg.AssetExecutionContext, config: BacktestConfig,
             warehouse_db: WarehouseResource) -> dg.MaterializeResult:
    """One row per (model, backtest origin, metric): every candidate trained only on data before
    the origin and scored on the following H days (or, when no planned origin fits the history,
    on the longest horizon that does: lib/backtest_days.py); the leaderboard is the mean over
    origins, plus error by model age and the recommended retraining cadence."""
    t0 = time.perf_counter()
    with warehouse_db.connect(read_only=True) as con:
        plan = marts.read_plan(con)
        origins = inputs.fitting_origins(plan)
        data, raw = inputs.read_origin_data(con, plan, origins)
        # Origins hold the training sample's customers (dbt's int_training_users): so do the
        # day-table models and the day-table origins.
        days = stack.read_days(con, plan.scoring_date, training_sample=True)
    notes, bt_horizon = [], plan.horizon_days
    if len(origins) < config.expected_origins:
        notes.append(f"{len(origins)} of {config.expected_origins} backtest origins fit inside the "
                     f"history (origin + {plan.horizon_days} days <= {plan.scoring_date}); "
                     "evaluating those")
    features, categorical = inputs.supervised_frames(data, raw, plan.horizon_days, settings.ltv_home(),
                                                     config.max_rows, config.seed)
    for d in data:
        d.days = days
    if not origins and len(days):
        bt_horizon, origins = backtest_days.fallback_plan(
            plan.scoring_date, plan.horizon_days, days["activity_date"].min().date(),
            max(config.expected_origins, 1))
        data = backtest_days.origin_data(days, origins, bt_horizon, plan.scoring_date) if origins else []
        notes.append(f"no planned origin fits: backtest at horizon {bt_horizon} days (the longest "
                     f"that fits {len(origins)} origins, lib/backtest_days.py) on {origins}; "
                     f"the champion is applied at {plan.horizon_days} days" if origins else
                     "no planned origin fits and the history is too short for day-table origins")
    cfg = bt.BacktestConfig(bt_horizon, features, categorical,
                            len(plan.train_cutoffs) or 3, config.max_rows, config.seed)
    result = bt.run_backtest(data, cfg)
    notes += result.notes
    ages = cadence.age_table(result.models, result.scored, bt_horizon)
    retrain = cadence.recommend(ages)
    newest = max(result.predictions) if result.predictions else None
    latest = result.models_at(newest) if newest else []
    final = bt.final_blend(result, [m for m in latest if m != bt.BLEND])
    maps, mapped = bt.value_maps(result, latest)
    maps = {m: {**vm, "horizon_days": bt_horizon} for m, vm in maps.items()}
    result.metrics = pd.concat([result.metrics, bt.mapped_metrics(result, mapped)],
                               ignore_index=True)  # leaderboard rows mapped_<name>, not candidates
    plotted = {m: v[newest] for m, v in mapped.items() if maps[m]["kept"] and newest in v}
    board = leaderboard(result.metrics)
    inputs.write_json(inputs.evaluation_dir(warehouse_db.ltv_home) / inputs.RESULTS_FILE, {
        "run_id": context.run.run_id, "scoring_date": plan.scoring_date,
        "horizon_days": plan.horizon_days, "backtest_horizon_days": bt_horizon,
        "origins": [o.isoformat() for o in origins], "model_age": ages.to_dict("records"),
        "retraining_cadence": retrain,
        "metrics": result.metrics.to_dict("records"), "leaderboard": board.to_dict("records"),
        "notes": notes, "blend_weights": result.blend_weights, "final_blend": final,
        "value_maps": maps, "gini_bootstrap": result.gini_bootstrap,
        "diagnostics": inputs.diagnostics(result, plotted),
        "total_ratio_bootstrap": result.ratio_bootstrap})
    for note in notes:
        context.log.info(note)
    return dg.MaterializeResult(metadata={
        "leaderboard": dg.MetadataValue.md(board.to_markdown(index=False, floatfmt=".4g")
                                           if len(board) else "no origin could be evaluated"),
        "origins": dg.MetadataValue.json([o.isoformat() for o in origins]),
        "n_origins": len(origins), "horizon_days": plan.horizon_days,
        "backtest_horizon_days": bt_horizon,
        "retraining_cadence_days": retrain["cadence_days"],
        "retraining_cadence": retrain["reason"],
        "error_by_model_age": dg.MetadataValue.md(inputs.age_plot(retrain)),
        "scoring_date": plan.scoring_date.isoformat(),
        "notes": dg.MetadataValue.json(notes), "final_blend_weights": dg.MetadataValue.json(final),
        "value_maps": dg.MetadataValue.md(inputs.value_map_table(maps)),
        "seconds": round(time.perf_counter() - t0, 1),
    })


class ChampionConfig(dg.Config):
    tolerance: float = Field(default=0.02, ge=0, description="Promotion gate: a challenger may be "
                             "this much (relative) worse than the current champion on gini or mae.")
    tie_tolerance: float = Field(default=ch.Rule.tie_tolerance, ge=0, description="Gini tie "
                                 "tolerance: the cap of the bootstrap tie (tie_z), and the tie "
                                 "itself for a backtest without bootstrap replicates.")
    tie_z: float = Field(default=ch.Rule.tie_z, ge=0, description="A candidate ties with the best "
                         "Gini when its shortfall is within tie_z bootstrap standard errors.")
    tie_floor: float = Field(default=ch.Rule.tie_floor, ge=0, description="A Gini shortfall up "
                             "to this always ties with the best (the bootstrap tie's floor).")
    rail_z: float = Field(default=ch.Rule.rail_z, ge=0, description="The total-ratio guard rail "
                          "fails a candidate only beyond rail_z bootstrap standard errors.")
    max_decile_calibration_error: float = Field(default=ch.Rule.max_decile_calibration_error, gt=0)


@dg.asset(group_name=groups.EVALUATION, kinds={"python"},
          deps=[backtest, dg.AssetKey("btyd_models"), dg.AssetKey("gbm_models"),
                dg.AssetKey("rfm_stack_model")])
def champion(context: dg.AssetExecutionContext, config: ChampionConfig,
             warehouse_db: WarehouseResource,
             model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    """The registry's champion pointer: the backtest's best registered model for the scoring
    date (rule in lib/champion.py), moved only when the promotion gate allows. A champion
    without a value map of its own is registered with the backtest's map of it when that map
    passed its check (lib/backtest.value_map_of), as mapped_<name>: same ranking, lower MAE."""
    with warehouse_db.connect(read_only=True) as con:
        plan = marts.read_plan(con)
    path = inputs.evaluation_dir(warehouse_db.ltv_home) / inputs.RESULTS_FILE
    res = json.loads(path.read_text()) if path.is_file() else {}
    if res.get("scoring_date") != plan.scoring_date.isoformat() or res.get("horizon_days") != plan.horizon_days:
        raise dg.Failure(f"{path} holds no backtest for scoring date {plan.scoring_date} and horizon "
                         f"{plan.horizon_days}: materialize the backtest asset first")
    registry = model_registry.get()
    registered = inputs.registered_for(registry, plan)
    table = pd.DataFrame(res["metrics"], columns=["model", "origin", "metric", "value"])
    final = bt.blend_from(res["final_blend"]) if res["final_blend"] else None
    blend_ok = final is not None and set(final.weights) <= set(registered)
    table = table[table["model"].isin(registered) | ((table["model"] == bt.BLEND) & blend_ok)]
    rule = ch.Rule(tie_tolerance=config.tie_tolerance, tie_z=config.tie_z,
                   tie_floor=config.tie_floor, rail_z=config.rail_z,
                   max_decile_calibration_error=config.max_decile_calibration_error)
    sel = ch.select_champion(table, rule, res.get("gini_bootstrap"), res.get("total_ratio_bootstrap"))
    vm = (res.get("value_maps") or {}).get(sel.champion)  # lib/backtest.value_map_of

    def at_scoring_date(version) -> np.ndarray:  # a summary model's forecasts at D, horizon H
        with warehouse_db.connect(read_only=True) as con:
            summary = marts.btyd_summary(con, [plan.scoring_date])
        return version.load().predict(summary, plan.horizon_days)["predicted_value"].to_numpy(float)

    try:
        version = inputs.champion_version(registry, sel, registered, res, plan.scoring_date,
                                          plan.horizon_days, at_scoring_date)
    except LookupError as e:
        raise dg.Failure(str(e)) from None
    decision, current = inputs.gate(registry, sel, config.tolerance)
    if decision.promote:
        registry.set_champion(version.name, version.version, f"{sel.reason}; {decision.reason}",
                              sel.metrics)
    record = {"run_id": context.run.run_id, "scoring_date": plan.scoring_date,
              "challenger": version.ref, "current": current, "selection": sel.reason,
              "default_rule": sel.default_rule, "promote": decision.promote,
              "reason": decision.reason, "numbers": decision.numbers, "metrics": sel.metrics,
              "value_map": vm}
    inputs.write_json(inputs.evaluation_dir(warehouse_db.ltv_home) / inputs.DECISION_FILE, record)
    now = registry.champion()
    diag = res.get("diagnostics") or {}  # the plots: a mapped champion's as mapped
    return dg.MaterializeResult(metadata={
        "champion": now.ref if now else None, "challenger": version.ref,
        "promoted": decision.promote, "decision": decision.reason, "selection": sel.reason,
        "default_rule": sel.default_rule, "numbers": dg.MetadataValue.json(decision.numbers),
        "value_map": inputs.value_map_note(sel.champion, vm, version),
        "candidates": dg.MetadataValue.md(sel.table.to_markdown(index=False, floatfmt=".4g")
                                          if len(sel.table) else "none"),
        **inputs.plot_metadata(diag, version.name if version.name in diag.get("models", {})
                               else sel.champion),
    })
