"""Drift statistics and the retrain decision (pure: numpy / pandas / scipy, no Dagster).

Population stability index (PSI) of a variable between a reference sample and a current one:
  - bins: the reference's quantiles at 1/B, 2/B, ..., (B-1)/B (B = settings.DRIFT_PSI_BINS),
    de-duplicated, so a point mass (e.g. the many customers with revenue_90d = 0) becomes one
    bin of its own instead of several empty ones; the outer bins are open (-inf, e1] and
    (e_k, inf), so current values outside the reference's range still land in a bin;
    a missing value (NaN) is one more bin;
  - zeros: a bin empty on one side would make ln(a / e) infinite, so every share is floored at
    PSI_EPSILON (1e-4) and the shares renormalised before PSI = sum((a - e) * ln(a / e));
  - reading it (the usual credit-scoring scale): < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.
The two-sample Kolmogorov-Smirnov statistic (sup |F_ref - F_cur|, scipy) over the observed (non-missing)
values complements it: PSI over a whole customer base is diluted when most customers sit in
one point mass (no recent activity, a rate that is undefined without a cart), KS among the
customers who have a value is not. With thousands of customers the KS p-value is tiny for any
visible shift, so the decision reads the statistic against a size (settings), not the p-value.

decide(figures, thresholds) is the ONE decision function: the drift sensor and `ltv monitor`
both call it on the figures a monitoring partition produced (lib/monitoring.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

PSI_EPSILON = 1e-4


def bin_edges(reference, bins: int = 10) -> np.ndarray:
    """Inner bin edges: the reference's finite values' quantiles at k/bins (k = 1..bins-1),
    de-duplicated (a point mass is one bin)."""
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    ref = np.asarray(reference, dtype=float)
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        raise ValueError("the reference sample has no finite values: PSI has no bins")
    return np.unique(np.quantile(ref, np.arange(1, bins) / bins))


def shares(values, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin (-inf, e1], (e1, e2], ..., (ek, inf), then the missing bin."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("an empty sample has no distribution")
    finite = np.isfinite(arr)
    counts = np.bincount(np.searchsorted(edges, arr[finite], side="left"), minlength=edges.size + 1)
    return np.append(counts, (~finite).sum()) / arr.size


def psi(reference, current, bins: int = 10) -> float:
    """Population stability index of current against reference (see the module docstring)."""
    edges = bin_edges(reference, bins)
    e = np.maximum(shares(reference, edges), PSI_EPSILON)
    a = np.maximum(shares(current, edges), PSI_EPSILON)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def ks(reference, current) -> float:
    """Two-sample Kolmogorov-Smirnov statistic over the finite values (0 = same distribution)."""
    ref, cur = (np.asarray(x, dtype=float) for x in (reference, current))
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        raise ValueError("KS needs finite values on both sides")
    from scipy import stats  # imported when used: the drift sensor's module loads with the definitions

    return float(stats.ks_2samp(ref, cur).statistic)


def compare(reference, current, bins: int = 10) -> dict[str, float]:
    """psi, ks, means and sizes of one variable (the row of the per-feature table)."""
    ref, cur = (pd.to_numeric(pd.Series(x), errors="coerce").astype(float) for x in (reference, current))
    return {"psi": psi(ref, cur, bins), "ks": ks(ref, cur),
            "reference_mean": float(ref.mean()), "current_mean": float(cur.mean()),
            "reference_missing_share": float(ref.isna().mean()),
            "current_missing_share": float(cur.isna().mean()),
            "n_reference": int(ref.size), "n_current": int(cur.size),
            "n_reference_observed": int(ref.notna().sum()), "n_current_observed": int(cur.notna().sum())}


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, features, bins: int = 10
                  ) -> pd.DataFrame:
    """One row per feature: psi, ks, means, missing shares and sizes, highest PSI first.
    Features without a single observed value on one side are left out of the table and named
    in table.attrs["unobserved"] (not reported as "no drift")."""
    missing = [f for f in features if f not in reference.columns or f not in current.columns]
    if missing:
        raise ValueError(f"features missing from the compared frames: {missing}")
    rows, unobserved = [], []
    for f in features:
        ref, cur = (pd.to_numeric(x[f], errors="coerce").astype(float) for x in (reference, current))
        if not (np.isfinite(ref).any() and np.isfinite(cur).any()):
            unobserved.append(f)  # e.g. event features of a log without events: nothing to compare
            continue
        rows.append({"feature": f, **compare(ref, cur, bins)})
    table = pd.DataFrame(rows, columns=["feature", "psi", "ks"] if not rows else None)
    table = table.sort_values("psi", ascending=False, ignore_index=True)
    table.attrs["unobserved"] = unobserved
    return table


@dataclass(frozen=True)
class Thresholds:
    """What turns monitoring figures into a retrain (values in settings.py, documented there)."""

    feature_psi: float
    feature_ks: float
    min_ks_values: int
    min_drifted_features: int
    prediction_psi: float
    total_ratio_low: float
    total_ratio_high: float
    gini_drop: float
    mae_increase: float
    min_matured_users: int
    max_freshness_lag_days: int
    min_volume_ratio: float


@dataclass(frozen=True)
class Decision:
    """retrain: request a retraining run; reasons: why (or why not, when held back)."""

    retrain: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _fmt(value) -> str:
    return "unknown" if value is None else f"{value:.3f}"


def _feature_drifted(row: dict, t: Thresholds) -> bool:
    """PSI over everyone (missing values are a bin) or KS among the observed values: PSI is
    diluted when most customers sit in one point mass (no activity, no value), KS is not."""
    if row["psi"] > t.feature_psi:
        return True
    observed = min(row.get("n_reference_observed", 0), row.get("n_current_observed", 0))
    return row.get("ks", 0.0) > t.feature_ks and observed >= t.min_ks_values


def _triggers(figures: dict, t: Thresholds) -> list[str]:
    out = []
    drifted = [f"{f} (PSI {row['psi']:.3f}" + (f", KS {row['ks']:.3f})" if "ks" in row else ")")
               for f, row in sorted((figures.get("features") or {}).items(), key=lambda x: -x[1]["psi"])
               if _feature_drifted(row, t)]
    if len(drifted) >= t.min_drifted_features:
        out.append(f"{len(drifted)} feature(s) drifted (PSI > {t.feature_psi:g}, or KS > "
                   f"{t.feature_ks:g} on at least {t.min_ks_values} observed values per side): "
                   + ", ".join(drifted))
    pred = figures.get("predictions") or {}
    if pred.get("available") and pred["psi"] > t.prediction_psi:
        out.append(f"predicted values drifted: PSI {pred['psi']:.3f} > {t.prediction_psi:g} "
                   f"(mean {pred['reference_mean']:.2f} on {pred['reference_date']} -> "
                   f"{pred['current_mean']:.2f})")
    err = figures.get("realised_error") or {}
    if err.get("available") and err["n_users"] >= t.min_matured_users:
        where = f"forecasts of {err['forecast_date']} over ({err['forecast_date']}, {figures['as_of']}]"
        ratio = err.get("total_ratio")
        if ratio is not None and not t.total_ratio_low <= ratio <= t.total_ratio_high:
            out.append(f"{where}: total predicted / realised {ratio:.3f} outside "
                       f"[{t.total_ratio_low:g}, {t.total_ratio_high:g}] (the champion's backtest: "
                       f"{_fmt(err.get('reference_total_ratio'))})")
        ref_gini, gini = err.get("reference_gini"), err.get("gini")
        if ref_gini is not None and gini is not None and ref_gini - gini > t.gini_drop:
            out.append(f"{where}: normalized Gini {gini:.3f} is {ref_gini - gini:.3f} below the "
                       f"champion's backtest {ref_gini:.3f} (allowed drop {t.gini_drop:g})")
        ref_mae, mae = err.get("reference_mae"), err.get("mae")
        if ref_mae and mae is not None and mae / ref_mae - 1 > t.mae_increase:
            out.append(f"{where}: MAE {mae:.2f} is {mae / ref_mae - 1:.0%} above the champion's "
                       f"backtest {ref_mae:.2f} (allowed +{t.mae_increase:.0%})")
    return out


def _holds(figures: dict, t: Thresholds) -> list[str]:
    """Data problems under which a retrain would learn from a broken feed: they hold it back."""
    out = []
    fresh = figures.get("freshness") or {}
    lag = fresh.get("lag_days")
    if lag is None or lag > t.max_freshness_lag_days:
        out.append(f"held: the data is stale (last transaction {fresh.get('last_transaction_date')}, "
                   f"{lag} day(s) before {figures.get('as_of')}; at most {t.max_freshness_lag_days} "
                   "allowed): fix the feed before retraining")
    vol = figures.get("volume") or {}
    ratio = vol.get("ratio")
    if ratio is not None and ratio < t.min_volume_ratio:
        out.append(f"held: transaction volume fell to {ratio:.2f} x the reference period "
                   f"({vol['recent_rows_per_day']:.1f} vs {vol['reference_rows_per_day']:.1f} rows "
                   f"per day; below {t.min_volume_ratio:g} looks like a broken feed): check the loads")
    return out


def decide(figures: dict, thresholds: Thresholds) -> Decision:
    """Retrain when at least one trigger fires (feature drift on enough features, drift of the
    predicted values, or a matured realised error out of bounds) and no data problem holds it
    back (stale data, collapsed volume). Reasons name every trigger and hold with its numbers;
    a hold with no trigger is still reported, with retrain False."""
    triggers, holds = _triggers(figures, thresholds), _holds(figures, thresholds)
    if triggers and not holds:
        return Decision(True, triggers)
    return Decision(False, holds + [f"would retrain: {r}" for r in triggers] if holds else [])
