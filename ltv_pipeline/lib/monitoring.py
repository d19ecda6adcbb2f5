"""The figures of a monitoring partition D (plain SQL over an open DuckDB connection; no Dagster).

Against the champion's training reference, the scoring date R of the training plan
(intermediate.int_cutoffs_planned, the plan the champion was selected on):
  - features: PSI and KS of each monitored feature, marts.customer_features at D vs at R;
  - predictions: PSI and KS of predicted_value, scores.ltv_scores at D vs at R;
  - realised_error: the forecasts stored for as_of_date D - H (H: the plan's horizon) against
    the value each of those users realised in (D - H, D], i.e. the label window of cutoff
    D - H, [D - H + 1 day, D + 1 day), computed as dbt's labels do (customer_labels.value: the
    sum of staging.stg_raw__transactions.net_amount_base, refunds netted, in the base
    currency); MAE, normalized Gini and total ratio (predicted / realised) next to the
    champion's backtest Gini and MAE. Not available (never zero) when no forecast was stored;
  - volume: transactions per day over the last VOLUME_DAYS days up to D vs the VOLUME_DAYS
    days up to R; freshness: the last transaction date on or before D and its lag to D.
Everything read for D obeys the time rule: no row at or after D + 1 day.

The monitored features are a documented subset of the ltv_model_v1 feature service (the
LightGBM family's inputs; the BTYD summary's frequency and recency are in it as well): the
behaviour a shift shows up in (spend per order, recent orders and revenue, purchase gaps,
refunds, margin, channels, browsing). Cumulative and age-like features (tenure_days,
days_since_signup, n_orders, revenue_total, signup_cohort...) are left out on purpose: they grow
with the calendar for every customer, so their PSI rises with the distance to R even when
behaviour is unchanged.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from ltv_pipeline.lib import drift, marts, metrics, scores, warehouse

MONITORED_FEATURES = (
    "frequency", "recency_days", "monetary_mean", "monetary_max",
    "revenue_30d", "orders_30d", "revenue_90d", "orders_90d", "revenue_180d", "orders_180d",
    "interpurchase_mean_days", "revenue_trend_90d", "refund_rate", "margin_share", "n_channels",
    "sessions_90d", "cart_adds_90d", "checkouts_90d", "cart_abandonment_rate_90d",
)
VOLUME_DAYS = 28
STAGING_TRANSACTIONS = "staging.stg_raw__transactions"


def _day(value) -> date:
    return pd.Timestamp(value).date()


def read_features(con: duckdb.DuckDBPyConnection, day, features=MONITORED_FEATURES) -> pd.DataFrame:
    """customer_features rows of cutoff `day` (user_id and the monitored columns)."""
    cols = ", ".join(f'"{f}"' for f in features)
    return con.execute(f"select user_id, {cols} from marts.customer_features "
                       f"where cutoff_date = {marts.in_list([day])}").df()


def read_scores(con: duckdb.DuckDBPyConnection, day) -> pd.DataFrame:
    """user_id, predicted_value, model of scores.ltv_scores for as_of_date `day` (may be empty)."""
    if not warehouse.has_table(con, scores.TABLE):
        return pd.DataFrame(columns=["user_id", "predicted_value", "model"])
    return con.execute(f"select user_id, predicted_value, model from {scores.TABLE} "
                       "where as_of_date = ?", [_day(day)]).df()


def realised_values(con: duckdb.DuckDBPyConnection, after, through) -> pd.DataFrame:
    """user_id, value: net revenue in the base currency (refunds subtracted) with
    after < transaction_date <= through, as customer_labels.value sums it."""
    return con.execute(
        f"select user_id, sum(net_amount_base) as value from {STAGING_TRANSACTIONS} "
        "where transaction_date > ? and transaction_date <= ? group by user_id",
        [_day(after), _day(through)]).df()


def volume_and_freshness(con: duckdb.DuckDBPyConnection, day, reference) -> tuple[dict, dict]:
    """Transactions per day in the VOLUME_DAYS days up to `day` vs up to `reference`; the last
    transaction date on or before `day`."""
    day, reference = _day(day), _day(reference)

    def per_day(end: date) -> float:
        n = con.execute(f"select count(*) from {STAGING_TRANSACTIONS} where transaction_date > ? "
                        "and transaction_date <= ?", [end - timedelta(days=VOLUME_DAYS), end]).fetchone()[0]
        return n / VOLUME_DAYS

    recent, before = per_day(day), per_day(reference)
    last = con.execute(f"select max(transaction_date) from {STAGING_TRANSACTIONS} "
                       "where transaction_date <= ?", [day]).fetchone()[0]
    volume = {"window_days": VOLUME_DAYS, "recent_rows_per_day": recent,
              "reference_rows_per_day": before, "ratio": recent / before if before else None}
    freshness = {"last_transaction_date": last.isoformat() if last else None,
                 "lag_days": (day - last).days if last else None}
    return volume, freshness


def realised_error(forecasts: pd.DataFrame, realised: pd.DataFrame) -> dict:
    """MAE, normalized Gini and total ratio of stored forecasts against realised values (users
    without a transaction in the window realised 0). A metric the data cannot define is left
    out with the reason, never set to 0."""
    joined = forecasts[["user_id", "predicted_value"]].merge(realised, on="user_id", how="left")
    actual = joined["value"].fillna(0.0).to_numpy(float)
    predicted = joined["predicted_value"].to_numpy(float)
    out: dict = {"n_users": int(len(joined)), "total_predicted": float(predicted.sum()),
                 "total_realised": float(actual.sum())}
    for name, fn in (("mae", metrics.mae), ("gini", metrics.normalized_gini),
                     ("total_ratio", metrics.total_ratio)):
        try:
            out[name] = fn(actual, predicted)
        except metrics.UndefinedMetricError as exc:
            out[name] = None
            out.setdefault("undefined", {})[name] = str(exc)
    return out


def _clean(value):
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else round(float(value), 6)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def figures(con: duckdb.DuckDBPyConnection, day, champion_metrics: dict | None = None,
            champion_ref: str | None = None, bins: int = 10) -> dict:
    """Every figure of monitoring partition `day` as a JSON-ready dict (see the module
    docstring). champion_metrics: the champion's backtest means (gini, mae), from the registry."""
    day = _day(day)
    plan = marts.read_plan(con)
    ref, horizon = plan.scoring_date, plan.horizon_days
    if day < ref:
        raise ValueError(f"monitoring date {day} is before the champion's training scoring date "
                         f"{ref}: there is nothing to compare against yet")
    cur_features, ref_features = read_features(con, day), read_features(con, ref)
    for which, frame, d in (("current", cur_features, day), ("reference", ref_features, ref)):
        if frame.empty:
            raise ValueError(f"marts.customer_features has no rows for cutoff {d} ({which}): "
                             f"materialize the scoring_features partition {d} first")
    table = drift.feature_drift(ref_features, cur_features, MONITORED_FEATURES, bins)
    out: dict = {"as_of": day.isoformat(), "reference_date": ref.isoformat(),
                 "horizon_days": horizon, "champion": champion_ref,
                 "features": {r.pop("feature"): r for r in table.to_dict("records")},
                 "unobserved_features": table.attrs.get("unobserved", [])}
    cur_scores, ref_scores = read_scores(con, day), read_scores(con, ref)
    if cur_scores.empty:
        raise ValueError(f"{scores.TABLE} has no rows for {day}: materialize ltv_scores for it first")
    if ref_scores.empty:
        out["predictions"] = {"available": False, "reference_date": ref.isoformat(),
                              "note": f"no scores stored for the reference date {ref}"}
    else:
        out["predictions"] = {"available": True, "reference_date": ref.isoformat(),
                              **drift.compare(ref_scores["predicted_value"],
                                              cur_scores["predicted_value"], bins)}
    forecast_date = day - timedelta(days=horizon)
    stored = read_scores(con, forecast_date)
    err: dict = {"forecast_date": forecast_date.isoformat(),
                 "window": f"({forecast_date}, {day}]"}
    if stored.empty:
        out["realised_error"] = {**err, "available": False,
                                 "note": f"no forecasts stored for {forecast_date} (D - {horizon} days)"}
    else:
        err |= {"available": True, "model": ", ".join(sorted(stored["model"].dropna().unique())),
                **realised_error(stored, realised_values(con, forecast_date, day))}
        champion_metrics = champion_metrics or {}
        err["reference_gini"] = champion_metrics.get("gini")
        err["reference_mae"] = champion_metrics.get("mae")
        err["reference_total_ratio"] = champion_metrics.get("total_ratio")
        out["realised_error"] = err
    out["volume"], out["freshness"] = volume_and_freshness(con, day, ref)
    return _clean(out)


def feature_table(figs: dict) -> pd.DataFrame:
    """The per-feature drift table of a figures dict (for metadata and the CLI)."""
    return pd.DataFrame([{"feature": f, **row} for f, row in figs["features"].items()])
