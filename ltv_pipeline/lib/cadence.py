"""Error as a function of model age: how often to retrain (pure).

A model fitted at backtest origin O_i is scored, unchanged, at every later origin O_j (age
O_j - O_i days) on O_j's customers and labels, and compared with the model fitted at O_j
itself (age 0) on the same rows. Models: the BTYD candidates and rfm_stack, whose fitted
objects the backtest keeps (predict(summary, H) at any date); LightGBM members read Feast
frames per origin and are not aged here.

Recommended cadence (recommend): the largest measured age at which the aged model stays within
the promotion gate's tolerances of a fresh one on average over the models — Gini no more than
`gini_drop` lower (absolute) and MAE no more than `mae_rise` higher (relative) — else the
smallest measured age (the origin spacing): retrain at least that often. When no pair of
origins exists the cadence is unknown and said so.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from ltv_pipeline.lib import metrics


def age_table(models: dict[str, dict[str, object]], origins: dict[str, pd.DataFrame],
              horizon_days: int) -> pd.DataFrame:
    """model, trained_at, scored_at, age_days, mae, gini, fresh_mae, fresh_gini.

    models: origin ISO -> name -> fitted model; origins: origin ISO -> its summary with an
    `actual` column (the backtest's label)."""
    rows = []
    tags = sorted(origins)
    for j, scored in enumerate(tags):
        frame = origins[scored]
        actual = frame["actual"].to_numpy(float)
        for name in models.get(scored, {}):
            fresh = _score(models[scored][name], frame, horizon_days, actual)
            for trained in tags[:j + 1]:
                old = models.get(trained, {}).get(name)
                if old is None or fresh is None:
                    continue
                got = fresh if trained == scored else _score(old, frame, horizon_days, actual)
                if got is None:
                    continue
                age = (date.fromisoformat(scored) - date.fromisoformat(trained)).days
                rows.append({"model": name, "trained_at": trained, "scored_at": scored,
                             "age_days": age, "mae": got[0], "gini": got[1],
                             "fresh_mae": fresh[0], "fresh_gini": fresh[1]})
    return pd.DataFrame(rows, columns=["model", "trained_at", "scored_at", "age_days", "mae",
                                       "gini", "fresh_mae", "fresh_gini"])


def _score(model, frame: pd.DataFrame, horizon_days: int, actual: np.ndarray):
    pred = model.predict(frame, horizon_days)["predicted_value"].to_numpy(float)
    try:
        return metrics.mae(actual, pred), metrics.normalized_gini(actual, pred)
    except metrics.UndefinedMetricError:
        return None


def by_age(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and age: mean MAE ratio (aged / fresh) and mean Gini drop (fresh - aged)."""
    if table.empty:
        return pd.DataFrame(columns=["model", "age_days", "pairs", "mae_ratio", "gini_drop"])
    t = table.assign(mae_ratio=table["mae"] / table["fresh_mae"],
                     gini_drop=table["fresh_gini"] - table["gini"])
    return (t.groupby(["model", "age_days"], as_index=False)
            .agg(pairs=("mae", "size"), mae_ratio=("mae_ratio", "mean"),
                 gini_drop=("gini_drop", "mean")))


def recommend(table: pd.DataFrame, gini_drop: float = 0.01, mae_rise: float = 0.02) -> dict:
    """{"cadence_days", "reason", "by_age"} by the module rule."""
    ages = by_age(table)
    aged = ages[ages["age_days"] > 0]
    if aged.empty:
        return {"cadence_days": None, "by_age": ages.to_dict("records"),
                "reason": "fewer than two backtest origins: model age cannot be measured"}
    mean = aged.groupby("age_days")[["mae_ratio", "gini_drop"]].mean()
    ok = mean[(mean["gini_drop"] <= gini_drop) & (mean["mae_ratio"] <= 1 + mae_rise)]
    if len(ok):
        days = int(ok.index.max())
        reason = (f"models {days} days old stay within Gini -{gini_drop} and MAE +{mae_rise:.0%} "
                  f"of freshly trained ones (mean over models): retrain every {days} days or less")
    else:
        days = int(mean.index.min())
        reason = (f"already at {days} days a model is worse than a fresh one beyond Gini "
                  f"-{gini_drop} or MAE +{mae_rise:.0%}: retrain every {days} days (the origin "
                  "spacing) or more often")
    return {"cadence_days": days, "reason": reason, "by_age": ages.to_dict("records"),
            "mean_by_age": mean.reset_index().to_dict("records")}
