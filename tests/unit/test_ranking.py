"""Activation logic of lib/ranking: segments, priority with exploration, audiences, exports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import ranking


def make_scores(n_warm=900, n_cold=100, n_unsure=150, seed=1) -> pd.DataFrame:
    """Warm users with distinct values; the first n_unsure of them have a wide interval;
    cold starts with value 0 (the usual cold-start forecast) and no interval."""
    rng = np.random.default_rng(seed)
    value = rng.permutation(np.arange(1, n_warm + 1, dtype=float))
    p10, p90 = value * 0.8, value * 1.2
    p90[:n_unsure] = value[:n_unsure] * 10
    frame = pd.DataFrame({
        "user_id": [f"w{i}" for i in range(n_warm)] + [f"c{i}" for i in range(n_cold)],
        "predicted_value": np.r_[value, np.zeros(n_cold)],
        "p10": np.r_[p10, np.full(n_cold, np.nan)], "p90": np.r_[p90, np.full(n_cold, np.nan)],
        "p_alive": np.r_[rng.uniform(0.05, 0.99, n_warm), np.full(n_cold, np.nan)],
        "cold_start": np.r_[np.zeros(n_warm, bool), np.ones(n_cold, bool)],
    })
    return ranking.annotate(frame)[0]


def by_rank(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("rank").reset_index(drop=True)


def test_thresholds_reproduce_the_shares_on_warm_users_only():
    rng = np.random.default_rng(0)
    value = np.r_[rng.permutation(np.arange(1.0, 1001.0)), np.full(100, 1e6)]  # cold starts valued huge
    cold = np.r_[np.zeros(1000, bool), np.ones(100, bool)]
    th = ranking.segment_thresholds(value, cold)
    assert th == {"high": 801.0, "medium": 501.0}
    seg = ranking.assign_segments(value, cold, th)
    sizes = pd.Series(seg).value_counts().to_dict()
    assert sizes == {"low": 500, "medium": 300, "high": 200, "new": 100}
    assert set(seg) <= set(ranking.SEGMENTS)


def test_single_user_with_stored_thresholds_gets_the_batch_segment():
    value = np.array([5.0, 3.0, 3.0, 9.0, 1.0, 3.0, 7.0, 0.0, 2.0, 4.0, 6.0])
    cold = np.array([False] * 10 + [True])
    th = ranking.segment_thresholds(value, cold)
    batch = ranking.assign_segments(value, cold, th)
    for i in range(len(value)):
        assert ranking.assign_segments(value[i:i + 1], cold[i:i + 1], th)[0] == batch[i]
    # the three users tied at 3.0 share one segment, whatever the rank cut
    assert len(set(batch[[1, 2, 5]])) == 1


def test_empty_tier_gets_an_infinite_threshold_and_nobody():
    th = ranking.segment_thresholds(np.array([5.0, 1.0]), np.array([False, False]))
    assert th["high"] == float("inf")  # round(0.2 * 2) = 0 users
    assert list(ranking.assign_segments(np.array([5.0, 1.0]), np.array([False, False]), th)) == ["medium", "low"]


def test_uncertain_flags_wide_intervals_and_single_purchases_of_warm_users_only():
    value = np.array([10.0, 10.0, 10.0, 10.0, 0.0, 10.0])
    p10 = np.array([5.0, 0.0, np.nan, 5.0, 0.0, 0.0])
    p90 = np.array([15.0, 40.0, np.nan, 15.0, 3.0, 40.0])
    freq = np.array([3, 3, 3, 0, 3, np.nan])
    cold = np.array([False, False, False, False, False, True])
    flags = ranking.uncertain(value, cold, p10, p90, freq, max_relative_width=2.0, min_frequency=1)
    assert list(flags) == [False, True, False, True, True, False]


def test_every_top_k_prefix_reserves_the_exploration_share():
    share = 0.1
    ranked = by_rank(ranking.priority(make_scores(), exploration_share=share, seed=3))
    candidate = (ranked["cold_start"] | ranked["uncertain"]).to_numpy()
    assert candidate.sum() == 250  # 100 new + 150 uncertain: enough for all 100 slots
    counts = candidate.cumsum()
    for k in (1, 9, 10, 11, 19, 20, 37, 100, 250, 999, 1000):
        assert counts[k - 1] >= int(np.floor(k * share + 1e-9)), k
    k = np.arange(1, len(ranked) + 1)
    assert (counts >= np.floor(k * share + 1e-9)).all()
    assert ranked["explore"].sum() == 100 and sorted(ranked["rank"]) == list(range(1, 1001))


def test_exploit_slots_follow_predicted_value():
    ranked = by_rank(ranking.priority(make_scores(), exploration_share=0.2))
    exploit = ranked.loc[~ranked["explore"], "predicted_value"].to_numpy()
    assert (np.diff(exploit) <= 0).all()
    assert ranked["user_id"].is_unique


def test_cold_starts_are_not_starved_by_uncertain_high_value_users():
    scores = make_scores()
    top10 = by_rank(ranking.priority(scores, exploration_share=0.1)).head(100)
    assert top10["cold_start"].sum() >= 4  # half of the 10 exploration slots, new first
    assert top10["uncertain"].sum() >= 4
    without = by_rank(ranking.priority(scores, exploration_share=0.0)).head(100)
    assert without["cold_start"].sum() == 0  # what exploration is there to prevent


def test_exploration_picks_each_pool_by_optimistic_value():
    scores = make_scores()
    scores.loc[scores["cold_start"], "p90"] = np.arange(100.0)  # an interval for new users too
    ranked = by_rank(ranking.priority(scores, exploration_share=0.1))
    picks = ranked.head(200)[ranked.head(200)["explore"]]  # 20 slots, alternating new first
    for pool in (picks[picks["cold_start"]], picks[~picks["cold_start"]]):
        optimistic = np.fmax(pool["p90"], pool["predicted_value"]).to_numpy()
        assert len(pool) == 10 and (np.diff(optimistic) <= 0).all()
    assert picks["p90"].iloc[0] == 99.0  # slot 10: the new user with the highest p90


def test_fewer_candidates_than_slots_fills_the_rest_by_value():
    scores = make_scores(n_warm=50, n_cold=3, n_unsure=0)
    ranked = by_rank(ranking.priority(scores, exploration_share=0.5))
    assert ranked["explore"].sum() == 3
    assert set(ranked.loc[:5, "user_id"]) >= {"c0", "c1", "c2"}  # slots 2, 4, 6
    assert sorted(ranked["rank"]) == list(range(1, 54))


def test_priority_is_deterministic_and_independent_of_row_order():
    scores = make_scores()
    a = ranking.priority(scores, seed=7).set_index("user_id")["rank"]
    b = ranking.priority(scores.sample(frac=1.0, random_state=5).reset_index(drop=True), seed=7).set_index("user_id")["rank"]
    assert a.equals(ranking.priority(scores, seed=7).set_index("user_id")["rank"])
    assert a.sort_index().equals(b.sort_index())
    c = ranking.priority(scores, seed=8).set_index("user_id")["rank"]
    assert not a.sort_index().equals(c.sort_index())  # the seed rotates the tied cold starts


def test_priority_rejects_duplicate_users_and_missing_values():
    scores = make_scores(n_warm=5, n_cold=1, n_unsure=0)
    with pytest.raises(ValueError, match="duplicated user_id"):
        ranking.priority(pd.concat([scores, scores.head(1)]))
    with pytest.raises(ValueError, match="missing values"):
        ranking.priority(scores.assign(predicted_value=[1.0, np.nan, 2.0, 3.0, 4.0, 0.0]))


def test_audiences_order_and_size():
    scores = make_scores().assign(margin_rate=lambda f: np.where(f["user_id"] == "w0", np.nan, 0.5))
    scores.loc[scores["user_id"] == "w1", "margin_rate"] = 1.0
    out = ranking.audiences(ranking.priority(scores), k=25)
    assert set(out) == {"top_value", "top_margin", "churn_risk_high_value", "priority"}
    for name, frame in out.items():
        assert list(frame.columns) == ranking.AUDIENCE_COLUMNS and len(frame) == 25, name
        assert list(frame["rank"]) == list(range(1, 26)) and frame["user_id"].is_unique
        assert (np.diff(frame["score"]) <= 0).all(), name
    expected = scores.nlargest(25, "predicted_value")["user_id"].tolist()
    assert out["top_value"]["user_id"].tolist() == expected
    margin = scores["predicted_value"] * scores["margin_rate"].fillna(1.0)
    assert out["top_margin"]["user_id"].tolist() == scores.loc[margin.nlargest(25).index, "user_id"].tolist()
    churn = out["churn_risk_high_value"]
    assert (churn["segment"] == "high").all()
    high = scores[scores["segment"] == "high"]
    assert np.allclose(churn["score"], np.sort(1 - high["p_alive"].to_numpy())[::-1][:25])
    assert out["priority"]["user_id"].tolist() == by_rank(ranking.priority(scores)).head(25)["user_id"].tolist()
    assert len(ranking.audiences(scores, k=5000)["top_value"]) == len(scores)


def test_write_audiences_twice_keeps_one_file_each_with_the_second_content(tmp_path):
    scores = ranking.priority(make_scores())
    paths = ranking.write_audiences(ranking.audiences(scores, k=10), tmp_path)
    second = ranking.audiences(scores, k=3)
    assert ranking.write_audiences(second, tmp_path) == paths
    names = {p.name for ps in paths.values() for p in ps}
    assert names == {f"{a}.{ext}" for a in second for ext in ("csv", "parquet")}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporary files left
    for name, (csv, parquet) in paths.items():
        pd.testing.assert_frame_equal(pd.read_parquet(parquet), second[name])
        assert pd.read_csv(csv)["user_id"].tolist() == second[name]["user_id"].tolist()


def test_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    first = ranking.audiences(ranking.priority(make_scores()), k=4)
    ranking.write_audiences(first, tmp_path)

    def broken(self, path, *args, **kwargs):
        open(path, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        ranking.write_audiences(ranking.audiences(ranking.priority(make_scores()), k=2), tmp_path)
    monkeypatch.undo()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "top_value.parquet"), first["top_value"])


def test_summary_counts_and_value_distribution():
    scores = make_scores()
    s = ranking.summary(scores)
    assert s["customers_scored"] == 1000 and s["cold_starts"] == 100 and s["uncertain"] == 150
    assert s["segment_sizes"] == {"high": 180, "medium": 270, "low": 450, "new": 100}
    q = s["predicted_value_quantiles"]
    assert q["max"] == 900.0 and q["p50"] == pytest.approx(scores["predicted_value"].median())
    assert q["p50"] <= q["p90"] <= q["p99"] <= q["max"]
    assert s["total_predicted_value"] == pytest.approx(900 * 901 / 2)
    empty = ranking.summary(scores.head(0))
    assert empty["customers_scored"] == 0 and empty["predicted_value_quantiles"]["max"] is None
