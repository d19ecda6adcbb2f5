"""The LightGBM family: per-customer value over the horizon H from a frame stacked over training
cutoffs (one row per user_id per cutoff_date; label `value` = net revenue in the label window
[D + 1 day, D + 1 day + H), zero-inflated and heavy-tailed).

Members (train_family):
  tweedie        objective tweedie (variance power 1.3, log link): the zero mass and the tail
                 in one model; the default point forecast. With a power above 1 its fit solves
                 sum(y * mu^(1-p)) = sum(mu^(2-p)), not sum(y) = sum(mu), and on heavy tails
                 forecasts totals 10-20% low; a calibration factor (sum of labels / sum of
                 forecasts over the training and validation rows: one scalar, so in-sample is
                 fine and halves its noise against the validation cutoff alone) restores them.
  l2, l1         mean and median regressions (the median of a zero-inflated label is mostly 0).
  two_part       P(value > 0) (binary) times E[value | value > 0] from an L2 regressor on
                 log1p(value) over the positive rows. Back-transform with Duan's smearing: if
                 log1p(y) = m(x) + e with e independent of x, E[y | x, y > 0] =
                 exp(m(x)) * E[exp(e)] - 1. E[exp(e)] is the mean of exp(residual) over the
                 validation cutoff's positives (training positives when there are fewer than
                 min_valid_rows); without it exp(m) - 1 is a geometric mean and forecasts low.
  quantile_p10, quantile_p90   objective quantile, alpha 0.1 and 0.9: the interval, each
                 mapped by lib/intervals on the validation cutoff (per bin of its forecast, so a
                 share alpha of those customers lies below it: the raw boosters are shrunk to the
                 middle, p90 too low for the most valuable customers).
  hybrid         tweedie on features + hybrid_features, the BTYD outputs (expected_purchases,
                 p_alive, ...) that the caller joins as columns: ordinary features here;
                 calibrated like tweedie. Trained only when hybrid_features is given.

Time-based validation: the newest cutoff in the frame only decides when boosting stops (early
stopping on the member's own metric); it is never a training row and never a random split.
When it has fewer than min_valid_rows rows or no positive label (or there is one cutoff), a
member trains a fixed fallback_rounds and says so in its notes. Space training cutoffs at least
H apart, or the newest training labels overlap the validation window and stopping is a little
optimistic. Past max_rows training rows, the newest cutoffs stay whole and the older ones are
sampled by a hash of (user_id, cutoff, seed): deterministic and independent of row order.

Categorical features are strings with a category list fixed at training; at prediction unseen
values become NaN (LightGBM's missing branch), so training and scoring never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ltv_pipeline import settings
from ltv_pipeline.lib import intervals
from ltv_pipeline.lib.lazy import lazy

lgb = lazy("lightgbm")  # imported on the first fit or prediction (lib/lazy.py)

MEMBERS = ("tweedie", "l2", "l1", "two_part", "quantile_p10", "quantile_p90", "hybrid")
OBJECTIVES: dict[str, dict[str, Any]] = {
    "tweedie": {"objective": "tweedie", "tweedie_variance_power": 1.3, "metric": "tweedie"},
    "l2": {"objective": "regression", "metric": "l2"},
    "l1": {"objective": "regression_l1", "metric": "l1"},
    "quantile_p10": {"objective": "quantile", "alpha": 0.1, "metric": "quantile"},
    "quantile_p90": {"objective": "quantile", "alpha": 0.9, "metric": "quantile"},
    "classifier": {"objective": "binary", "metric": "binary_logloss"},  # two_part: P(value > 0)
    "regressor": {"objective": "regression", "metric": "l2"},  # two_part: log1p(value) | > 0
}
OBJECTIVES["hybrid"] = OBJECTIVES["tweedie"]
_FIXED_KEYS = ("objective", "alpha", "metric")  # what makes a member; params cannot override
BASE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
    "max_bin": 63,
    "lambda_l2": 1.0, "num_threads": settings.compute_threads(), "deterministic": True,
    "force_row_wise": True, "verbosity": -1,
}
# MAX_ROWS bounds the training rows of every booster (the validation cutoff comes on top): a
# booster's time is rows x rounds, and past a few hundred thousand rows more of the older
# cutoffs' customers add little (issue 11: at 100k users the eight training cutoffs held 524k
# rows and the seven members took 15 min under load).
MAX_ROWS, MAX_ROUNDS, EARLY_STOPPING_ROUNDS, FALLBACK_ROUNDS, MIN_VALID_ROWS = (
    250_000, 300, 20, 100, 30)


def size_params(n_rows: int) -> dict[str, Any]:
    """Leaf sizes scaled to the training rows: 3 rows a leaf at 50 rows, 100 from 50k rows."""
    leaf = int(np.clip(n_rows // 500, 3, 100))
    return {"min_data_in_leaf": leaf, "min_data_per_group": leaf, "min_sum_hessian_in_leaf": 1e-3,
            "num_leaves": int(np.clip(n_rows // (2 * leaf), 2, 31))}


@dataclass
class Part:
    """One booster, or a constant (booster None) where there was nothing to learn. raw() is
    the booster's raw score (log for tweedie, log-odds for binary, log1p for the two-part
    regressor, the value otherwise); a constant part's raw score is the constant."""

    objective: str
    params: dict[str, Any]
    booster: lgb.Booster | None = None
    constant: float = 0.0
    best_iteration: int = 0  # trees kept (lgb.train returns the booster cut at the best one)
    early_stopped: bool = False
    best_score: float | None = None  # validation metric at best_iteration

    def raw(self, X: pd.DataFrame, raw_score: bool = True) -> np.ndarray:
        if self.booster is None:
            return np.full(len(X), self.constant, dtype=float)
        return np.asarray(self.booster.predict(X, raw_score=raw_score), dtype=float)

    def output(self, X: pd.DataFrame) -> np.ndarray:
        return self.raw(X, raw_score=False)

    def contrib(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, features + 1) contributions, bias last; each row sums to raw()."""
        if self.booster is None:
            return np.column_stack([np.zeros((len(X), X.shape[1])), self.raw(X)])
        return np.asarray(self.booster.predict(X, pred_contrib=True))


@dataclass
class GBMModel:
    """One member of the family: picklable, self-describing, scores any frame with its columns."""

    member: str
    features: list[str]
    categories: dict[str, list[str]]  # categorical features -> levels fixed at training
    parts: dict[str, Part]  # "main"; two_part: "classifier" and "regressor"
    training_cutoffs: list[str]
    validation_cutoff: str | None
    n_train_rows: int
    n_valid_rows: int
    notes: list[str] = field(default_factory=list)
    label: str = "value"
    smearing: float = 1.0  # two_part: Duan's factor E[exp(residual)] on the log1p scale
    calibration: float = 1.0  # tweedie, hybrid: forecasts are booster output * calibration
    quantile_map: dict | None = None  # quantile members: lib/intervals' map fitted on validation

    @property
    def categorical(self) -> list[str]:
        return list(self.categories)

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        return {name: p.params for name, p in self.parts.items()}

    @property
    def best_iteration(self) -> dict[str, int]:
        return {name: p.best_iteration for name, p in self.parts.items()}

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        return _matrix(frame, self.features, self.categories)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted value per row, >= 0."""
        X = self.matrix(frame)
        if self.member == "two_part":
            p = self.parts["classifier"].output(X)
            with np.errstate(over="ignore"):
                pos = np.exp(self.parts["regressor"].raw(X)) * self.smearing - 1.0
            out = p * np.clip(pos, 0.0, None)
        else:
            out = self.parts["main"].output(X) * self.calibration
            if self.quantile_map:
                out = intervals.apply_quantile_map(out, self.quantile_map)
        return np.clip(np.nan_to_num(out, nan=0.0, posinf=np.finfo(float).max), 0.0, None)

    def importance(self) -> pd.DataFrame:
        """Gain and split importance per part and feature (zeros for constant parts)."""
        rows = []
        for name, p in self.parts.items():
            gain = p.booster.feature_importance("gain") if p.booster else np.zeros(len(self.features))
            split = p.booster.feature_importance("split") if p.booster else np.zeros(len(self.features))
            total = float(np.sum(gain))
            rows += [{"member": self.member, "part": name, "feature": f, "gain": float(g),
                      "split": int(s), "gain_share": float(g) / total if total > 0 else 0.0}
                     for f, g, s in zip(self.features, gain, split)]
        return pd.DataFrame(rows).sort_values(["part", "gain"], ascending=[True, False],
                                              ignore_index=True)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for manifests and metadata."""
        return {"member": self.member, "features": self.features,
                "categorical": {c: len(v) for c, v in self.categories.items()},
                "params": self.params, "best_iteration": self.best_iteration,
                "early_stopped": {n: p.early_stopped for n, p in self.parts.items()},
                "training_cutoffs": self.training_cutoffs, "validation_cutoff": self.validation_cutoff,
                "n_train_rows": self.n_train_rows, "n_valid_rows": self.n_valid_rows,
                "smearing": self.smearing, "calibration": self.calibration,
                "quantile_map": self.quantile_map, "notes": self.notes}


def _matrix(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks feature column(s) {missing}; the model uses {features}")
    cols: dict[str, Any] = {}
    for c in features:
        s = frame[c]
        if c in categories:
            vals = s.astype(object).where(s.notna()).map(str, na_action="ignore")
            cols[c] = pd.Categorical(vals.to_numpy(), categories=categories[c])
        elif pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            cols[c] = s.astype("float64").to_numpy()
        else:
            raise ValueError(f"feature {c!r} has dtype {s.dtype} (e.g. {s.dropna().head(3).tolist()}):"
                             " list it in categorical or make it numeric")
    return pd.DataFrame(cols, columns=features)


def train_family(*args, **kwargs) -> dict[str, GBMModel]:
    """Train the members -> {member: GBMModel}; see lib/gbm_fit.train_family (same arguments)."""
    from ltv_pipeline.lib.gbm_fit import train_family as fit

    return fit(*args, **kwargs)



def _ids(frame: pd.DataFrame, id_cols: tuple[str, ...]) -> pd.DataFrame:
    return frame[[c for c in id_cols if c in frame.columns]].reset_index(drop=True)


def predict(models: dict[str, GBMModel], frame: pd.DataFrame, point: str | None = None,
            id_cols: tuple[str, ...] = ("user_id", "cutoff_date")) -> pd.DataFrame:
    """One row per frame row: id columns, predicted_value (member `point`: default tweedie, or
    the first member when there is none), model, pred_<member> for every member, p10 and p90
    (sorted so p10 <= p90; NaN when the quantile members are missing). Values are >= 0."""
    point = point or ("tweedie" if "tweedie" in models else next(iter(models)))
    if point not in models:
        raise ValueError(f"point member {point!r} not in the family {list(models)}")
    out = _ids(frame, id_cols)
    preds = {m: model.predict(frame) for m, model in models.items()}
    out["predicted_value"], out["model"] = preds[point], point
    for m, p in preds.items():
        out[f"pred_{m}"] = p
    q = [preds.get("quantile_p10", np.full(len(frame), np.nan)),
         preds.get("quantile_p90", np.full(len(frame), np.nan))]
    out["p10"], out["p90"] = np.fmin(*q), np.fmax(*q)
    return out


def contribution_matrix(model: GBMModel, frame: pd.DataFrame, part: str | None = None) -> pd.DataFrame:
    """LightGBM pred_contrib in the part's raw-score space: one column per feature plus bias;
    rows sum to the raw score (tweedie, hybrid: forecast = exp(raw) * calibration). two_part
    defaults to the classifier (log-odds of buying); "regressor" explains log1p(value | > 0)."""
    part = part or ("classifier" if model.member == "two_part" else "main")
    if part not in model.parts:
        raise ValueError(f"{model.member} has parts {list(model.parts)}, not {part!r}")
    X = model.matrix(frame)
    return pd.DataFrame(model.parts[part].contrib(X), columns=[*model.features, "bias"])


def contributions(model: GBMModel, frame: pd.DataFrame, top_k: int = 3, part: str | None = None,
                  id_cols: tuple[str, ...] = ("user_id", "cutoff_date")) -> pd.DataFrame:
    """Per row: id columns, top_features ("feature:+value; ..." by |contribution|, top_k of
    them), bias and raw_score (= bias + sum of all contributions)."""
    C = contribution_matrix(model, frame, part)
    vals = C[model.features].to_numpy()
    order = np.argsort(-np.abs(vals), axis=1, kind="stable")[:, :top_k]
    names = np.asarray(model.features)
    out = _ids(frame, id_cols)
    out["top_features"] = ["; ".join(f"{names[j]}:{vals[i, j]:+.4g}" for j in row)
                           for i, row in enumerate(order)]
    out["bias"], out["raw_score"] = C["bias"].to_numpy(), C.sum(axis=1).to_numpy()
    return out


def importance(models: dict[str, GBMModel]) -> pd.DataFrame:
    """Every member's gain/split importance, stacked: member, part, feature, gain, split, gain_share."""
    return pd.concat([m.importance() for m in models.values()], ignore_index=True)
