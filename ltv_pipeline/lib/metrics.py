"""Forecast evaluation metrics for per-customer value forecasts (plain numpy / pandas).

Inputs are 1-d array-likes of equal, non-zero length with finite values, matched by position
(a pandas index is ignored); anything else raises ValueError naming the argument.

Undefined is never NaN and never a made-up 0: a metric that the data cannot define raises
UndefinedMetricError (a ValueError) that says why:
  - wape, normalized_gini, top_decile_share, decile_calibration_error, total_ratio and
    gains_curve need sum(actual) > 0 (all-zero actuals have no value to share out);
  - normalized_gini also needs actuals that are not all equal (then every order is perfect
    and the normalizer is 0); spearman needs actuals that are not all equal.
Conventions, which are definitions rather than failures:
  - Tied predictions form one block in unknown order: the gains curve runs straight through
    the block (the average over the block's orderings), so the result never depends on row
    order. Constant predictions therefore score gini 0 and spearman 0: no ranking information.
  - Deciles are by average rank of the prediction, 1 = lowest, 10 = highest; tied predictions
    share a decile, so a decile can be empty (it is then left out) or larger than N / 10.
evaluate(..., on_undefined="omit") leaves undefined metrics out of the dict instead of raising.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class UndefinedMetricError(ValueError):
    """The metric has no meaningful value for these inputs (the message says why)."""


def _arrays(**named) -> list[np.ndarray]:
    """Validate same-length, non-empty, finite 1-d inputs; return them as float arrays."""
    out = []
    for name, values in named.items():
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"{name} is empty: nothing to evaluate")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"{name} has {bad.size} NaN/inf value(s), e.g. at positions {bad[:5].tolist()}")
        out.append(arr)
    sizes = {name: arr.size for name, arr in zip(named, out)}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs differ in length: {sizes}")
    return out


def _total(actual: np.ndarray, metric: str) -> float:
    total = float(actual.sum())
    if total <= 0:
        raise UndefinedMetricError(f"{metric} is undefined: actual values sum to {total:g}, not > 0")
    return total


def mae(actual, predicted) -> float:
    """Mean absolute error."""
    a, p = _arrays(actual=actual, predicted=predicted)
    return float(np.mean(np.abs(a - p)))


def rmse(actual, predicted) -> float:
    """Root mean squared error."""
    a, p = _arrays(actual=actual, predicted=predicted)
    return float(np.sqrt(np.mean((a - p) ** 2)))


def wape(actual, predicted) -> float:
    """Weighted absolute percentage error: sum |actual - predicted| / sum actual."""
    a, p = _arrays(actual=actual, predicted=predicted)
    return float(np.abs(a - p).sum() / _total(a, "wape"))


def total_ratio(actual, predicted) -> float:
    """Total predicted / total actual (1 = unbiased in aggregate)."""
    a, p = _arrays(actual=actual, predicted=predicted)
    return float(p.sum() / _total(a, "total_ratio"))


def _gains(a: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative customer share x and value share y, customers by key descending, tied keys
    merged into one straight segment. Starts at (0, 0), ends at (1, 1)."""
    blocks = pd.DataFrame({"key": key, "a": a}).groupby("key", sort=True)["a"].agg(["size", "sum"])[::-1]
    x = np.concatenate([[0.0], blocks["size"].cumsum().to_numpy() / a.size])
    y = np.concatenate([[0.0], blocks["sum"].cumsum().to_numpy() / a.sum()])
    return x, y


def _gini(a: np.ndarray, key: np.ndarray) -> float:
    x, y = _gains(a, key)
    return float(2.0 * np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0) - 1.0)  # 2 * area - 1


def gains_curve(actual, predicted) -> pd.DataFrame:
    """Cumulative share of customers (by predicted, highest first) vs cumulative share of
    actual value: one row per distinct prediction plus the origin."""
    a, p = _arrays(actual=actual, predicted=predicted)
    _total(a, "gains_curve")
    x, y = _gains(a, p)
    return pd.DataFrame({"share_customers": x, "share_value": y})


def normalized_gini(actual, predicted) -> float:
    """Gini of actual ordered by predicted / Gini of actual ordered by actual.

    1 = perfect ranking, 0 = no better than random (and for constant predictions), < 0 = worse
    than random, -1 = exactly reversed. Invariant to any increasing transform of predicted."""
    a, p = _arrays(actual=actual, predicted=predicted)
    _total(a, "normalized_gini")
    best = _gini(a, a)
    if best <= 1e-12:
        raise UndefinedMetricError("normalized_gini is undefined: all actual values are equal, so "
                                   "every ordering is perfect (the normalizer is 0)")
    return _gini(a, p) / best


def _weighted_gini(a: np.ndarray, key: np.ndarray, w: np.ndarray) -> np.ndarray:
    """_gini for each row of weights w (replicates x customers): customers by key descending,
    tied keys one straight segment, each customer counted w times."""
    order = np.argsort(-key, kind="stable")
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ws = w[:, order]
    sizes = np.add.reduceat(ws, starts, axis=1)
    sums = np.add.reduceat(ws * a[order], starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.cumsum(sizes, axis=1) / sizes.sum(axis=1, keepdims=True)
        y = np.cumsum(sums, axis=1) / sums.sum(axis=1, keepdims=True)
    x, y = (np.hstack([np.zeros((len(w), 1)), v]) for v in (x, y))
    return 2.0 * np.sum(np.diff(x, axis=1) * (y[:, 1:] + y[:, :-1]) / 2.0, axis=1) - 1.0


def gini_bootstrap(actual, predictions: dict[str, object], n_boot: int = 50, seed: int = 0,
                   max_rows: int = 50_000) -> pd.DataFrame:
    """normalized_gini of every prediction on the same n_boot Poisson-bootstrap replicates of
    the customers (paired: the spread of a difference between two columns is the noise of
    comparing those two models on a sample this size). Rows: replicates; columns: the
    predictions' names; NaN where a replicate leaves Gini undefined.

    Above max_rows customers a fixed random subset of max_rows is resampled, and each
    replicate's deviation from the subset's Gini is shrunk by sqrt(max_rows / n) around the
    full sample's Gini: the noise of n customers, at bounded cost."""
    a, *arrays = _arrays(actual=actual, **{f"predictions[{name!r}]": p for name, p in predictions.items()})
    n = a.size
    idx, w = _replicate_weights(n, n_boot, seed, max_rows)
    sub = a[idx]
    best = _weighted_gini(sub, sub, w)
    best[best <= 1e-12] = np.nan
    if idx.size < n:  # the normalizers of the full sample and of the subset, once
        one_full, one_sub = np.ones((1, n)), np.ones((1, idx.size))
        best_full, best_sub = _weighted_gini(a, a, one_full)[0], _weighted_gini(sub, sub, one_sub)[0]
    out = {}
    for name, p in zip(predictions, arrays):
        reps = _weighted_gini(sub, p[idx], w) / best
        if idx.size < n:
            full = _weighted_gini(a, p, one_full)[0] / best_full
            part = _weighted_gini(sub, p[idx], one_sub)[0] / best_sub
            reps = full + (reps - part) * np.sqrt(idx.size / n)
        out[name] = reps
    return pd.DataFrame(out)


def total_ratio_bootstrap(actual, predictions: dict[str, object], n_boot: int = 50, seed: int = 0,
                          max_rows: int = 50_000) -> pd.DataFrame:
    """total_ratio of every prediction on the replicates gini_bootstrap draws for the same seed
    (rows: replicates; columns: the predictions' names; NaN where a replicate's actual total is
    not positive). Above max_rows, deviations are shrunk as in gini_bootstrap."""
    a, *arrays = _arrays(actual=actual, **{f"predictions[{name!r}]": p for name, p in predictions.items()})
    n = a.size
    idx, w = _replicate_weights(n, n_boot, seed, max_rows)
    actual_total = w @ a[idx]
    actual_total[actual_total <= 0] = np.nan
    out = {}
    for name, p in zip(predictions, arrays):
        reps = (w @ p[idx]) / actual_total
        if idx.size < n:
            full = p.sum() / a.sum() if a.sum() > 0 else np.nan
            part = p[idx].sum() / a[idx].sum() if a[idx].sum() > 0 else np.nan
            reps = full + (reps - part) * np.sqrt(idx.size / n)
        out[name] = reps
    return pd.DataFrame(out)


def _replicate_weights(n: int, n_boot: int, seed: int, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The resampled positions (all n, or a fixed random max_rows of them) and n_boot rows of
    Poisson(1) weights over them: the bootstrap replicates of the *_bootstrap functions."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, max_rows, replace=False)) if n > max_rows else np.arange(n)
    return idx, rng.poisson(1.0, size=(n_boot, idx.size)).astype(float)


def spearman(actual, predicted) -> float:
    """Spearman rank correlation (average ranks for ties); 0.0 for constant predictions."""
    a, p = _arrays(actual=actual, predicted=predicted)
    ra, rp = (pd.Series(v).rank(method="average").to_numpy() for v in (a, p))
    if np.ptp(ra) == 0:
        raise UndefinedMetricError("spearman is undefined: all actual values are equal")
    if np.ptp(rp) == 0:
        return 0.0
    return float(np.clip(np.corrcoef(ra, rp)[0, 1], -1.0, 1.0))


def top_decile_share(actual, predicted, share: float = 0.1) -> float:
    """Share of total actual value held by the top `share` of customers by prediction (read off
    the gains curve, so a fraction of a customer or of a tied block counts pro rata)."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    a, p = _arrays(actual=actual, predicted=predicted)
    _total(a, "top_decile_share")
    x, y = _gains(a, p)
    return float(np.interp(share, x, y))


def prediction_deciles(p: np.ndarray) -> np.ndarray:
    """Prediction decile per position, 1 (lowest) .. 10 (highest); ties share a decile."""
    ranks = pd.Series(p).rank(method="average").to_numpy()
    return np.floor((ranks - 0.5) * 10 / p.size).astype(int) + 1


def decile_table(actual, predicted) -> pd.DataFrame:
    """One row per non-empty prediction decile (1 = lowest predictions, 10 = highest):
    decile, n, mean_predicted, mean_actual."""
    a, p = _arrays(actual=actual, predicted=predicted)
    decile = prediction_deciles(p)
    frame = pd.DataFrame({"decile": decile, "predicted": p, "actual": a})
    return (frame.groupby("decile", as_index=False)
            .agg(n=("actual", "size"), mean_predicted=("predicted", "mean"), mean_actual=("actual", "mean")))


def decile_calibration_error(actual, predicted, deciles: np.ndarray | None = None) -> float:
    """Mean over non-empty prediction deciles of |mean predicted - mean actual|, divided by the
    overall mean actual. 0 = every decile calibrated. deciles: prediction_deciles(predicted)
    when the caller has it (a monotone map of a forecast keeps the forecast's deciles:
    lib/stack's value map scores many maps of one forecast and ranks it once)."""
    a, p = _arrays(actual=actual, predicted=predicted)
    total = _total(a, "decile_calibration_error")
    d = prediction_deciles(p) if deciles is None else deciles
    n = np.bincount(d, minlength=11)
    used = n > 0
    mean_p = np.bincount(d, weights=p, minlength=11)[used] / n[used]
    mean_a = np.bincount(d, weights=a, minlength=11)[used] / n[used]
    return float(np.mean(np.abs(mean_p - mean_a)) / (total / a.size))


def interval_coverage(actual, p10, p90) -> float:
    """Share of actual values inside [p10, p90] (bounds included)."""
    a, lo, hi = _arrays(actual=actual, p10=p10, p90=p90)
    crossed = np.flatnonzero(lo > hi)
    if crossed.size:
        raise ValueError(f"p10 > p90 at {crossed.size} position(s), e.g. {crossed[:5].tolist()}")
    return float(np.mean((a >= lo) & (a <= hi)))


def share_above_p90(actual, p90, predicted=None) -> float:
    """Share of actual values above p90 (nominal 0.10, whatever the share of zeros); with
    `predicted`, among the customers of its top decile only (where p90 matters most)."""
    a, hi = _arrays(actual=actual, p90=p90)
    if predicted is not None:
        top = prediction_deciles(_arrays(actual=actual, predicted=predicted)[1]) == 10
        a, hi = a[top], hi[top]
        if not a.size:
            raise UndefinedMetricError("share_above_p90 of the top decile: no customer is in the "
                                       "top prediction decile (predictions tied)")
    return float(np.mean(a > hi))


METRICS = {
    "mae": mae,
    "rmse": rmse,
    "wape": wape,
    "gini": normalized_gini,
    "spearman": spearman,
    "top_decile_share": top_decile_share,
    "decile_calibration_error": decile_calibration_error,
    "total_ratio": total_ratio,
}


def evaluate(actual, predicted, p10=None, p90=None, *, on_undefined: str = "raise") -> dict[str, float]:
    """All metrics above as {name: value}; p10_p90_coverage, share_above_p90 and
    share_above_p90_top_decile only when p10 and p90 are given. With an atom at 0 (most
    customers buy nothing in H) the coverage of [p10, p90] is nearer 0.9 than 0.8 for a
    correct interval (p10 = 0 wherever more than 10% buy nothing); the shares above p90 are
    0.10 for a correct p90 in any case.

    on_undefined="raise" (default) lets UndefinedMetricError through; "omit" leaves those
    metrics out of the result. Invalid inputs always raise ValueError."""
    if on_undefined not in ("raise", "omit"):
        raise ValueError(f"on_undefined must be 'raise' or 'omit', got {on_undefined!r}")
    if (p10 is None) != (p90 is None):
        raise ValueError("give both p10 and p90, or neither")
    _arrays(actual=actual, predicted=predicted)
    result = {}
    for name, metric in METRICS.items():
        try:
            result[name] = metric(actual, predicted)
        except UndefinedMetricError:
            if on_undefined == "raise":
                raise
    if p10 is not None:
        result["p10_p90_coverage"] = interval_coverage(actual, p10, p90)
        result["share_above_p90"] = share_above_p90(actual, p90)
        try:
            result["share_above_p90_top_decile"] = share_above_p90(actual, p90, predicted)
        except UndefinedMetricError:
            if on_undefined == "raise":
                raise
    return result
