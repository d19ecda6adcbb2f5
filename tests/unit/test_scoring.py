"""Segments and the output contract of lib/scoring.forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltv_pipeline.lib import scoring


def test_segments_rank_warm_users_and_mark_cold_starts_new():
    value = np.array([10.0, 0.0, 5.0, 1.0, 7.0, 3.0, 2.0, 9.0, 4.0, 6.0, 8.0])
    cold = np.array([False] * 10 + [True])
    seg = scoring.segments(value, cold)
    assert seg[10] == "new"
    assert list(seg[[0, 7]]) == ["high", "high"]  # top 20% of the 10 warm users
    assert sorted(seg[[4, 9, 2]]) == ["medium"] * 3  # next 30%
    assert (seg[[1, 3, 6, 5, 8]] == "low").all()


class Const:
    def __init__(self, v):
        self.v = v

    def predict(self, summary, horizon_days):
        return pd.DataFrame({"user_id": summary["user_id"], "predicted_value": self.v * horizon_days,
                             "p_alive": 0.5, "expected_purchases": 2.0, "expected_spend": 1.0})


class Blend:
    weights = {"a_gg": 0.25, "b_gg": 0.75}

    def combine(self, forecasts):
        return sum(w * forecasts[m] for m, w in self.weights.items())


def test_forecast_blend_and_cold_starts():
    population = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "is_cold_start": [False, False, True]})
    summary = pd.DataFrame({"user_id": ["u1", "u2"]})
    models = {"bgnbd_gg": Const(1.0), "a_gg": Const(1.0), "b_gg": Const(2.0), "blend": Blend()}
    out = scoring.forecast(population, summary, 10, models, None, "blend", "blend/v1")
    assert list(out.columns) == scoring.OUTPUT_COLUMNS
    assert list(out["predicted_value"]) == [17.5, 17.5, 0.0]  # 0.25 * 10 + 0.75 * 20
    assert list(out["expected_purchases"]) == [2.0, 2.0, 0.0]
    assert out["p_alive"].isna().tolist() == [False, False, True]
    assert list(out["cold_start"]) == [False, False, True] and out["segment"].iloc[2] == "new"
    assert out["p10"].isna().all() and (out["model"] == "blend/v1").all()
