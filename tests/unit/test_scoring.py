"""Segments and the output contract of lib/scoring.forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltv_pipeline.lib import scoring


def test_forecast_segments_follow_given_thresholds():
    population = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "is_cold_start": [False, False, True]})
    summary = pd.DataFrame({"user_id": ["u1", "u2"]})
    models = {"bgnbd_gg": Const(1.0)}
    out = scoring.forecast(population, summary, 10, models, None, "bgnbd_gg", "bgnbd_gg/v1",
                           thresholds={"high": 5.0, "medium": 1.0})
    assert list(out["segment"]) == ["high", "high", "new"]
    out = scoring.forecast(population, summary, 10, models, None, "bgnbd_gg", "bgnbd_gg/v1",
                           thresholds={"high": 50.0, "medium": 10.0})
    assert list(out["segment"]) == ["medium", "medium", "new"]


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


def test_a_mapped_champion_scores_its_member_through_the_value_map():
    from ltv_pipeline.lib import backtest

    population = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "is_cold_start": [False, False, True]})
    summary = pd.DataFrame({"user_id": ["u1", "u2"]})
    champ = backtest.mapped("a_gg", {"gamma": 2.0, "k": 0.5}, "a_gg/v4")
    models = {"bgnbd_gg": Const(1.0), "a_gg": Const(3.0), "mapped_a_gg": champ}
    out = scoring.forecast(population, summary, 10, models, None, "mapped_a_gg", "mapped_a_gg/v1")
    assert list(out["predicted_value"]) == [450.0, 450.0, 0.0]  # 0.5 * (3 * 10)^2
    assert (out["model"] == "mapped_a_gg/v1").all()


class WithInterval(Const):
    def predict(self, summary, horizon_days):
        out = super().predict(summary, horizon_days)
        return out.assign(p10=out["predicted_value"] * 0.5, p90=out["predicted_value"] * 2.0)


def test_forecast_takes_the_champions_own_interval():
    population = pd.DataFrame({"user_id": ["u1", "u2"], "is_cold_start": [False, True]})
    summary = pd.DataFrame({"user_id": ["u1"]})
    models = {"bgnbd_gg": Const(1.0), "rfm_stack": WithInterval(2.0)}
    out = scoring.forecast(population, summary, 10, models, None, "rfm_stack", "rfm_stack/v1")
    assert list(out["predicted_value"]) == [20.0, 0.0]
    assert list(out["p10"]) == [10.0, 0.0] and list(out["p90"]) == [40.0, 0.0]
