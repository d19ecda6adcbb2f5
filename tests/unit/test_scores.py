"""scores.partition_rows: the table's rows of one partition, one per user, ordered by rank."""

import numpy as np
import pandas as pd

from ltv_pipeline.lib import ranking, scores


def _forecast(n: int, seed: int = 3) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    value = np.round(rng.gamma(0.6, 40.0, n), 1)  # rounded: many ties, broken by the seed
    cold = rng.random(n) < 0.2
    value[cold] = 5.0
    frame = pd.DataFrame({
        "user_id": [f"u{i:05d}" for i in rng.permutation(n)], "predicted_value": value,
        "p10": value * 0.5, "p90": value * rng.uniform(1.2, 4.0, n), "p_alive": rng.random(n),
        "expected_purchases": value / 30, "model": "m/v1", "cold_start": cold,
        "margin_rate": 0.4, "top_features": None,
    })
    used = {"champion": "m/v1", "horizon_days": 90, "explained_by": None,
            "segment_thresholds": ranking.segment_thresholds(value, cold)}
    return frame, used


def test_rows_are_one_per_user_in_rank_order_with_the_table_columns():
    forecast, used = _forecast(5000)
    rows = scores.partition_rows("2024-03-01", forecast, used, exploration_share=0.2, seed=1)
    assert list(rows.columns) == list(scores.COLUMNS)
    assert rows["rank"].tolist() == list(range(1, 5001))
    assert rows.index.equals(pd.RangeIndex(5000))
    assert sorted(rows["user_id"]) == sorted(forecast["user_id"])
    # each user keeps its own forecast through the reordering
    by_user = forecast.set_index("user_id")["p90"]
    assert np.allclose(rows["p90"].to_numpy(), by_user.loc[rows["user_id"]].to_numpy())
    assert (rows["as_of_date"] == pd.Timestamp("2024-03-01").date()).all()
    # the same order priority() gives
    annotated, _ = ranking.annotate(forecast, used["segment_thresholds"])
    ranked = ranking.priority(annotated, 0.2, seed=1 + pd.Timestamp("2024-03-01").toordinal())
    assert rows["user_id"].tolist() == ranked.sort_values("rank")["user_id"].tolist()


def test_an_empty_forecast_gives_no_rows():
    forecast, used = _forecast(10)
    rows = scores.partition_rows("2024-03-01", forecast.iloc[:0], used, exploration_share=0.1)
    assert rows.empty and list(rows.columns) == list(scores.COLUMNS)
