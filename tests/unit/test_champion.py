"""Champion selection rule and promotion gate on small hand-made backtest tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import champion


def table(rows: dict[str, dict[str, float]], origins=("2025-01-01", "2025-02-01")) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "origin": o, "metric": k, "value": v}
                         for m, metrics in rows.items() for o in origins for k, v in metrics.items()])


GOOD = {"gini": 0.6, "mae": 10.0, "total_ratio": 1.0, "decile_calibration_error": 0.2}


def test_highest_gini_that_passes_the_guard_rails_wins():
    t = table({"a": GOOD, "b": {**GOOD, "gini": 0.7, "total_ratio": 1.6},  # biased: excluded
               "c": {**GOOD, "gini": 0.65}, "historical_rate": {**GOOD, "gini": 0.9}})
    sel = champion.select_champion(t)
    assert sel.champion == "c" and not sel.default_rule
    why = sel.table.set_index("model").loc["b", "why_excluded"]
    assert "total_ratio 1.6 outside" in why
    assert "historical_rate" not in set(sel.table["model"])


def test_ties_on_gini_go_to_the_lower_mae():
    t = table({"a": {**GOOD, "gini": 0.600, "mae": 12.0}, "b": {**GOOD, "gini": 0.595, "mae": 9.0}})
    assert champion.select_champion(t).champion == "b"


def test_when_no_candidate_passes_all_are_ranked_and_the_reason_says_so():
    t = table({"a": {**GOOD, "decile_calibration_error": 0.9}, "b": {**GOOD, "gini": 0.5, "total_ratio": 2.0}})
    sel = champion.select_champion(t)
    assert sel.champion == "a" and "no candidate passes the guard rails" in sel.reason


def test_candidates_are_compared_on_shared_origins_only():
    t = pd.concat([table({"a": GOOD}, origins=("o1", "o2")),
                   table({"a": {**GOOD, "gini": 0.9}}, origins=("o3",)),
                   table({"b": {**GOOD, "gini": 0.8}}, origins=("o3",))])
    sel = champion.select_champion(t)
    assert sel.origins == ["o3"] and sel.champion == "a"


def test_no_origins_uses_the_documented_default():
    empty = pd.DataFrame(columns=["model", "origin", "metric", "value"])
    sel = champion.select_champion(empty)
    assert sel.champion == "bgnbd_gg" and sel.default_rule and "default rule" in sel.reason


def test_promotion_gate_refuses_a_worse_challenger():
    d = champion.promote({"gini": 0.60, "mae": 10.0}, {"gini": 0.50, "mae": 10.0}, tolerance=0.02)
    assert not d.promote and "gini" in d.reason
    assert d.numbers["gini"] == {"current": 0.60, "challenger": 0.50, "bound": pytest.approx(0.588)}
    d = champion.promote({"gini": 0.60, "mae": 10.0}, {"gini": 0.61, "mae": 11.0}, tolerance=0.02)
    assert not d.promote and "mae" in d.reason


def test_promotion_gate_accepts_within_tolerance_and_without_a_champion():
    assert champion.promote({"gini": 0.60, "mae": 10.0}, {"gini": 0.595, "mae": 10.1}, 0.02).promote
    assert champion.promote(None, {"gini": 0.1, "mae": 1.0}).promote
    with pytest.raises(ValueError, match="needs mae"):
        champion.promote({"gini": 0.6}, {"gini": 0.7})


def test_candidate_beating_both_baselines_on_gini_and_mae_wins_over_a_better_ranker():
    rows = []
    for model, gini, mae in (("bgnbd_gg", 0.70, 10.0), ("pareto_gg", 0.71, 10.2),
                             ("gbm_tweedie", 0.75, 11.0), ("rfm_stack", 0.72, 9.8)):
        for metric, value in (("gini", gini), ("mae", mae), ("total_ratio", 1.0),
                              ("decile_calibration_error", 0.1)):
            rows.append({"model": model, "origin": "2020-01-01", "metric": metric, "value": value})
    sel = champion.select_champion(pd.DataFrame(rows))
    assert sel.champion == "rfm_stack"
    assert "beat every baseline" in sel.reason
    no_dom = pd.DataFrame([r for r in rows if r["model"] != "rfm_stack"])
    sel = champion.select_champion(no_dom)
    assert sel.champion == "gbm_tweedie" and "no candidate beats every baseline" in sel.reason


def test_a_candidate_beating_both_baselines_has_the_wider_total_ratio_rail():
    base = {"bgnbd_gg": {**GOOD, "gini": 0.60, "mae": 16.0, "total_ratio": 0.93},
            "pareto_gg": {**GOOD, "gini": 0.61, "mae": 15.4, "total_ratio": 0.88}}
    low = {**GOOD, "gini": 0.65, "mae": 14.6, "total_ratio": 0.77}  # MAE-leaning, dominates
    sel = champion.select_champion(table({**base, "rfm_stack": low}))
    assert sel.champion == "rfm_stack"
    # the same total ratio without beating the baselines on MAE stays excluded
    sel = champion.select_champion(table({**base, "rfm_stack": {**low, "mae": 15.5}}))
    why = sel.table.set_index("model").loc["rfm_stack", "why_excluded"]
    assert sel.champion == "pareto_gg" and "total_ratio 0.77 outside [0.8, 1.25]" in why
    # below the wider rail it is excluded even when it dominates
    sel = champion.select_champion(table({**base, "rfm_stack": {**low, "total_ratio": 0.6}}))
    assert sel.champion == "pareto_gg"


def bootstrap(means: dict[str, float], noise: float, origins=("2025-01-01", "2025-02-01"),
              n: int = 200) -> dict[str, dict[str, list[float]]]:
    """Replicates as the backtest stores them: each model's value (Gini or total ratio) plus
    its own noise."""
    rng = np.random.default_rng(0)
    return {o: {m: list(g + rng.normal(0.0, noise, n)) for m, g in means.items()} for o in origins}


def test_the_total_ratio_rail_allows_for_the_bootstrap_noise_of_the_ratio():
    rows = {"bgnbd_gg": {**GOOD, "gini": 0.70, "mae": 15.0, "total_ratio": 0.68},
            "blend": {**GOOD, "gini": 0.69, "mae": 17.0, "total_ratio": 0.85}}
    t, ratio = table(rows), {m: r["total_ratio"] for m, r in rows.items()}
    # read without noise the rail excludes the better model on both metrics
    sel = champion.select_champion(t)
    assert sel.champion == "blend"
    assert "outside [0.8, 1.25]" in sel.table.set_index("model").loc["bgnbd_gg", "why_excluded"]
    # a few hundred customers: the ratio's SE ~0.08 (0.1 per origin), 0.12 short is noise
    sel = champion.select_champion(t, champion.Rule(), None, bootstrap(ratio, 0.1))
    assert sel.champion == "bgnbd_gg"
    assert 0.06 < sel.table.set_index("model").loc["bgnbd_gg", "total_ratio_se"] < 0.09
    # a large sample (SE ~0.01): the same shortfall fails, and the reason gives the noise
    sel = champion.select_champion(t, champion.Rule(), None, bootstrap(ratio, 0.014))
    why = sel.table.set_index("model").loc["bgnbd_gg", "why_excluded"]
    assert sel.champion == "blend" and "by more than 2 standard errors (0.0" in why
    # rail_z 0 reads the rail without noise again
    assert champion.select_champion(t, champion.Rule(rail_z=0), None,
                                    bootstrap(ratio, 0.1)).champion == "blend"


def test_a_gini_shortfall_ties_only_within_the_bootstrap_noise():
    rows = {"a": {**GOOD, "gini": 0.930, "mae": 20.0}, "b": {**GOOD, "gini": 0.924, "mae": 18.0}}
    t, gini = table(rows), {m: r["gini"] for m, r in rows.items()}
    # 0.006 short: a tie under the fixed tolerance (no replicates), so the lower MAE wins
    assert champion.select_champion(t).champion == "b"
    # replicates whose shortfall has SE ~0.001 (mean over 2 origins): 0.006 is no tie
    sel = champion.select_champion(t, champion.Rule(), bootstrap(gini, 0.001))
    assert sel.champion == "a" and "bootstrap standard errors" in sel.reason
    tol = sel.table.set_index("model")["tie_tolerance"]
    assert tol["a"] == 0.0 and 0.0015 < tol["b"] < 0.003
    # noisy replicates (SE ~0.005): a tie again, and the tolerance never exceeds the cap
    sel = champion.select_champion(t, champion.Rule(), bootstrap(gini, 0.005))
    assert sel.champion == "b"
    assert sel.table.set_index("model").loc["b", "tie_tolerance"] == champion.Rule().tie_tolerance


def test_a_shortfall_under_the_tie_floor_ties_however_small_its_noise():
    """Two highly correlated rankers (a BTYD model and rfm_stack on its forecasts): their
    difference has a tiny bootstrap SE, yet 0.0006 of Gini is no reason to take a 5% worse MAE."""
    rows = {"pareto": {**GOOD, "gini": 0.8048, "mae": 22.3}, "stack": {**GOOD, "gini": 0.8042, "mae": 21.2}}
    t, gini = table(rows), {m: r["gini"] for m, r in rows.items()}
    sel = champion.select_champion(t, champion.Rule(), bootstrap(gini, 0.0001))
    assert sel.champion == "stack" and "at least 0.001" in sel.reason
    assert sel.table.set_index("model").loc["stack", "tie_tolerance"] == pytest.approx(0.001)
    assert champion.select_champion(t, champion.Rule(tie_floor=0.0), bootstrap(gini, 0.0001)).champion == "pareto"
    # beyond the floor the bootstrap alone decides: 0.0016 short with SE ~0.0001 is no tie
    far = table({**rows, "stack": {**rows["stack"], "gini": 0.8032}})
    assert champion.select_champion(far, champion.Rule(), bootstrap({"pareto": 0.8048, "stack": 0.8032},
                                                                    0.0001)).champion == "pareto"


def test_the_reason_says_whether_a_tie_was_broken_and_by_what():
    rows = {"a": {**GOOD, "gini": 0.930, "mae": 20.0}, "b": {**GOOD, "gini": 0.924, "mae": 18.0}}
    t, gini = table(rows), {m: r["gini"] for m, r in rows.items()}
    alone = champion.select_champion(t, champion.Rule(), bootstrap(gini, 0.001)).reason
    assert alone.startswith("a: best mean gini 0.9300, no other candidate tied (next: b 0.9240, "
                            "short by more than its tie of 0.00")
    assert "broken" not in alone
    tied = champion.select_champion(t, champion.Rule(), bootstrap(gini, 0.005)).reason
    assert tied.startswith("b: best mean gini up to noise (0.9240 vs a's 0.9300; 2 tied, broken by "
                           "the lowest mae: 18)")
    both = champion.select_champion(table({**rows, "a": {**rows["a"], "mae": 17.0}}),
                                    champion.Rule(), bootstrap(gini, 0.005)).reason
    assert both.startswith("a: best mean gini 0.9300, and the lowest mae (17) of the 2 tied over")
    only = champion.select_champion(table({"a": rows["a"]})).reason
    assert only.startswith("a: the only candidate left, mean gini 0.9300 over 2 shared origin(s)")


def test_missing_replicates_fall_back_to_the_fixed_tolerance():
    rows = {"a": {**GOOD, "gini": 0.930, "mae": 20.0}, "b": {**GOOD, "gini": 0.924, "mae": 18.0}}
    partial = bootstrap({"a": 0.930}, 0.001)  # b has none
    sel = champion.select_champion(table(rows), champion.Rule(), partial)
    assert sel.champion == "b" and "no bootstrap replicates" in sel.reason
