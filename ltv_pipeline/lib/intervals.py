"""Out-of-sample calibration of the quantile members' p10 / p90 (pure: no Dagster, no I/O).

Why: LightGBM quantile boosters are shrunk towards the middle by their regularisation. On
held-out dates their p90 was too low for the most valuable customers (12-22% of the top
predicted decile above p90, 10% nominal) and too high for the least valuable (1-4% above),
and p10 likewise: right on average, wrong where the customers that matter are.

The map: the validation rows (the newest cutoff of the member's frame, never a training row;
it also decided when boosting stopped) are cut into bins by the member's own forecast q, and
each bin gets the factor c = the alpha-quantile of y / q over its rows, so that a share alpha of
them lies below c * q. A forecast q is then c(q) * q, c(q) interpolated linearly in log(q)
between the bins' median forecasts (flat beyond the outer ones), so two customers with nearly
the same q get nearly the same bound. A factor may be 0: where fewer than 10% of the customers
buy, the 90th percentile of their value IS 0.
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
        factors.append(float(np.quantile(y[idx] / q[idx], alpha)))
    return {"centers": centers, "factors": factors}


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
