"""The leakage gate, end to end: marts built by dbt from a synthetic log, then a row that read
the future planted in a feature mart. The blocking GX checks on the marts run in the same
run as the Feast registry and the training assets (the project's definitions, not stand-ins):
the check fails with the offending row in its metadata and the training assets that read the
mart are skipped. A control run on the clean marts trains, so the skip is the gate's doing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from ltv_pipeline import settings
from ltv_pipeline.lib import warehouse
from ltv_pipeline.lib.generator import generate, write
from ltv_pipeline.lib.registry import ModelRegistry

TRAINING = ("btyd_models", "gbm_models")
DOWNSTREAM = ("feast_registry", *TRAINING)
LEAKY_USER = "leaky-user"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[Path]:
    """An LTV_HOME whose marts dbt built from 1,500 synthetic users (default plan: as of the
    last transaction date, 90-day horizon, training cutoffs and backtest origins)."""
    root = tmp_path_factory.mktemp("leakage")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTV_HOME", str(root / "home"))
        mp.delenv("DAGSTER_HOME", raising=False)
        settings.ensure_home()
        from ltv_pipeline.definitions import defs
        from ltv_pipeline.defs.ingest.assets import raw_tables
        from ltv_pipeline.defs.transform.assets import build_dbt_assets

        write(generate(n_users=1500, seed=7), root / "log")
        loaded = dg.materialize([raw_tables], resources=defs.resources, run_config={
            "ops": {"raw_tables": {"config": {"source": str(root / "log")}}}})
        assert loaded.success
        built = dg.materialize([build_dbt_assets()], resources=defs.resources)
        assert built.success
        yield root / "home"


def run_gated_training():
    """The mart gates (quality and leakage) with the Feast registry and the training assets, as
    one run of the project's definitions."""
    from ltv_pipeline.defs.quality.mart_checks import build_mart_checks
    from ltv_pipeline.definitions import defs

    selection = dg.AssetSelection.checks(*build_mart_checks()) | dg.AssetSelection.assets(*DOWNSTREAM)
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                          selection=selection, raise_on_error=False)


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(result) -> set[str]:
    return {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def step_events(result, step: str) -> list[str]:
    return [e.event_type_value for e in result.all_events if e.step_key == step]


def registered(home: Path) -> dict[str, int]:
    registry = ModelRegistry(home / "models")
    return {name: len(registry.list_versions(name)) for name in registry.names()}


def sql(statement: str) -> list[tuple]:
    with warehouse.connect(settings.warehouse_path()) as con:
        return con.execute(statement).fetchall()


def test_clean_marts_pass_every_gate_and_training_runs(home):
    before = registered(home)
    result = run_gated_training()
    assert result.success
    evals = evaluations(result)
    assert len(evals) == 7 and all(e.passed for e in evals.values())
    assert materialized(result) == set(DOWNSTREAM)
    [gbm] = result.asset_materializations_for_node("gbm_models")
    assert gbm.metadata["trained"].value is True
    after = registered(home)
    for name in ("bgnbd_gg", "pareto_gg", "gbm_tweedie", "gbm_quantile_p90"):
        assert after[name] == before.get(name, 0) + 1, name


@pytest.mark.parametrize(
    "mart, blocked",
    [
        # feast_registry exports it, gbm_models trains on Feast's features; btyd_models reads
        # only the BTYD summary and still runs: the gate stops what the leak reaches
        ("customer_features", {"feast_registry", "gbm_models"}),
        ("customer_btyd_summary", {"feast_registry", "btyd_models", "gbm_models"}),
    ],
)
def test_a_future_row_in_a_feature_mart_fails_the_gate_and_training_does_not_run(home, mart, blocked):
    # a copy of a real row at the earliest training cutoff D, for a new user, whose latest
    # source row is at D + 1 day 03:00: it read a day the cutoff must not see
    [(cutoff,)] = sql("select min(cutoff_date) from intermediate.int_cutoffs_planned where is_train_cutoff")
    sql(f"""insert into marts.{mart}
            select * replace ('{LEAKY_USER}' as user_id,
                              cast(cutoff_date as timestamp) + interval 27 hour as max_source_ts)
            from marts.{mart} where cutoff_date = date '{cutoff}' limit 1""")
    before = registered(home)
    try:
        result = run_gated_training()
    finally:
        sql(f"delete from marts.{mart} where user_id = '{LEAKY_USER}'")

    assert not result.success
    evals = evaluations(result)
    leak = evals[f"check_{mart}_no_leakage"]
    assert not leak.passed and leak.severity == dg.AssetCheckSeverity.ERROR
    assert [n for n, e in evals.items() if not e.passed] == [f"check_{mart}_no_leakage"]
    meta = {k: v.value for k, v in leak.metadata.items()}
    [failure] = meta["failures_json"]
    assert failure["columns"] == ["history_end", "max_source_ts"] and failure["unexpected_count"] == 1
    [row] = failure["sample"]
    next_day = (cutoff + timedelta(days=1)).isoformat()
    assert row == {"user_id": LEAKY_USER, "cutoff_date": f"{cutoff.isoformat()}T00:00:00",
                   "history_end": f"{next_day}T00:00:00", "max_source_ts": f"{next_day}T03:00:00"}
    assert LEAKY_USER in meta["failures"]  # the Markdown table the UI shows
    saved = json.loads(Path(meta["gx_result_path"]).read_text())
    assert saved["success"] is False and saved["failed"][0]["sample"] == [row]

    # blocked: no step of what reads the leaky mart ran, nothing was trained or registered
    for asset in blocked:
        assert "STEP_START" not in step_events(result, asset), asset
    assert materialized(result) == set(DOWNSTREAM) - blocked
    new = {n: v for n, v in registered(home).items() if v != before.get(n)}
    assert not any(n.startswith("gbm_") for n in new)
    if "btyd_models" in blocked:
        assert new == {}
    [failed_step] = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
    assert failed_step.endswith(f"check_{mart}_no_leakage")


def test_gbm_models_refuses_a_training_cutoff_whose_label_window_passes_the_scoring_date(home):
    """The training_window suite inside gbm_models: with the scoring date itself marked as a
    training cutoff (its label window lies in the future), training refuses before it starts."""
    from ltv_pipeline.definitions import defs
    from ltv_pipeline.defs.training.assets import gbm_models

    [(scoring,)] = sql("select cutoff_date from intermediate.int_cutoffs_planned where is_scoring_date")
    sql("update intermediate.int_cutoffs_planned set is_train_cutoff = true where is_scoring_date")
    before = registered(home)
    try:
        result = dg.materialize([gbm_models], resources=defs.resources,
                                raise_on_error=False)
    finally:
        sql("update intermediate.int_cutoffs_planned set is_train_cutoff = false where is_scoring_date")
    assert not result.success
    failure = result.failure_data_for_node("gbm_models").user_failure_data
    assert f"training cutoff(s) {scoring.isoformat()} passes the scoring date {scoring}" in failure.description
    assert "known_end, label_window_end: 1 unexpected rows" in failure.description
    assert Path(failure.metadata["gx_result_path"].value).is_file()
    assert registered(home) == before
