"""Assembling the model families from the marts: BTYD per cutoff, the supervised training
frame (features + BTYD outputs + labels), and a cohort revenue forecast. No Dagster imports."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from ltv_pipeline.lib import btyd

BTYD_COUNT_MODELS = ("bgnbd", "pareto", "mbgnbd")
# BTYD outputs the hybrid LightGBM model takes as features (fitted at each training cutoff).
HYBRID_FEATURES = ["btyd_expected_purchases", "btyd_p_alive", "btyd_expected_spend", "btyd_value"]
CATEGORICAL = ("country", "device", "acquisition_source", "signup_cohort", "top_season")
# Early stopping needs a validation cutoff after at least one training cutoff.
MIN_TRAIN_CUTOFFS = 2
MIN_TRAIN_ROWS = 200


@dataclass
class BTYDModel:
    """A count model with its spend model: what a BTYD forecast needs, picklable."""

    cutoff: str
    count: btyd.BTYDFit
    spend: btyd.SpendFit
    fit_seconds: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.count.model}_gg"

    def predict(self, summary: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
        return btyd.predict(self.count, self.spend, summary, horizon_days)

    def params(self) -> dict[str, float]:
        return {**self.count.params, **{f"gg_{k}": v for k, v in self.spend.params.items()}}

    def describe(self) -> dict[str, object]:
        return {
            "params": self.params(), "penalizer": self.count.penalizer,
            "converged": self.count.converged, "fallback": self.count.fallback,
            "notes": self.count.notes + self.spend.notes, "n_customers": self.count.n_customers,
            "gg_customers": self.spend.n_fitted, "fit_seconds": round(self.fit_seconds, 3),
        }


def fit_btyd_models(summary: pd.DataFrame, cutoff: date | str,
                    models=BTYD_COUNT_MODELS) -> dict[str, BTYDModel]:
    """Fit each count model and one shared Gamma-Gamma on one cutoff's summary."""
    summary = summary[["user_id", "frequency", "recency", "T", "monetary_value"]]
    t0 = time.perf_counter()
    spend = btyd.fit_gamma_gamma(summary)
    spend_s = time.perf_counter() - t0
    out = {}
    for model in models:
        t0 = time.perf_counter()
        count = btyd.fit_btyd(summary, model=model)
        fitted = BTYDModel(str(cutoff), count, spend, time.perf_counter() - t0 + spend_s)
        out[fitted.name] = fitted
    return out


def hybrid_frame(pred: pd.DataFrame, cutoff) -> pd.DataFrame:
    """user_id, cutoff_date and HYBRID_FEATURES from a BTYD model's predict() rows at one cutoff:
    the LightGBM hybrid member's BTYD inputs, in training and in scoring alike."""
    return pd.DataFrame({
        "user_id": pred["user_id"].to_numpy(), "cutoff_date": cutoff,
        "btyd_expected_purchases": pred["expected_purchases"].to_numpy(),
        "btyd_p_alive": pred["p_alive"].to_numpy(),
        "btyd_expected_spend": pred["expected_spend"].to_numpy(),
        "btyd_value": pred["predicted_value"].to_numpy(),
    })


def btyd_features(summaries: pd.DataFrame, horizon_days: int, model: str = "bgnbd") -> pd.DataFrame:
    """HYBRID_FEATURES per (user_id, cutoff_date), from a BTYD model fitted at each cutoff on
    that cutoff's summary only (so no cutoff sees a later one)."""
    parts = []
    for cutoff, summary in summaries.groupby("cutoff_date", sort=True):
        fitted = fit_btyd_models(summary, cutoff, models=(model,))[f"{model}_gg"]
        parts.append(hybrid_frame(fitted.predict(summary, horizon_days), cutoff))
    if not parts:
        return pd.DataFrame(columns=["user_id", "cutoff_date", *HYBRID_FEATURES])
    return pd.concat(parts, ignore_index=True)


def feature_columns(frame: pd.DataFrame, service_features: list[str]) -> tuple[list[str], list[str]]:
    """(features, categorical) of a service present in the frame; booleans count as numeric."""
    present = [f for f in service_features if f in frame.columns]
    categorical = [f for f in present if f in CATEGORICAL]
    return present, categorical


def model_frame(features: pd.DataFrame, btyd_feats: pd.DataFrame,
                labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features joined with BTYD outputs (and labels when given) on (user_id, cutoff_date).
    Booleans become 0/1; users without a BTYD row (no purchase yet) get zero purchases."""
    key = ["user_id", "cutoff_date"]
    out = features.copy()
    out["cutoff_date"] = pd.to_datetime(out["cutoff_date"]).dt.date
    b = btyd_feats.copy()
    b["cutoff_date"] = pd.to_datetime(b["cutoff_date"]).dt.date
    out = out.merge(b, on=key, how="left", validate="one_to_one")
    out[HYBRID_FEATURES] = out[HYBRID_FEATURES].astype(float).fillna(0.0)
    for col in out.columns:
        if out[col].dtype == bool or str(out[col].dtype) == "boolean":
            out[col] = out[col].astype(float)
    if labels is not None:
        lab = labels[[*key, "value"]].copy()
        lab["cutoff_date"] = pd.to_datetime(lab["cutoff_date"]).dt.date
        out = out.merge(lab, on=key, how="inner", validate="one_to_one")
    return out


def supervised_note(train_cutoffs: tuple[date, ...] | list[date], n_rows: int) -> str | None:
    """Why supervised training cannot run, or None when it can."""
    if len(train_cutoffs) < MIN_TRAIN_CUTOFFS:
        return (f"history too short for supervised training at this horizon: "
                f"{len(train_cutoffs)} training cutoff(s) whose label window ends by the scoring "
                f"date (need {MIN_TRAIN_CUTOFFS}); the BTYD family carries on")
    if n_rows < MIN_TRAIN_ROWS:
        return f"only {n_rows} training rows (need {MIN_TRAIN_ROWS}); the BTYD family carries on"
    return None


@dataclass
class CohortForecast:
    table: pd.DataFrame  # cohort_month, month, actual / forecast revenue
    notes: list[str] = field(default_factory=list)


def cohort_forecast(cohort_revenue: pd.DataFrame, months_ahead: int) -> CohortForecast:
    """Monthly revenue per signup cohort, forecast months_ahead with Holt's exponential
    smoothing (damped trend) where a cohort has >= 6 months, else its recent mean."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    if cohort_revenue.empty:
        return CohortForecast(pd.DataFrame(columns=["cohort_month", "month", "revenue", "kind"]),
                              ["no cohort revenue before the scoring date"])
    df = cohort_revenue.copy()
    df["month"] = pd.to_datetime(df["activity_date"]).dt.to_period("M")
    monthly = df.groupby(["cohort_month", "month"], as_index=False)["revenue"].sum()
    rows, notes = [], []
    for cohort, part in monthly.groupby("cohort_month"):
        series = part.set_index("month")["revenue"]
        series = series.reindex(pd.period_range(series.index.min(), series.index.max(), freq="M"),
                                fill_value=0.0)
        future = pd.period_range(series.index.max() + 1, periods=months_ahead, freq="M")
        if len(series) >= 6:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = ExponentialSmoothing(series.to_numpy(float), trend="add", damped_trend=True).fit()
            values = np.clip(fit.forecast(months_ahead), 0.0, None)
        else:
            values = np.full(months_ahead, float(series.tail(3).mean()))
            notes.append(f"cohort {cohort}: {len(series)} month(s), recent mean used")
        rows += [(cohort, str(m), float(v), "actual") for m, v in series.items()]
        rows += [(cohort, str(m), float(v), "forecast") for m, v in zip(future, values)]
    table = pd.DataFrame(rows, columns=["cohort_month", "month", "revenue", "kind"])
    return CohortForecast(table, notes)
