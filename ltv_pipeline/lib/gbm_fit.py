"""Training the LightGBM family (split from lib/gbm.py, which documents the members and keeps
the picklable model classes): row bounding, one booster per part with time-based early
stopping, the two-part model's smearing, the tweedie calibration factor and the quantile
members' map (lib/intervals)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ltv_pipeline.lib.gbm import (BASE_PARAMS, EARLY_STOPPING_ROUNDS, FALLBACK_ROUNDS, MAX_ROUNDS,
                                  MAX_ROWS, MEMBERS, MIN_VALID_ROWS, OBJECTIVES, _FIXED_KEYS,
                                  GBMModel, Part, _matrix, size_params)
from ltv_pipeline.lib import intervals
from ltv_pipeline.lib.lazy import lazy

lgb = lazy("lightgbm")  # imported on the first fit (lib/lazy.py)


def _bound_rows(frame: pd.DataFrame, cut: pd.Series, max_rows: int, seed: int, id_col: str,
                notes: list[str]) -> np.ndarray:
    """Boolean mask of rows to keep: at most max_rows training rows, the newest training cutoffs
    whole and the older ones sampled by hash; the validation cutoff is whole and not counted."""
    keep = np.ones(len(frame), dtype=bool)
    counts = cut.value_counts().sort_index(ascending=False)  # newest first
    whole: list[pd.Timestamp] = list(counts.index[:1]) if len(counts) > 1 else []
    if len(frame) - counts.iloc[:len(whole)].sum() <= max_rows:
        return keep
    budget = max_rows
    for day, n in counts.iloc[len(whole):].items():
        if n > budget:
            break
        whole.append(day)
        budget -= n
    older = ~cut.isin(whole).to_numpy()
    frac = budget / older.sum()
    key = frame[id_col] if id_col in frame.columns else frame.index.to_series()
    h = pd.util.hash_pandas_object(pd.DataFrame({"k": key.astype(str).to_numpy(),
                                                 "c": cut.astype(str).to_numpy()}),
                                   index=False, hash_key=f"ltvgbm{seed % 10**10:010d}")
    keep[older] = (h.to_numpy()[older] / 2.0**64) < frac
    notes.append(f"training rows > max_rows {max_rows}: kept {len(whole)} newest cutoff(s) whole "
                 f"(validation included) and {frac:.1%} of the {int(older.sum())} older rows")
    return keep


def bound_keys(keys: pd.DataFrame, max_rows: int = MAX_ROWS, seed: int = 0,
               cutoff_col: str = "cutoff_date", id_col: str = "user_id") -> tuple[pd.DataFrame, list[str]]:
    """The (user_id, cutoff) rows train_family would keep from a frame of these keys (same rule
    and hash), so a caller can drop the others before fetching their features."""
    notes: list[str] = []
    cut = pd.to_datetime(keys[cutoff_col]).dt.normalize()
    keep = _bound_rows(keys, cut, max_rows, seed, id_col, notes)
    return (keys if keep.all() else keys[keep]), notes


def _constant(objective: str, y: np.ndarray) -> float:
    if len(y) == 0:
        return 0.0
    if objective == "quantile":
        return float(np.quantile(y, 0.5))  # labels are constant here: any quantile is the value
    return float(np.median(y)) if objective == "regression_l1" else float(np.mean(y))


class _Bins:
    """The binned LightGBM Datasets of a family's training and validation rows, one pair per
    feature list, shared by the members that train on those rows: LightGBM bins X alone (the
    label and the objective do not enter), so a member sets its label on the pair instead of
    binning the same frame again (7 members, 250k rows: ~0.15 s a Dataset). Members of the same
    rows have the same dataset parameters (size_params of the same count); if they did not,
    LightGBM rebuilds from the raw frame it keeps (free_raw_data=False)."""

    def __init__(self) -> None:
        self._sets: dict[tuple[str, ...], list] = {}

    def train(self, X: pd.DataFrame, y: np.ndarray):
        pair = self._sets.setdefault(tuple(X.columns), [None, None])
        if pair[0] is None:
            pair[0] = lgb.Dataset(X, y, params={"verbosity": -1}, free_raw_data=False)
        else:
            pair[0].set_label(y)
        return pair[0]

    def valid(self, X: pd.DataFrame, y: np.ndarray, dtrain):
        pair = self._sets[tuple(X.columns)]
        if pair[1] is None:
            pair[1] = lgb.Dataset(X, y, reference=dtrain, free_raw_data=False)
        else:
            pair[1].set_label(y)
        return pair[1]


def _fit_part(name: str, params: dict, X: pd.DataFrame, y: np.ndarray, Xv: pd.DataFrame | None,
              yv: np.ndarray | None, cfg: dict, notes: list[str], bins: _Bins | None = None) -> Part:
    """One booster (bins: the family's shared Datasets when X and Xv are its whole rows)."""
    objective = params["objective"]
    if np.unique(y).size < 2:
        c = _constant(objective, y)
        notes.append(f"{name}: {len(y)} training row(s) with {np.unique(y).size} distinct label "
                     f"value(s): nothing to learn, predicts the constant {c:.6g}")
        return Part(objective, params, None, c)
    dtrain = (bins.train(X, y) if bins is not None
              else lgb.Dataset(X, y, params={"verbosity": -1}, free_raw_data=True))
    why: str | None = None
    if yv is None:
        why = "no validation cutoff"
    elif len(yv) < cfg["min_valid_rows"]:
        why = f"validation cutoff has {len(yv)} row(s) < min_valid_rows {cfg['min_valid_rows']}"
    elif not (yv > 0).any():
        why = "validation cutoff has no positive label"
    if why:
        notes.append(f"{name}: no early stopping ({why}): fixed {cfg['fallback_rounds']} rounds")
        booster = lgb.train(params, dtrain, num_boost_round=cfg["fallback_rounds"])
        return Part(objective, params, booster, best_iteration=booster.current_iteration())
    dvalid = bins.valid(Xv, yv, dtrain) if bins is not None else lgb.Dataset(Xv, yv, reference=dtrain)
    booster = lgb.train(params, dtrain, num_boost_round=cfg["max_rounds"], valid_sets=[dvalid],
                        valid_names=["validation"], callbacks=[lgb.early_stopping(
                            cfg["early_stopping_rounds"], first_metric_only=True, verbose=False)])
    best = booster.best_iteration or booster.current_iteration()
    score = booster.best_score["validation"].get(params["metric"])
    stopped = best < cfg["max_rounds"]
    if not booster.feature_importance("split").any():
        notes.append(f"{name}: no split improves the fit (constant or uninformative features): "
                     "predicts the training mean")
    return Part(objective, params, booster, best_iteration=best, early_stopped=stopped,
                best_score=None if score is None else float(score))


def _fit_single(member, lgb_params, X, y, Xv, yv, cfg, notes, bins=None) -> tuple[dict[str, Part], dict]:
    part = _fit_part(member, lgb_params(member, len(y)), X, y, Xv, yv, cfg, notes, bins)
    if part.objective == "quantile":
        qmap = (None if yv is None or part.booster is None
                else intervals.fit_quantile_map(part.output(Xv), yv, part.params["alpha"]))
        notes.append(f"{member}: {intervals.describe(qmap)}")
        return {"main": part}, {"quantile_map": qmap}
    if member not in ("tweedie", "hybrid"):
        return {"main": part}, {}
    total = float(part.output(X).sum()) + (0.0 if Xv is None else float(part.output(Xv).sum()))
    labels = float(y.sum()) + (0.0 if yv is None else float(yv.sum()))
    cal = labels / total if total > 0 and labels > 0 else 1.0
    notes.append(f"{member}: calibration factor {cal:.4f} = sum of labels / sum of forecasts "
                 "over the training and validation rows")
    return {"main": part}, {"calibration": cal}


def _fit_two_part(member, lgb_params, X, y, Xv, yv, cfg, notes, bins=None) -> tuple[dict[str, Part], dict]:
    clf = _fit_part("two_part classifier", lgb_params("classifier", len(y)), X,
                    (y > 0).astype(float), Xv, None if yv is None else (yv > 0).astype(float),
                    cfg, notes, bins)
    pos = y > 0
    Xpv, lpv = (None, None) if yv is None else (Xv[yv > 0], np.log1p(yv[yv > 0]))
    reg = _fit_part("two_part regressor", lgb_params("regressor", int(pos.sum())), X[pos],
                    np.log1p(y[pos]), Xpv, lpv, cfg, notes)
    # Smearing from held-out residuals (in-sample ones are too small) when there are enough.
    if lpv is not None and len(lpv) >= cfg["min_valid_rows"]:
        Xs, ls, where = Xpv, lpv, "validation"
    else:
        Xs, ls, where = X[pos], np.log1p(y[pos]), "training"
    smear = float(np.mean(np.exp(ls - reg.raw(Xs)))) if len(ls) else 1.0
    if not np.isfinite(smear):
        notes.append(f"two_part: smearing factor {smear} not finite: using 1")
        smear = 1.0
    notes.append(f"two_part: smearing factor {smear:.4f} from {len(ls)} {where} positive row(s)")
    return {"classifier": clf, "regressor": reg}, {"smearing": smear}


def train_family(frame: pd.DataFrame, features: list[str], categorical: list[str],
                 label: str = "value", cutoff_col: str = "cutoff_date",
                 params: dict[str, Any] | None = None, seed: int = 0, *,
                 hybrid_features: list[str] | None = None, members: list[str] | None = None,
                 max_rows: int = MAX_ROWS, max_rounds: int = MAX_ROUNDS,
                 early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
                 fallback_rounds: int = FALLBACK_ROUNDS, min_valid_rows: int = MIN_VALID_ROWS,
                 id_col: str = "user_id") -> dict[str, GBMModel]:
    """Train the members (default: all; hybrid only with hybrid_features) -> {member: GBMModel}.

    categorical: the categorical features (added to features when missing there). params:
    LightGBM parameters over BASE_PARAMS and size_params for every member (objective, alpha
    and metric stay the member's). Negative labels (net refunds) are clipped to 0 with a note."""
    missing = [c for c in [*features, *categorical, *(hybrid_features or []), label, cutoff_col]
               if c not in frame.columns]
    if missing:
        raise ValueError(f"training frame lacks column(s) {missing}; has {list(frame.columns)}")
    base_features = list(dict.fromkeys([*features, *categorical]))
    wanted = list(members or [m for m in MEMBERS if m != "hybrid" or hybrid_features])
    unknown = sorted(set(wanted) - set(MEMBERS))
    if unknown or ("hybrid" in wanted and not hybrid_features):
        raise ValueError(f"unknown member(s) {unknown} (known {list(MEMBERS)}); "
                         "hybrid needs hybrid_features")
    all_feats = list(dict.fromkeys([*base_features, *(hybrid_features or [])]))
    used = [*all_feats, label, cutoff_col] + ([id_col] if id_col in frame.columns else [])
    frame = frame[list(dict.fromkeys(used))]
    notes: list[str] = []
    cut = pd.to_datetime(frame[cutoff_col]).dt.normalize()
    keep = _bound_rows(frame, cut, max_rows, seed, id_col, notes)
    ids = frame[id_col].astype(str).to_numpy() if id_col in frame.columns else np.arange(len(frame))
    pos = pd.DataFrame({"c": cut.to_numpy(), "k": ids})[keep].sort_values(["c", "k"]).index
    frame, cut = frame.iloc[pos], cut.iloc[pos]  # the same rows in any order train the same
    y = frame[label].to_numpy(dtype=float)
    if not np.isfinite(y).all():
        raise ValueError(f"label {label!r} has {int((~np.isfinite(y)).sum())} null or infinite "
                         "value(s): fill the label window's revenue with 0 for users without any")
    if (y < 0).any():
        notes.append(f"{int((y < 0).sum())} negative label(s) (net refunds) clipped to 0")
        y = np.clip(y, 0.0, None)
    days = sorted(cut.unique())
    valid_day = days[-1] if len(days) > 1 else None
    train = (cut < valid_day).to_numpy() if valid_day is not None else np.ones(len(frame), bool)
    categories = {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in categorical}
    X = _matrix(frame, all_feats, categories)
    Xt, yt = X[train].reset_index(drop=True), y[train]
    Xv, yv = (X[~train].reset_index(drop=True), y[~train]) if valid_day is not None else (None, None)
    cfg = {"max_rounds": max_rounds, "early_stopping_rounds": early_stopping_rounds,
           "fallback_rounds": fallback_rounds, "min_valid_rows": min_valid_rows}
    user = {k: v for k, v in (params or {}).items() if k not in _FIXED_KEYS}
    meta: dict[str, Any] = {
        "training_cutoffs": [d.date().isoformat() for d in days if valid_day is None or d < valid_day],
        "validation_cutoff": valid_day.date().isoformat() if valid_day is not None else None,
        "n_train_rows": int(train.sum()), "n_valid_rows": int((~train).sum()), "label": label}

    def lgb_params(kind: str, n: int) -> dict[str, Any]:
        return {**BASE_PARAMS, **size_params(n), "seed": seed, **OBJECTIVES[kind], **user}

    family, bins, frames = {}, _Bins(), {}
    for member in wanted:
        feats = all_feats if member == "hybrid" else base_features
        cats = {c: v for c, v in categories.items() if c in feats}
        mnotes, fit = list(notes), _fit_two_part if member == "two_part" else _fit_single
        if tuple(feats) not in frames:
            frames[tuple(feats)] = (Xt[feats], None if Xv is None else Xv[feats])
        Xf, Xvf = frames[tuple(feats)]
        parts, factors = fit(member, lgb_params, Xf, yt, Xvf, yv, cfg, mnotes, bins)
        family[member] = GBMModel(member, feats, cats, parts, notes=mnotes, **factors, **meta)
    return family
