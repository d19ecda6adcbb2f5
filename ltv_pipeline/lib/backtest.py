"""Rolling-origin backtests of every candidate model (pure: no Dagster, no I/O).

At each origin O (horizon H) a candidate is trained only on what was known at O and scored on
the customers with history at O against their realised value in [O + 1 day, O + 1 day + H):
  - BTYD (bgnbd_gg, pareto_gg, mbgnbd_gg): fitted on the BTYD summary at O (history < O + 1).
  - LightGBM members (gbm_tweedie, gbm_l2, gbm_l1, gbm_two_part, gbm_hybrid): trained on the
    supervised frame stacked over training cutoffs C with C + H <= O (their label windows end by
    O), the newest `max_train_cutoffs` of them, exactly as the final model is trained; rows of
    any later cutoff are dropped here whatever the caller passes. p10/p90 of the quantile
    members attach to every GBM point forecast (interval coverage).
  - rfm_stack (lib/stack.py): LightGBM boosted from the BTYD forecast on RFM + BTYD features,
    trained on the day table's rows <= O only (train_stack filters them whatever is passed);
    its own p10/p90 (rfm_stack_p10 / rfm_stack_p90 columns) give its interval coverage.
  - historical_rate (baseline): each customer's past net revenue per day of tenure times H,
    rate = revenue_total / max(T + 1, MIN_TENURE_DAYS) (a customer first seen yesterday is not
    extrapolated from one day).
  - blend: non-negative least squares weights over the point candidates, fitted on the stacked
    out-of-sample predictions of EARLIER origins only (never the origin it is scored on) and
    scaled to match their actual total; absent at the first origin.
  - value maps (value_maps): a candidate without a value map of its own (BTYD and the LightGBM
    members; rfm_stack and the blend have theirs) gets lib/stack.fit_value_map's v = k s^gamma
    fitted on its newest origin's out-of-sample forecasts (levels stack.LEVELS, the level's
    total-ratio band judged on its mean ratio over the origins), kept only when, fitted at each
    earlier origin, it lowered the MAE at the next one on average. It leaves the ranking
    (Gini) as it is; the champion asset applies the champion's kept map (registered as
    MAPPED_PREFIX + name).
Metrics per (model, origin) come from lib/metrics.evaluate(on_undefined="omit"); per origin,
lib/metrics.gini_bootstrap gives every candidate's Gini on the same bootstrap replicates of its
customers (gini_bootstrap), the noise lib/champion.py's tie rule compares models against, and
metrics.total_ratio_bootstrap its total ratio on them (ratio_bootstrap), the noise its
calibration guard rail allows for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from ltv_pipeline.lib import gbm, metrics, stack, training

BTYD_CANDIDATES = tuple(f"{m}_gg" for m in training.BTYD_COUNT_MODELS)
GBM_POINT = ("tweedie", "l2", "l1", "two_part", "hybrid")
BASELINE, BLEND = "historical_rate", "blend"
OWN_MAP = (stack.NAME, BLEND)  # candidates whose forecast carries a value map of its own
MAPPED_PREFIX = "mapped_"  # registry name of a champion registered with its value map
MIN_TENURE_DAYS = 30
TENURE_BUCKETS = (0, 30, 90, 180, 365, 730, np.inf)


@dataclass
class OriginData:
    """What one origin's backtest needs. summary: user_id, frequency, recency, T,
    monetary_value, revenue_total at the origin. labels: user_id, value (complete windows).
    train_frame: training.model_frame rows (features, HYBRID_FEATURES, value) over cutoffs
    before the origin; score_frame: the same columns without value at the origin."""

    origin: date
    summary: pd.DataFrame
    labels: pd.DataFrame
    train_frame: pd.DataFrame | None = None
    score_frame: pd.DataFrame | None = None
    days: pd.DataFrame | None = None  # stack.DAY_COLUMNS rows (any span; rows > origin unused)


@dataclass
class BacktestConfig:
    horizon_days: int
    features: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    max_train_cutoffs: int = 3
    max_rows: int = gbm.MAX_ROWS
    seed: int = 0
    btyd_cache: dict = field(default_factory=dict)  # stack's BTYD fits per internal cutoff


@dataclass
class BacktestResult:
    metrics: pd.DataFrame  # model, origin, metric, value
    predictions: dict[str, pd.DataFrame]  # origin ISO -> user_id, T, actual, <model>..., p10, p90
    notes: list[str]
    blend_weights: dict[str, dict[str, float]]  # origin ISO -> member -> weight
    models: dict[str, dict[str, object]] = field(default_factory=dict)  # origin -> BTYD, rfm_stack
    scored: dict[str, pd.DataFrame] = field(default_factory=dict)  # origin -> summary + actual
    gini_bootstrap: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # origin -> model -> replicates
    ratio_bootstrap: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # total_ratio, same form

    def pivot(self) -> pd.DataFrame:
        return pivot(self.metrics)

    def models_at(self, origin: str) -> list[str]:
        return sorted(self.metrics.loc[self.metrics["origin"] == origin, "model"].unique())


@dataclass
class Blend:
    """A registered blend: value = k * (sum of weights[m] * member m's forecast)^gamma; refs
    name the registry versions of the members it was built from. gamma, k: the value map
    (lib/stack.fit_value_map) fitted with the weights on the same earlier-origin rows; 1, 1
    is the plain linear blend."""

    weights: dict[str, float]
    refs: dict[str, str] = field(default_factory=dict)
    gamma: float = 1.0
    k: float = 1.0

    def combine(self, forecasts: dict[str, np.ndarray]) -> np.ndarray:
        missing = sorted(set(self.weights) - set(forecasts))
        if missing:
            raise ValueError(f"blend needs forecasts of {missing}; got {sorted(forecasts)}")
        linear = sum(w * np.asarray(forecasts[m], dtype=float) for m, w in self.weights.items())
        gamma, k = getattr(self, "gamma", 1.0), getattr(self, "k", 1.0)  # versions pickled before
        return linear if gamma == 1.0 and k == 1.0 else k * np.clip(linear, 0.0, None) ** gamma


def training_rows(frame: pd.DataFrame, origin: date, horizon_days: int,
                  max_train_cutoffs: int) -> pd.DataFrame:
    """Rows of cutoffs C with C + H <= origin, the newest max_train_cutoffs cutoffs only."""
    cut = pd.to_datetime(frame["cutoff_date"]).dt.date
    allowed = sorted(c for c in cut.unique() if (origin - c).days >= horizon_days)
    return frame[cut.isin(allowed[-max_train_cutoffs:]).to_numpy()]


def historical_rate(summary: pd.DataFrame, horizon_days: int) -> np.ndarray:
    tenure = np.maximum(summary["T"].to_numpy(float) + 1.0, MIN_TENURE_DAYS)
    revenue = np.clip(summary["revenue_total"].to_numpy(float), 0.0, None)
    return revenue / tenure * horizon_days


def _gbm_predictions(data: OriginData, cfg: BacktestConfig, notes: list[str]) -> pd.DataFrame | None:
    tag = data.origin.isoformat()
    if data.train_frame is None or data.score_frame is None or not cfg.features:
        notes.append(f"{tag}: no supervised frames: LightGBM candidates absent")
        return None
    frame = training_rows(data.train_frame, data.origin, cfg.horizon_days, cfg.max_train_cutoffs)
    cutoffs = sorted(pd.to_datetime(frame["cutoff_date"]).dt.date.unique())
    why = training.supervised_note(cutoffs, len(frame))
    if why:
        notes.append(f"{tag}: LightGBM candidates absent: {why}")
        return None
    hybrid = [f for f in training.HYBRID_FEATURES if f in frame.columns]
    family = gbm.train_family(frame, cfg.features, cfg.categorical, hybrid_features=hybrid or None,
                              max_rows=cfg.max_rows, seed=cfg.seed)
    pred = gbm.predict(family, data.score_frame, id_cols=("user_id",))
    out = pd.DataFrame({"user_id": pred["user_id"].astype(str),
                        "p10": pred["p10"], "p90": pred["p90"]})
    for member in GBM_POINT:
        if member in family:
            out[f"gbm_{member}"] = pred[f"pred_{member}"].to_numpy()
    return out


class OriginPredictions(NamedTuple):
    pred: pd.DataFrame  # user_id, T, actual, one column per candidate (p10/p90 of the GBM family)
    notes: list[str]
    models: dict[str, object]  # the BTYD models and rfm_stack fitted at the origin
    scored: pd.DataFrame  # their customers' summary rows plus actual (lib/cadence's model ages)


def origin_predictions(data: OriginData, cfg: BacktestConfig) -> OriginPredictions:
    """One row per customer with history at the origin and a complete label: user_id, T,
    actual and one column per candidate (p10/p90 when the GBM family trained). The fitted
    models and scored rows travel beside the frame, not in its attrs: pandas deep-copies a
    frame's attrs into every Series taken from it and every result computed from those (at 1M
    customers the backtest spent minutes copying fitted models inside clip())."""
    notes: list[str] = []
    summary = data.summary.assign(user_id=data.summary["user_id"].astype(str))
    labels = data.labels.assign(user_id=data.labels["user_id"].astype(str))
    base = summary.merge(labels[["user_id", "value"]], on="user_id", how="inner", validate="one_to_one")
    if base.empty:
        raise ValueError(f"origin {data.origin}: no customer has both history and a complete label")
    out = pd.DataFrame({"user_id": base["user_id"], "T": base["T"].astype(float),
                        "actual": base["value"].astype(float)})
    fitted: dict[str, object] = {}
    for name, model in training.fit_btyd_models(summary, data.origin).items():
        out[name] = model.predict(base, cfg.horizon_days)["predicted_value"].to_numpy()
        fitted[name] = model
    out[BASELINE] = historical_rate(base, cfg.horizon_days)
    if data.days is not None:
        try:
            model = stack.train_stack(data.days, data.origin, cfg.horizon_days,
                                      stack.StackConfig(max_rows=cfg.max_rows, seed=cfg.seed),
                                      cfg.btyd_cache)
        except stack.StackUnavailable as exc:
            notes.append(f"{data.origin}: {exc}")
        else:
            sp = model.predict(base, cfg.horizon_days)
            out[stack.NAME] = sp["predicted_value"].to_numpy()
            out[f"{stack.NAME}_p10"], out[f"{stack.NAME}_p90"] = sp["p10"].to_numpy(), sp["p90"].to_numpy()
            fitted[stack.NAME] = model
    sup = _gbm_predictions(data, cfg, notes)
    if sup is not None:
        out = out.merge(sup, on="user_id", how="left", validate="one_to_one")
        missing = out["gbm_tweedie"].isna() if "gbm_tweedie" in out else pd.Series(False)
        if missing.any():
            raise ValueError(f"origin {data.origin}: {int(missing.sum())} customer(s) lack "
                             "supervised features at the origin, e.g. "
                             f"{out.loc[missing, 'user_id'].head(3).tolist()}")
    scored = base[["user_id", "frequency", "recency", "T", "monetary_value", "revenue_total"]].assign(
        actual=base["value"].astype(float).to_numpy())
    return OriginPredictions(out.reset_index(drop=True), notes, fitted, scored)


def candidates(pred: pd.DataFrame) -> list[str]:
    return [c for c in pred.columns if c not in ("user_id", "T", "actual")
            and not c.endswith(("p10", "p90"))]


def interval_of(pred: pd.DataFrame, model: str) -> dict[str, pd.Series]:
    """The model's p10/p90 columns when it has a complete interval: its own
    (<model>_p10/_p90), else the GBM quantile members' for gbm_* models; {} otherwise."""
    for lo, hi in ((f"{model}_p10", f"{model}_p90"),) + ((("p10", "p90"),) if model.startswith("gbm_") else ()):
        if lo in pred and hi in pred and pred[lo].notna().all() and pred[hi].notna().all():
            return {"p10": pred[lo], "p90": pred[hi]}
    return {}


def fit_blend(stacked: pd.DataFrame, members: list[str]) -> dict[str, float]:
    """NNLS weights of members' forecasts against actual over the stacked rows, then scaled
    so the blend's total equals the actual total there (least squares on heavy-tailed values
    shrinks forecasts; the scale keeps the relative weights and restores the totals)."""
    A, y = stacked[members].to_numpy(float), stacked["actual"].to_numpy(float)
    w, _ = nnls(A, y)
    total = float((A @ w).sum())
    if total > 0:
        w = w * float(y.sum()) / total
    return {m: float(x) for m, x in zip(members, w) if x > 0}


def fit_blend_map(stacked: pd.DataFrame, weights: dict[str, float]) -> tuple[float, float]:
    """The blend's value map (gamma, k) on the rows its weights were fitted on."""
    linear = Blend(weights).combine({m: stacked[m] for m in weights})
    gamma, _, k, _ = stack.fit_value_map(stacked["actual"].to_numpy(float), linear)
    return gamma, k


def blend_plan(history: list[pd.DataFrame], available: list[str]) -> tuple[list[str], list[pd.DataFrame]]:
    """(members, frames to fit on) from earlier origins' predictions: every available point
    candidate over the earlier origins that have all of them; else the candidates common to
    every earlier origin over all of them."""
    point = [m for m in available if m not in (BASELINE, BLEND)]
    full = [h for h in history if set(point) <= set(h.columns)]
    if full:
        return point, full
    common = [m for m in point if all(m in h.columns for h in history)]
    return (common, history) if common and history else ([], [])


def evaluate_origin(pred: pd.DataFrame, origin: str) -> pd.DataFrame:
    rows = []
    for model in candidates(pred):
        kw = interval_of(pred, model)
        for metric, value in metrics.evaluate(pred["actual"], pred[model], **kw,
                                              on_undefined="omit").items():
            rows.append({"model": model, "origin": origin, "metric": metric, "value": value})
    return pd.DataFrame(rows, columns=["model", "origin", "metric", "value"])


def run_backtest(origins: list[OriginData], cfg: BacktestConfig) -> BacktestResult:
    """Every origin in date order; the blend at an origin is fitted on earlier origins only."""
    preds, notes, weights, tables, history, models, scored, boot = {}, [], {}, [], [], {}, {}, {}
    ratio_boot: dict[str, dict[str, list[float]]] = {}
    for data in sorted(origins, key=lambda d: d.origin):
        tag = data.origin.isoformat()
        pred, n, fitted, scored_rows = origin_predictions(data, cfg)
        if len(pred) < 2 or not (pred["actual"] > 0).any():
            # nothing to rank (Gini, calibration and the ratio are undefined): not evidence
            notes.append(f"{tag}: skipped: {len(pred)} customer(s), {int((pred['actual'] > 0).sum())} "
                         "with value in the label window: nothing to rank")
            continue
        models[tag], scored[tag] = fitted, scored_rows
        notes += n
        members, fit_on = blend_plan(history, candidates(pred))
        history.append(pred[["actual", *candidates(pred)]])
        if members:
            rows = pd.concat([f[["actual", *members]] for f in fit_on])
            w = fit_blend(rows, members)
            if w:
                gamma, k = fit_blend_map(rows, w)
                pred[BLEND] = Blend(w, gamma=gamma, k=k).combine({m: pred[m] for m in w})
                weights[tag] = {**w, "_gamma": gamma, "_k": k}
        else:
            notes.append(f"{tag}: no blend (no earlier origin to fit its weights on)")
        preds[tag] = pred
        tables.append(evaluate_origin(pred, tag))
        boot[tag] = bootstrap_origin(pred, cfg.seed)
        ratio_boot[tag] = bootstrap_origin(pred, cfg.seed, metrics.total_ratio_bootstrap)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["model", "origin", "metric", "value"])
    return BacktestResult(table, preds, notes, weights, models, scored, boot, ratio_boot)


def bootstrap_origin(pred: pd.DataFrame, seed: int,
                     statistic: Callable[..., pd.DataFrame] = metrics.gini_bootstrap) -> dict[str, list[float]]:
    """model -> the statistic (Gini, or total_ratio with metrics.total_ratio_bootstrap) on each
    of the origin's paired bootstrap replicates (rounded; NaN as None, JSON-ready); {} when the
    origin has no positive value (both are undefined)."""
    if not (pred["actual"] > 0).any():
        return {}
    reps = statistic(pred["actual"], {m: pred[m] for m in candidates(pred)}, seed=seed)
    return {m: [None if np.isnan(v) else round(float(v), 6) for v in reps[m]] for m in reps}


def final_blend(result: BacktestResult, registered: list[str]) -> dict[str, float]:
    """Blend weights for the scoring date: fitted on every origin's out-of-sample predictions,
    over the registered point candidates; the value map as keys "_gamma" and "_k"."""
    members, fit_on = blend_plan(list(result.predictions.values()),
                                 [m for m in registered if m not in (BASELINE, BLEND)])
    if not members:
        return {}
    rows = pd.concat([f[["actual", *members]] for f in fit_on])
    w = fit_blend(rows, members)
    if not w:
        return {}
    gamma, k = fit_blend_map(rows, w)
    return {**w, "_gamma": gamma, "_k": k}


def value_maps(result: BacktestResult, models: list[str]) -> tuple[dict[str, dict[str, object]],
                                                                    dict[str, dict[str, np.ndarray]]]:
    """For the given candidates that have no value map of their own and forecasts at two
    origins or more: model -> its value map (value_map_of), and model -> origin -> its forecast
    there mapped with the map fitted at the origin before (mapped_predictions), computed once
    for the check, the leaderboard rows (mapped_metrics) and the plots."""
    maps, mapped = {}, {}
    for m in models:
        if m not in (*OWN_MAP, BASELINE):
            later = mapped_predictions(result, m)
            vm = value_map_of(result, m, later)
            if vm is not None:
                maps[m], mapped[m] = vm, later
    return maps, mapped


def value_map_of(result: BacktestResult, model: str,
                 later: dict[str, np.ndarray] | None = None) -> dict[str, object] | None:
    """The model's value map on the newest origin's forecasts (gamma, level, k) and its check:
    fitted at each earlier origin, the MAE it gives at the next one against the raw forecast's
    (checks); kept when the mapped MAE is lower on average and the newest origin's map is not
    the identity. None with fewer than two origins. later: mapped_predictions(result, model),
    when the caller has it."""
    frames = _frames_of(result, model)
    if len(frames) < 2:
        return None
    later = mapped_predictions(result, model) if later is None else later
    checks = []
    for (fitted_at, _), (origin, p) in zip(frames, frames[1:]):
        actual = p["actual"].to_numpy(float)
        checks.append({"origin": origin, "fitted_at": fitted_at,
                       "mae": metrics.mae(actual, p[model].to_numpy(float)),
                       "mae_mapped": metrics.mae(actual, later[origin])})
    gamma, level, k = _fit_map(frames, model)
    raw, mapped = (float(np.mean([c[key] for c in checks])) for key in ("mae", "mae_mapped"))
    identity = gamma == 1.0 and level == 1.0  # nothing to apply, whatever the checks said
    return {"gamma": gamma, "level": level, "k": k, "fitted_at": frames[-1][0],
            "kept": bool(mapped < raw) and not identity, "mae": raw, "mae_mapped": mapped,
            "checks": checks}


def mapped_metrics(result: BacktestResult, mapped: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """The tidy metrics (model MAPPED_PREFIX + name) of each model's mapped forecasts (model ->
    origin -> forecast, value_maps' second part): the leaderboard's view of what a mapped
    champion would have done. Not candidates of the champion rule (they have no registry
    version until a champion is mapped)."""
    rows = []
    for model, by_origin in sorted(mapped.items()):
        for origin, v in by_origin.items():
            actual = result.predictions[origin]["actual"]
            for metric, value in metrics.evaluate(actual, v, on_undefined="omit").items():
                rows.append({"model": MAPPED_PREFIX + model, "origin": origin, "metric": metric,
                             "value": value})
    return pd.DataFrame(rows, columns=["model", "origin", "metric", "value"])


def mapped_predictions(result: BacktestResult, model: str) -> dict[str, np.ndarray]:
    """origin -> the model's forecast there mapped with the map fitted at the origin before,
    for every origin of the model after its first."""
    frames = _frames_of(result, model)
    out = {}
    for i in range(1, len(frames)):
        gamma, _, k = _fit_map(frames[:i], model)
        origin, p = frames[i]
        out[origin] = Blend({model: 1.0}, gamma=gamma, k=k).combine({model: p[model]})
    return out


def _frames_of(result: BacktestResult, model: str) -> list[tuple[str, pd.DataFrame]]:
    return [(o, p) for o, p in sorted(result.predictions.items()) if model in p.columns]


def _fit_map(frames: list[tuple[str, pd.DataFrame]], model: str) -> tuple[float, float, float]:
    """(gamma, level, k) on the last frame's rows; the total-ratio band on the mean ratio of
    forecast to realised total over all the frames."""
    ratios = [p[model].clip(lower=0).sum() / p["actual"].clip(lower=0).sum()
              for _, p in frames if p["actual"].clip(lower=0).sum() > 0]
    ratio = float(np.mean(ratios)) if ratios else None
    p = frames[-1][1]
    gamma, level, k, _ = stack.fit_value_map(p["actual"].to_numpy(float), p[model].to_numpy(float),
                                             None, stack.LEVELS,
                                             ratio if ratio is not None and np.isfinite(ratio) else None)
    return gamma, level, k


def mapped(model: str, value_map: dict[str, object], ref: str) -> Blend:
    """The model with its value map, as a one-member Blend (scored like a blend: lib/scoring)."""
    return Blend({model: 1.0}, {model: ref}, float(value_map["gamma"]), float(value_map["k"]))


def blend_from(final: dict[str, float], refs: dict[str, str] | None = None) -> Blend:
    """The Blend of a final_blend dict (weights plus "_gamma" / "_k")."""
    weights = {m: v for m, v in final.items() if not m.startswith("_")}
    return Blend(weights, refs or {}, final.get("_gamma", 1.0), final.get("_k", 1.0))


def pivot(table: pd.DataFrame) -> pd.DataFrame:
    """model x metric: mean over the origins the model has, plus n_origins."""
    if table.empty:
        return pd.DataFrame(columns=["model", "n_origins"])
    wide = table.pivot_table(index="model", columns="metric", values="value", aggfunc="mean")
    wide["n_origins"] = table.groupby("model")["origin"].nunique()
    return wide.reset_index()


def decile_calibration(pred: pd.DataFrame, model: str) -> pd.DataFrame:
    return metrics.decile_table(pred["actual"], pred[model])


def gains(pred: pd.DataFrame, model: str, points: int = 51) -> pd.DataFrame:
    """Gains curve of model and of the perfect order, on an even grid of customer shares."""
    grid = np.linspace(0, 1, points)
    curve = metrics.gains_curve(pred["actual"], pred[model])
    best = metrics.gains_curve(pred["actual"], pred["actual"])
    return pd.DataFrame({"share_customers": grid,
                         model: np.interp(grid, curve["share_customers"], curve["share_value"]),
                         "perfect": np.interp(grid, best["share_customers"], best["share_value"]),
                         "random": grid})


def error_by_age(pred: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """MAE per tenure bucket (days since the first purchase at the origin) per model."""
    edges = list(TENURE_BUCKETS)
    labels = [f"{int(lo)}-{int(hi) - 1}" if np.isfinite(hi) else f"{int(lo)}+"
              for lo, hi in zip(edges[:-1], edges[1:])]
    bucket = pd.cut(pred["T"], edges, right=False, labels=labels)
    err = pd.DataFrame({m: (pred[m] - pred["actual"]).abs() for m in models})
    out = err.groupby(bucket, observed=True).mean()
    out.insert(0, "customers", pred.groupby(bucket, observed=True).size())
    return out.reset_index().rename(columns={"T": "tenure_days"})
