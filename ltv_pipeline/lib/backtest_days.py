"""Backtest origins built from the day table when the planned ones cannot be scored (pure).

The planned origins (lib/cutoffs.py) are A - H - k * spacing: with a history shorter than about
H + the spacings (CDNOW's classic split: 273 days of history, H = 273) none has a complete label
window, and the champion would be the default rule's pick with no evidence. The rule used then
(fallback_plan), A the scoring date and S the first day with activity:
  - backtest horizon h = min(H, (A - S) - MIN_ORIGIN_HISTORY_DAYS - (n_origins - 1) * spacing):
    the longest horizon at which n_origins origins, spacing days apart, each leave
    MIN_ORIGIN_HISTORY_DAYS of history (enough for rfm_stack's own training cutoffs), fit;
  - origins A - h - k * spacing, k = 0 .. n_origins - 1.
Candidates are evaluated at h, not H: the leaderboard says so (backtest_horizon_days), and the
champion chosen there is applied at H (rfm_stack by its documented scaling rule, BTYD natively).
Summaries and labels come from the same day table (lib/stack.summary_at / labels_at), which
holds only rows <= A; only the Feast-fed LightGBM members are absent (their marts do not exist).
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from ltv_pipeline.lib import stack
from ltv_pipeline.lib.backtest import OriginData

MIN_ORIGIN_HISTORY_DAYS = 120
MIN_BACKTEST_HORIZON_DAYS = 28


def fallback_plan(as_of: date, horizon_days: int, data_start: date, n_origins: int = 3,
                  spacing_days: int = 30) -> tuple[int, list[date]]:
    """(backtest horizon h, origins) by the module rule; (0, []) when even
    MIN_BACKTEST_HORIZON_DAYS does not fit."""
    room = (as_of - data_start).days - MIN_ORIGIN_HISTORY_DAYS - (n_origins - 1) * spacing_days
    h = min(horizon_days, room)
    if h < min(MIN_BACKTEST_HORIZON_DAYS, horizon_days):
        return 0, []
    return h, sorted(as_of - timedelta(days=h + k * spacing_days) for k in range(n_origins))


def origin_data(days: pd.DataFrame, origins: list[date], horizon_days: int,
                as_of: date) -> list[OriginData]:
    """OriginData per origin from the day table's rows <= as_of: summary (+ revenue_total),
    complete labels over (origin, origin + h] and the day rows for rfm_stack."""
    days = stack.history(stack.normalise_days(days), as_of)
    out = []
    for o in origins:
        if o + timedelta(days=horizon_days) > as_of:
            raise ValueError(f"origin {o} + {horizon_days} days passes the scoring date {as_of}")
        summary = stack.summary_at(days, o)
        labels = pd.DataFrame({"user_id": summary["user_id"],
                               "value": stack.labels_at(days, o, horizon_days, summary["user_id"])})
        out.append(OriginData(o, summary, labels, days=days))
    return out
