"""Reading what the backtest needs from the marts and Feast, and the results file the champion
asset reads (LTV_HOME/evaluation/backtest.json, written atomically by one asset, read by name)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ltv_pipeline.lib import (backtest, champion, cutoffs, feature_store, files, gbm, gbm_fit, marts,
                              plots, stack, training)
from ltv_pipeline.lib.jsonable import to_jsonable
from ltv_pipeline.lib.registry import ModelRegistry, ModelVersion

RESULTS_FILE, DECISION_FILE = "backtest.json", "champion_decision.json"


def evaluation_dir(ltv_home: str | Path) -> Path:
    return Path(ltv_home) / "evaluation"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    files.write_text_atomic(path, json.dumps(to_jsonable(payload)))


def fitting_origins(plan: marts.BuiltPlan) -> list[date]:
    """Origins whose label window ends by the scoring date (origin + H <= scoring date)."""
    return [o for o in plan.backtest_origins
            if cutoffs.label_observed_by(o, plan.horizon_days, plan.scoring_date)]


def origin_train_cutoffs(plan: marts.BuiltPlan, origin: date) -> tuple[date, ...]:
    """The newest cutoffs whose label windows end by the origin, as many as the final model uses."""
    n = len(plan.train_cutoffs) or cutoffs.DEFAULT_N_TRAIN_CUTOFFS
    return plan.train_cutoffs_before(origin)[-n:]


def read_origin_data(con: duckdb.DuckDBPyConnection, plan: marts.BuiltPlan,
                     origins: list[date]) -> tuple[list[backtest.OriginData], dict[date, Any]]:
    """Per origin: BTYD summary (+ revenue_total), complete labels, and the raw pieces for the
    supervised frames (filled in by supervised_frames)."""
    H, trains = plan.horizon_days, {o: origin_train_cutoffs(plan, o) for o in origins}
    days = sorted({*origins, *(c for t in trains.values() for c in t)})
    summaries = marts.btyd_summary(con, days)  # with revenue_total from customer_features
    labels = marts.labels(con, days, H)
    for f in (summaries, labels):
        f["cutoff_date"] = pd.to_datetime(f["cutoff_date"]).dt.date
    out = []
    for o in origins:
        s = summaries[summaries["cutoff_date"] == o].copy()
        s["revenue_total"] = s["revenue_total"].fillna(0.0)
        out.append(backtest.OriginData(o, s, labels[labels["cutoff_date"] == o]))
    return out, {"trains": trains, "summaries": summaries, "labels": labels}


def bounded_train_keys(data: list[backtest.OriginData], trains: dict, labels: pd.DataFrame,
                       train_days: list[date], max_rows: int, seed: int) -> pd.DataFrame:
    """The training (user_id, cutoff_date) keys some origin's LightGBM family will train on:
    per origin, gbm_fit.bound_keys of its own training cutoffs' keys (the rule train_family
    applies), united over the origins, so features are fetched for those rows only."""
    keys = labels.loc[labels["cutoff_date"].isin(train_days), ["user_id", "cutoff_date"]]
    keep = np.zeros(len(keys), dtype=bool)
    for o in data:
        mine = keys[keys["cutoff_date"].isin(trains[o.origin]).to_numpy()]
        kept, _ = gbm_fit.bound_keys(mine, max_rows, seed)
        keep[keys.index.get_indexer(kept.index)] = True
    return keys[keep]


def supervised_frames(data: list[backtest.OriginData], raw: dict[str, Any], horizon_days: int,
                      ltv_home: Path, max_rows: int = gbm.MAX_ROWS,
                      seed: int = 0) -> tuple[list[str], list[str]]:
    """Feast point-in-time features (one retrieval for every origin, training rows bounded as
    each origin's LightGBM family bounds them) joined with per-cutoff BTYD outputs; sets each
    origin's train_frame and score_frame. Returns (features, categorical)."""
    trains, summaries, labels = raw["trains"], raw["summaries"], raw["labels"]
    train_days = sorted({c for o in data for c in trains[o.origin]
                         if len(trains[o.origin]) >= training.MIN_TRAIN_CUTOFFS})
    if not train_days:
        return [], []
    train_keys = bounded_train_keys(data, trains, labels.reset_index(drop=True), train_days,
                                    max_rows, seed)
    origin_keys = pd.concat([o.summary[["user_id", "cutoff_date"]] for o in data])
    keys = pd.concat([train_keys[["user_id", "cutoff_date"]], origin_keys], ignore_index=True)
    keys = keys.drop_duplicates(ignore_index=True)
    store = feature_store.feature_store(ltv_home)
    feats = feature_store.training_frame(store, keys)
    used = summaries[summaries["cutoff_date"].isin({*train_days, *(o.origin for o in data)})]
    frame = training.model_frame(feats, training.btyd_features(used, horizon_days))
    plan_fs = feature_store.service_plan(store, feature_store.LTV_MODEL_SERVICE)
    features, categorical = training.feature_columns(frame, [n for n in plan_fs.names
                                                             if n not in plan_fs.markers])
    lab = labels[["user_id", "cutoff_date", "value"]]
    for o in data:
        mine = frame["cutoff_date"].isin(trains[o.origin])
        o.train_frame = frame[mine].merge(lab, on=["user_id", "cutoff_date"], how="inner")
        o.score_frame = frame[frame["cutoff_date"] == o.origin]
    return features, categorical


def diagnostics(result: backtest.BacktestResult,
                mapped: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Decile calibration, gains curve and error by customer age of every model at the latest
    origin, and of the models in `mapped` (model -> its mapped forecast at the latest origin,
    backtest.value_maps) as MAPPED_PREFIX + name, as JSON-ready records."""
    if not result.predictions:
        return {}
    latest = max(result.predictions)
    pred = result.predictions[latest].assign(
        **{backtest.MAPPED_PREFIX + m: v for m, v in (mapped or {}).items()})
    models = backtest.candidates(pred)
    age = backtest.error_by_age(pred, models)
    return {"origin": latest, "error_by_age": age.to_dict("records"), "models": {
        m: {"deciles": backtest.decile_calibration(pred, m).to_dict("records"),
            "gains": backtest.gains(pred, m).to_dict("records")} for m in models}}


def registered_for(registry: ModelRegistry, plan: marts.BuiltPlan) -> dict[str, ModelVersion]:
    """Latest registered version of each candidate name, kept only when it was trained for this
    scoring date (BTYD: fitted at it; LightGBM: on this plan's training cutoffs)."""
    trains = {c.isoformat() for c in plan.train_cutoffs}
    out = {}
    names = [*backtest.BTYD_CANDIDATES, stack.NAME, *(f"gbm_{m}" for m in backtest.GBM_POINT)]
    for name in (n for n in names if n in registry.names()):
        v = registry.version(name)
        cut = v.manifest.get("training_cutoffs") or []
        ok = (cut == [plan.scoring_date.isoformat()] if v.family in ("btyd", stack.NAME)
              else bool(cut) and set(cut) <= trains)
        if ok:
            out[name] = v
    return out


def champion_version(registry: ModelRegistry, sel: champion.Selection,
                     registered: dict[str, ModelVersion], res: dict[str, Any],
                     scoring_date: date, horizon_days: int,
                     at_scoring_date: Callable[[ModelVersion], np.ndarray] | None = None) -> ModelVersion:
    """The registry version the selection names: the blend registered from the backtest's final
    blend; a candidate with a kept value map (backtest.json's value_maps) registered as
    MAPPED_PREFIX + name, a one-member blend of its registered version; else its version.
    A map fitted at another horizon than horizon_days (a backtest at a shorter one) has its k
    in that horizon's units: it is refitted for a BTYD champion from its own forecasts at the
    scoring date (at_scoring_date: level x their total kept), and not applied to others.
    Raises LookupError when the champion has no version trained for the scoring date."""
    cutoffs = [scoring_date.isoformat()]
    if sel.champion == backtest.BLEND:
        final = backtest.blend_from(res["final_blend"])
        blend = replace(final, refs={m: registered[m].ref for m in final.weights})
        return registry.register(blend, "blend", backtest.BLEND, {"weights": blend.weights},
                                 cutoffs, None, "", sel.metrics)
    if sel.champion not in registered:
        raise LookupError(f"champion {sel.champion} has no registered version for {scoring_date}; "
                          f"registered: {sorted(registered)}")
    version = registered[sel.champion]
    vm = (res.get("value_maps") or {}).get(sel.champion)
    if not vm or not vm["kept"]:
        return version
    vm = dict(vm)
    if vm.get("horizon_days", horizon_days) != horizon_days:
        if sel.champion not in backtest.BTYD_CANDIDATES or at_scoring_date is None:
            return version
        s = np.clip(at_scoring_date(version), 0.0, None)
        powered = s ** float(vm["gamma"])
        if float(powered.sum()) <= 0:
            return version
        vm["k"] = stack.map_k(powered, float(vm["level"]), float(s.sum()))
    return registry.register(backtest.mapped(sel.champion, vm, version.ref), "value_map",
                             backtest.MAPPED_PREFIX + sel.champion,
                             {k: vm.get(k) for k in ("gamma", "level", "k", "fitted_at", "horizon_days")},
                             cutoffs, None, "", sel.metrics)


def gate(registry: ModelRegistry, sel: champion.Selection,
         tolerance: float) -> tuple[champion.Decision, str | None]:
    """The promotion gate against the current champion, measured on this backtest when its
    model is in it, else on the metrics recorded when it was promoted."""
    current = registry.champion_record()
    if current is None:
        return champion.promote(None, sel.metrics, tolerance), None
    if sel.default_rule:
        return champion.Decision(True, "no backtest evidence to gate on: the default rule's pick "
                                 "for this scoring date replaces the current champion", {}), current["ref"]
    rows = sel.table.set_index("model") if len(sel.table) else pd.DataFrame()
    name = current["name"].removeprefix(backtest.MAPPED_PREFIX)  # its backtest rows: unmapped
    if name in rows.index:
        cur = {k: float(v) for k, v in rows.loc[name].items()
               if k in ("gini", "mae") and pd.notna(v)}
    else:
        cur = current.get("metrics") or {}
    decision = champion.promote(cur or None, sel.metrics, tolerance)
    if name not in rows.index and cur:
        decision.reason += " (current champion not in this backtest: compared with its recorded metrics)"
    return decision, current["ref"]


def plot_metadata(diag: dict[str, Any], model: str) -> dict[str, Any]:
    """Decile calibration and gains curve of `model`, error by customer age of it and the
    BG/NBD reference, at the latest origin, as Markdown images."""
    import dagster as dg

    m = (diag.get("models") or {}).get(model)
    if not m:
        return {"plots": "no backtest origin: no plots"}
    deciles, gains = pd.DataFrame(m["deciles"]), pd.DataFrame(m["gains"])
    age = pd.DataFrame(diag["error_by_age"])
    ys = list(dict.fromkeys([model, "bgnbd_gg"]))
    origin = diag["origin"]
    return {
        "decile_calibration": dg.MetadataValue.md(plots.lines(
            deciles, "mean_predicted", ["mean_actual"],
            f"{model} at {origin}: actual vs predicted by decile", "mean actual", diagonal=True)),
        "gains_curve": dg.MetadataValue.md(plots.lines(
            gains, "share_customers", [model, "perfect", "random"],
            f"{model} at {origin}: gains", "share of value")),
        "error_by_customer_age": dg.MetadataValue.md(plots.lines(
            age, "tenure_days", [y for y in ys if y in age], f"MAE by tenure at {origin}", "MAE")),
    }


def age_plot(retrain: dict[str, Any]) -> str:
    """MAE of an aged model over a fresh one's, by model age (days), per model, as Markdown."""
    ages = pd.DataFrame(retrain.get("by_age") or [])
    if ages.empty:
        return retrain["reason"]
    wide = ages.pivot_table(index="age_days", columns="model", values="mae_ratio").reset_index()
    return plots.lines(wide, "age_days", [c for c in wide.columns if c != "age_days"],
                       "MAE of an aged model / a fresh one", "MAE ratio")


def value_map_table(maps: dict[str, dict[str, Any]]) -> str:
    """The backtest's value maps as Markdown: per candidate its map and the check's mean MAE
    at the later origins, raw and mapped (lib/backtest.value_map_of)."""
    if not maps:
        return "no value maps (a candidate needs forecasts at two backtest origins)"
    rows = pd.DataFrame([{"model": m, "gamma": v["gamma"], "level": v["level"], "k": v["k"],
                          "check_mae": v["mae"], "check_mae_mapped": v["mae_mapped"],
                          "kept": v["kept"]} for m, v in sorted(maps.items())])
    return rows.to_markdown(index=False, floatfmt=".4g")


def value_map_note(champion: str, vm: dict[str, Any] | None, version: ModelVersion) -> str:
    """What the champion asset did with the champion's value map (champion_version), in words."""
    if champion in backtest.OWN_MAP:
        return f"{champion} carries its own value map"
    if not vm:
        return "none (no map: fewer than two backtest origins)"
    check = f"checked at the later origins: MAE {vm['mae']:.4g} raw, {vm['mae_mapped']:.4g} mapped"
    if version.name.startswith(backtest.MAPPED_PREFIX):
        p = version.manifest.get("params") or {}
        return (f"applied (v = k s^gamma): gamma {p.get('gamma')}, level {p.get('level')}, "
                f"k {p.get('k', 0):.4g}, fitted at {p.get('fitted_at')}; {check}")
    if not vm["kept"]:
        return f"not applied, no lower MAE: {check}"
    return (f"not applied: fitted at {vm.get('horizon_days')} days (a shorter backtest horizon) and "
            f"only a BTYD champion's k is refitted at the scoring date; {check}")
