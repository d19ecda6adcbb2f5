"""Training: the BTYD family, the LightGBM family and a cohort forecast, fitted as of the
scoring date of the last dbt build and stored in the model registry."""

import time
from datetime import timedelta

import dagster as dg
import pandas as pd
from pydantic import Field

from ltv_pipeline import groups, settings
from ltv_pipeline.defs.quality.factory import result_path
from ltv_pipeline.defs.resources import ModelRegistryResource, WarehouseResource
from ltv_pipeline.lib import feature_store, gbm, gbm_fit, marts, plots, quality, stack, training
from ltv_pipeline.lib.quality_suites import training_window_suite
from ltv_pipeline.lib.registry import fingerprint_frame

BTYD_SUMMARY, LABELS, COHORTS = (dg.AssetKey(k) for k in
                                 ("customer_btyd_summary", "customer_labels", "cohort_revenue"))


def _md_table(frame: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.to_markdown(index=False, floatfmt=".4g"))


def refuse_leaky_training_cutoffs(context: dg.AssetExecutionContext, plan: marts.BuiltPlan,
                                  ltv_home: str) -> None:
    """The time rule for a training set (GX suite training_window): every training cutoff's
    label window [D + 1 day, D + 1 day + H) ends by the scoring date + 1 day. Raises before
    anything is trained or registered; the GX result is saved under LTV_HOME/quality."""
    cutoffs = pd.DataFrame({"cutoff_date": pd.to_datetime(list(plan.train_cutoffs)),
                            "horizon_days": plan.horizon_days})
    result = quality.run_suite(cutoffs, training_window_suite(plan.scoring_date))
    if not result.success:
        path = quality.save_result(result, result_path(ltv_home, "gbm_models_training_window",
                                                       context.run.run_id))
        rows = [r for f in result.failed for r in f.sample if isinstance(r, dict)]
        named = ", ".join(str(r.get("cutoff_date"))[:10] for r in rows) or "see the GX result"
        raise dg.Failure(
            description=f"refusing to train: the label window ({plan.horizon_days} days) of "
                        f"training cutoff(s) {named} passes the scoring date {plan.scoring_date}; "
                        f"{result.summary()}",
            metadata={"failures": dg.MetadataValue.md(result.to_markdown()),
                      "gx_result_path": dg.MetadataValue.path(str(path))},
        )


@dg.asset(group_name=groups.TRAINING, kinds={"lifetimes"}, deps=[BTYD_SUMMARY])
def btyd_models(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    """BG/NBD, Pareto/NBD and modified BG/NBD purchase models, each with Gamma-Gamma spend, fitted
    on customer_btyd_summary at the scoring date (one model per family, day units)."""
    with warehouse_db.connect(read_only=True) as con:
        plan = marts.read_plan(con)
        summary = marts.btyd_summary(con, [plan.scoring_date])
    registry, fingerprint = model_registry.get(), fingerprint_frame(summary)
    rows, refs = [], {}
    for name, model in training.fit_btyd_models(summary, plan.scoring_date).items():
        info = model.describe()
        version = registry.register(model, "btyd", name, info["params"],
                                    [plan.scoring_date.isoformat()], "btyd_v1", fingerprint, {})
        refs[name] = version.ref
        rows.append({"model": name, **info["params"], "penalizer": info["penalizer"],
                     "fallback": info["fallback"], "fit_s": info["fit_seconds"]})
        context.log.info(f"{version.ref}: {'; '.join(info['notes'])}")
    return dg.MaterializeResult(metadata={
        "scoring_date": plan.scoring_date.isoformat(), "customers": len(summary),
        "registered": dg.MetadataValue.json(refs), "parameters": _md_table(pd.DataFrame(rows)),
    })


class GBMConfig(dg.Config):
    max_rows: int = Field(default=gbm.MAX_ROWS, gt=0,
                          description="Training rows at most; older cutoffs are sampled beyond it.")
    seed: int = Field(default=0, description="LightGBM and sampling seed.")


@dg.asset(group_name=groups.TRAINING, kinds={"lightgbm"},
          deps=[dg.AssetKey("feast_registry"), LABELS, BTYD_SUMMARY])
def gbm_models(context: dg.AssetExecutionContext, config: GBMConfig,
               warehouse_db: WarehouseResource,
               model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    """The LightGBM family (tweedie, l2, l1, two-part, p10/p90 quantiles, hybrid with BTYD
    inputs), trained on Feast point-in-time features stacked over the training cutoffs, whose
    label windows all end by the scoring date; the last training cutoff is the early-stopping
    validation set."""
    with warehouse_db.connect(read_only=True) as con:
        plan = marts.read_plan(con)
        labels = marts.labels(con, plan.train_cutoffs, plan.horizon_days)
        summaries = marts.btyd_summary(con, plan.train_cutoffs)
    refuse_leaky_training_cutoffs(context, plan, warehouse_db.ltv_home)
    note = training.supervised_note(plan.train_cutoffs, len(labels))
    if note:
        context.log.warning(note)
        return dg.MaterializeResult(metadata={"note": note, "trained": False})
    t0 = time.perf_counter()
    labels, bounded = gbm_fit.bound_keys(labels, config.max_rows, config.seed)  # before retrieval
    for line in bounded:
        context.log.info(line)
    store = feature_store.feature_store(settings.ltv_home())
    feats = feature_store.training_frame(store, labels[["user_id", "cutoff_date"]])
    frame = training.model_frame(feats, training.btyd_features(summaries, plan.horizon_days), labels)
    plan_fs = feature_store.service_plan(store, feature_store.LTV_MODEL_SERVICE)
    service = [n for n in plan_fs.names if n not in plan_fs.markers]
    features, categorical = training.feature_columns(frame, service)
    family = gbm.train_family(frame, features, categorical, hybrid_features=training.HYBRID_FEATURES,
                              max_rows=config.max_rows, seed=config.seed)
    seconds = time.perf_counter() - t0
    registry, fingerprint = model_registry.get(), fingerprint_frame(frame)
    refs = {}
    for member, model in family.items():
        summary = model.summary()
        refs[member] = registry.register(
            model, "lightgbm", f"gbm_{member}", summary.get("params", {}),
            summary.get("training_cutoffs", []), feature_store.LTV_MODEL_SERVICE, fingerprint, {},
        ).ref
    tweedie = family.get("tweedie") or next(iter(family.values()))
    importance = tweedie.importance().groupby("feature")["gain"].sum().nlargest(20)
    return dg.MaterializeResult(metadata={
        "trained": True, "training_rows": len(frame), "training_cutoffs": len(plan.train_cutoffs),
        "positive_label_share": round(float((frame["value"] > 0).mean()), 4),
        "seconds": round(seconds, 1), "registered": dg.MetadataValue.json(refs),
        "best_iterations": dg.MetadataValue.json({m: md.best_iteration for m, md in family.items()}),
        "notes": dg.MetadataValue.json(sorted({n for md in family.values() for n in md.notes})),
        "feature_importance": dg.MetadataValue.md(
            plots.barh(importance, "tweedie: top features by gain", "gain")),
    })


@dg.asset(group_name=groups.TRAINING, kinds={"lightgbm", "lifetimes"},
          deps=[dg.AssetKey("int_user_days_aggregated"), BTYD_SUMMARY])
def rfm_stack_model(context: dg.AssetExecutionContext, config: GBMConfig,
                    warehouse_db: WarehouseResource,
                    model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    """rfm_stack (lib/stack.py): LightGBM boosted from the BTYD forecast on RFM + BTYD features,
    trained on the day table's history up to the scoring date (internal cutoffs whose label
    windows end by it; the training sample's customers, dbt's int_training_users), one model
    per scoring date; absent, with the reason, when the history is too short."""
    with warehouse_db.connect(read_only=True) as con:
        plan = marts.read_plan(con)
        days = stack.read_days(con, plan.scoring_date)
        sample = stack.training_users(con)
    t0 = time.perf_counter()
    try:
        model = stack.train_stack(days, plan.scoring_date, plan.horizon_days,
                                  stack.StackConfig(max_rows=config.max_rows, seed=config.seed),
                                  train_users=sample)
    except stack.StackUnavailable as exc:
        context.log.warning(str(exc))
        return dg.MaterializeResult(metadata={"trained": False, "note": str(exc)})
    info = model.describe()
    version = model_registry.get().register(
        model, stack.NAME, stack.NAME, {k: info[k] for k in ("gamma", "k", "train_horizon_days")},
        [plan.scoring_date.isoformat()], "btyd_v1", fingerprint_frame(days), {})
    return dg.MaterializeResult(metadata={
        "trained": True, "registered": version.ref, "seconds": round(time.perf_counter() - t0, 1),
        "train_horizon_days": model.train_horizon_days, "horizon_days": plan.horizon_days,
        "internal_cutoffs": dg.MetadataValue.json(model.training_cutoffs),
        "notes": dg.MetadataValue.json(model.notes)})


@dg.asset(group_name=groups.TRAINING, kinds={"statsmodels"}, deps=[COHORTS])
def cohort_forecast(context: dg.AssetExecutionContext,
                    warehouse_db: WarehouseResource) -> dg.MaterializeResult:
    """Monthly revenue per signup cohort, forecast over the horizon with damped-trend
    exponential smoothing: for cohort-level planning, not a per-customer champion candidate."""
    with warehouse_db.connect(read_only=True) as con:
        plan = marts.read_plan(con)
        revenue = marts.cohort_revenue(con, plan.scoring_date + timedelta(days=1))
    months = max(1, round(plan.horizon_days / 30.4))
    result = training.cohort_forecast(revenue, months)
    table = result.table
    totals = table.groupby(["month", "kind"], as_index=False)["revenue"].sum()
    wide = totals.pivot(index="month", columns="kind", values="revenue").reset_index().tail(18)
    return dg.MaterializeResult(metadata={
        "cohorts": int(table["cohort_month"].nunique()) if len(table) else 0,
        "months_ahead": months,
        "forecast_revenue": round(float(table.loc[table["kind"] == "forecast", "revenue"].sum()), 2),
        "revenue_by_month": dg.MetadataValue.md(plots.lines(
            wide.fillna(0.0), "month", [c for c in ("actual", "forecast") if c in wide],
            "all cohorts: monthly revenue", "revenue")),
        "notes": dg.MetadataValue.json(result.notes[:20]),
    })
