"""Out-of-sample calibration of the quantile members' p10 / p90 (pure: no Dagster, no I/O).

Why: LightGBM quantile boosters are shrunk towards the middle by their regularisation. At
backtest origins their p90 was too low for the most valuable customers (11-21% of the top
decile of p90 above it, 10% nominal) and their p10 too high there (up to 17% below it): right
on average, wrong where the customers that matter are.

The map: the validation rows (the newest cutoff of the member's frame, never a training row;
it also decided when boosting stopped) are cut into bins by the member's own forecast q, and
each bin gets the factor c = the alpha-quantile of y / q over its rows, so that a share alpha of
them lies below c * q. A forecast q is then c(q) * q, c(q) interpolated linearly in log(q)
between the bins' median forecasts (flat beyond the outer ones), so two customers with nearly
the same q get nearly the same bound. A factor is 1 (the booster's bound stays) where that
already puts the same validation rows on the same side as the quantile does: where fewer than
10% of a bin's customers buy, the 90th percentile of their value is 0, and so is any bound
below the smallest purchase; p10 is 0 where more than 10% buy nothing.
Rows with q <= 0 stay at 0 (no ratio). Bins hold at least MIN_BIN_ROWS rows (fewer bins when
the validation cutoff is small); with fewer than 2 * MIN_BIN_ROWS positive forecasts there is
no map and the forecasts are the booster's.
"""

from __future__ import annotations

import numpy as np

N_BINS = 10
MIN_BIN_ROWS = 100


def fit_quantile_map(q: np.ndarray, y: np.ndarray, alpha: float, n_bins: int = N_BINS,
                     min_bin_rows: int = MIN_BIN_ROWS) -> dict[str, list[float]] | None:
    """{"centers": median log(q) per bin, "factors": c per bin} from held-out forecasts q and
    labels y, or None when there are too few positive forecasts (module docstring)."""
    q, y = np.asarray(q, dtype=float), np.clip(np.asarray(y, dtype=float), 0.0, None)
    ok = np.isfinite(q) & np.isfinite(y) & (q > 0)
    q, y = q[ok], y[ok]
    bins = min(n_bins, len(q) // min_bin_rows)
    if bins < 2:
        return None
    order = np.argsort(q, kind="stable")
    centers, factors = [], []
    for idx in np.array_split(order, bins):
        centers.append(float(np.median(np.log(q[idx]))))
        factors.append(_factor(y[idx] / q[idx], alpha))
    return {"centers": centers, "factors": factors}


def _factor(ratio: np.ndarray, alpha: float) -> float:
    """The alpha-quantile c of y / q, or 1 (the booster's bound unchanged) when 1 puts the same
    rows on the same side as c: above it for an upper bound (alpha >= 0.5: c <= 1 < the next
    ratio), below it for a lower one (the previous ratio < 1 <= c). Where most customers buy
    nothing this keeps the booster's small positive p90 instead of an equally valid 0."""
    c = float(np.quantile(ratio, alpha))
    if alpha >= 0.5:
        nxt = ratio[ratio > c]
        return 1.0 if c <= 1.0 < (nxt.min() if nxt.size else np.inf) else c
    prev = ratio[ratio < c]
    return 1.0 if (prev.max() if prev.size else -np.inf) < 1.0 <= c else c


def apply_quantile_map(q: np.ndarray, qmap: dict[str, list[float]] | None) -> np.ndarray:
    """The calibrated forecasts c(q) * q (q itself without a map; q <= 0 stays)."""
    q = np.asarray(q, dtype=float)
    if not qmap:
        return q
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.interp(np.log(np.where(q > 0, q, 1.0)), qmap["centers"], qmap["factors"])
    return np.where(q > 0, c * q, q)


def describe(qmap: dict[str, list[float]] | None) -> str:
    """One line for notes and metadata."""
    if not qmap:
        return "no calibration map (too few positive forecasts on the validation cutoff)"
    f = qmap["factors"]
    return (f"calibrated on the validation cutoff in {len(f)} bins of its own forecast: factors "
            f"{f[0]:.2f} (lowest bin) .. {f[-1]:.2f} (highest), "
            f"range {min(f):.2f}-{max(f):.2f}")
