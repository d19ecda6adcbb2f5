"""The day table rfm_stack and the day-table backtest learn from (pure, plus one SQL read).

dbt's intermediate.int_user_days_aggregated holds one row per user per active day over all
history (net revenue in the base currency, refunds netted). Everything here restricts it to a
cutoff's history (days <= D, i.e. ts < D + 1 day) or to a label window (D, D + H].
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from ltv_pipeline.lib import btyd

DAY_COLUMNS = ["user_id", "activity_date", "revenue", "is_purchase_day"]


def read_days(con, as_of: date, training_sample: bool = False) -> pd.DataFrame:
    """Day rows (DAY_COLUMNS) with activity_date <= as_of from intermediate.int_user_days_aggregated,
    ordered by user and day; training_sample: only the users of intermediate.int_training_users
    (the customers training cutoffs and backtest origins are built for). The order is part of
    the result: a rebuilt table returns its rows in another order, float sums over them
    (revenue_total) then differ in the last bit, and rfm_stack's boosters with them (a re-run
    of one predict moved a customer's forecast by 60)."""
    sample = (" and user_id in (select user_id from intermediate.int_training_users)"
              if training_sample else "")
    frame = con.execute(
        "select user_id, activity_date, revenue, is_purchase_day "
        "from intermediate.int_user_days_aggregated where activity_date <= ? "
        f"and (is_purchase_day or revenue <> 0){sample} order by user_id, activity_date",
        [as_of]).df()
    return normalise_days(frame)


def training_users(con) -> pd.Index:
    """The user ids of intermediate.int_training_users (dbt: all users up to the cap, else a
    fixed sample), as strings."""
    ids = con.execute("select user_id from intermediate.int_training_users").fetchnumpy()["user_id"]
    return pd.Index(ids.astype(str))


def normalise_days(days: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in DAY_COLUMNS if c not in days.columns]
    if missing:
        raise ValueError(f"day table lacks column(s) {missing}; has {list(days.columns)}")
    out = days[DAY_COLUMNS].copy()
    out["user_id"] = out["user_id"].astype(str)
    out["activity_date"] = pd.to_datetime(out["activity_date"]).dt.floor("D")
    out["revenue"] = out["revenue"].astype(float)
    out["is_purchase_day"] = out["is_purchase_day"].astype(bool)
    return out


def history(days: pd.DataFrame, cutoff: date) -> pd.DataFrame:
    """Rows of days <= cutoff (history is ts < cutoff + 1 day)."""
    return days[days["activity_date"] <= pd.Timestamp(cutoff)]


def summary_at(days: pd.DataFrame, cutoff: date) -> pd.DataFrame:
    """BTYD summary at cutoff (as marts.customer_btyd_summary: purchase days' net totals floored
    at 0, with mean_order_value: their mean over every purchase day, the first included) plus
    revenue_total (net revenue of every day <= cutoff)."""
    hist = history(days, cutoff)
    buys = hist[hist["is_purchase_day"]]
    tx = pd.DataFrame({"user_id": buys["user_id"], "ts": buys["activity_date"],
                       "amount": buys["revenue"].clip(lower=0.0)})
    summary = btyd.summary_from_transactions(tx, cutoff, order_value=True)
    total = hist.groupby("user_id")["revenue"].sum()
    summary["revenue_total"] = summary["user_id"].map(total).fillna(0.0).to_numpy(float)
    return summary


def labels_at(days: pd.DataFrame, cutoff: date, horizon_days: int, users: pd.Series) -> np.ndarray:
    """Net revenue in (cutoff, cutoff + H] per user in `users` (0 without activity)."""
    start = pd.Timestamp(cutoff)
    win = days[(days["activity_date"] > start)
               & (days["activity_date"] <= start + pd.Timedelta(days=horizon_days))]
    value = win.groupby("user_id")["revenue"].sum()
    return users.astype(str).map(value).fillna(0.0).to_numpy(float)
