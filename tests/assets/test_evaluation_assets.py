"""Evaluation assets on a real small pipeline: synthetic log -> dbt -> Feast -> models ->
backtest -> champion pointer."""

from __future__ import annotations

import json

import pytest

from ltv_pipeline.lib import generator
from ltv_pipeline.lib.registry import ModelRegistry
from tests.assets.test_training_assets import home_env, meta, run_pipeline  # noqa: F401


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("log")
    generator.write(generator.generate(n_users=1200, seed=11), out)
    return out


@pytest.fixture(scope="module")
def evaluated(source, home_env):  # noqa: F811
    home = home_env("evaluated")
    result = run_pipeline(home, source, "2025-06-30", 90)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return home, result


def test_backtest_leaderboard_has_every_family_over_three_origins(evaluated):
    home, result = evaluated
    m = meta(result, "backtest")
    assert m["n_origins"] == 3 and m["origins"] == ["2025-01-31", "2025-03-02", "2025-04-01"]
    board = m["leaderboard"]
    for model in ("bgnbd_gg", "pareto_gg", "mbgnbd_gg", "historical_rate", "gbm_tweedie",
                  "gbm_hybrid", "rfm_stack", "blend"):
        assert f"| {model} " in board, model
    assert "gini" in board and "p10_p90_coverage" in board
    saved = json.loads((home / "evaluation" / "backtest.json").read_text())
    assert saved["run_id"] == result.run_id and saved["scoring_date"] == "2025-06-30"
    gbm_origins = {r["origin"] for r in saved["metrics"] if r["model"] == "gbm_tweedie"}
    assert gbm_origins <= set(saved["origins"]) and gbm_origins
    assert saved["backtest_horizon_days"] == 90
    ages = {(r["model"], r["age_days"]) for r in saved["model_age"]}
    assert {("rfm_stack", 0), ("rfm_stack", 60), ("bgnbd_gg", 30)} <= ages
    cadence = saved["retraining_cadence"]
    assert cadence["cadence_days"] in (30, 60) and m["retraining_cadence_days"] == cadence["cadence_days"]
    assert m["error_by_model_age"].startswith("![")
    stack_cov = [r["value"] for r in saved["metrics"]
                 if r["model"] == "rfm_stack" and r["metric"] == "p10_p90_coverage"]
    assert len(stack_cov) == 3 and all(0 < v <= 1 for v in stack_cov)
    maps = saved["value_maps"]  # the candidates without a value map of their own
    assert {"bgnbd_gg", "pareto_gg", "mbgnbd_gg"} <= set(maps)
    assert not {"rfm_stack", "blend", "historical_rate"} & set(maps)
    assert [c["origin"] for c in maps["pareto_gg"]["checks"]] == saved["origins"][1:]
    assert maps["pareto_gg"]["horizon_days"] == saved["backtest_horizon_days"] == 90
    assert all(vm["kept"] == (vm["mae_mapped"] < vm["mae"]) for vm in maps.values())
    assert "check_mae_mapped" in m["value_maps"]
    assert "| mapped_pareto_gg " in board  # its backtest at the later origins, on the leaderboard
    mapped_origins = {r["origin"] for r in saved["metrics"] if r["model"] == "mapped_pareto_gg"}
    assert mapped_origins == set(saved["origins"][1:])
    names = [r["model"] for r in saved["leaderboard"]]  # candidates and baselines first
    first = next(i for i, n in enumerate(names) if n.startswith("mapped_"))
    assert all(n.startswith("mapped_") for n in names[first:]) and first >= 8
    for part in (saved["leaderboard"][:first], saved["leaderboard"][first:]):
        assert [r["gini"] for r in part] == sorted((r["gini"] for r in part), reverse=True)


def test_champion_pointer_is_set_to_a_model_trained_for_the_scoring_date(evaluated):
    home, result = evaluated
    m = meta(result, "champion")
    registry = ModelRegistry(home / "models")
    champ = registry.champion()
    assert champ is not None and m["champion"] == champ.ref and m["promoted"] is True
    assert champ.manifest["training_cutoffs"] and "no current champion" in m["decision"]
    assert m["default_rule"] is False
    for plot in ("decile_calibration", "gains_curve", "error_by_customer_age"):
        assert m[plot].startswith("![")
    record = registry.champion_record()
    assert record["metrics"]["gini"] > 0
    decision = json.loads((home / "evaluation" / "champion_decision.json").read_text())
    assert decision["promote"] is True and decision["challenger"] == champ.ref
    mapped = bool(decision["value_map"] and decision["value_map"]["kept"])
    assert champ.name.startswith("mapped_") == mapped and m["value_map"]
    assert "mapped_" not in m["candidates"]  # leaderboard rows only, never candidates
    assert champ.name in m["decile_calibration"]  # the plots show the champion as it scores
