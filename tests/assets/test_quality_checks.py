"""The raw-table GX gates, run by Dagster against a temporary LTV_HOME: they pass on the CDNOW
load, and a row planted in raw.transactions fails the blocking checks with the metadata the
UI shows (failed expectations, counts, offending rows, the saved GX result)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from ltv_pipeline import settings
from ltv_pipeline.defs.ingest.assets import raw_tables
from ltv_pipeline.defs.quality import gx_check, leakage_check
from ltv_pipeline.defs.quality.checks import raw_quality_checks, raw_row_count_checks
from ltv_pipeline.defs.resources import shared_resources
from ltv_pipeline.lib import quality_suites, warehouse

CHECKS = [*raw_quality_checks, raw_row_count_checks]
CDNOW_ROWS = 69_659


@dg.asset(deps=["raw_transactions"])
def downstream_of_transactions() -> None:
    """Stands in for the dbt models that read raw.transactions."""


def run(selection=None, extra=()):
    return dg.materialize(
        [raw_tables, *CHECKS, *extra],
        resources=shared_resources(),
        run_config={"ops": {"raw_tables": {"config": {"source": "cdnow"}}}} if selection is None else None,
        selection=selection,
        raise_on_error=False,
    )


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def meta(evaluation) -> dict:
    return {k: v.value for k, v in evaluation.metadata.items()}


@pytest.fixture
def cdnow_loaded(ltv_home):
    result = run()
    assert result.success
    return result


def test_raw_checks_pass_on_the_cdnow_load(cdnow_loaded):
    evals = evaluations(cdnow_loaded)
    assert set(evals) == {
        f"check_{a}_{kind}" for a in ("raw_transactions", "raw_users", "raw_events", "fx_rates")
        for kind in ("quality", "row_counts")
    }
    assert all(e.passed for e in evals.values()), [e.description for e in evals.values() if not e.passed]
    tx = meta(evals["check_raw_transactions_quality"])
    assert tx["rows"] == CDNOW_ROWS and tx["failed_expectations"] == 0
    saved = json.loads(Path(tx["gx_result_path"]).read_text())
    assert saved["success"] is True and saved["gx_result"]["statistics"]["evaluated_expectations"] == 11
    assert Path(tx["gx_result_path"]).is_relative_to(settings.ltv_home() / "quality")
    counts = meta(evals["check_raw_transactions_row_counts"])["counts"]
    assert counts[0]["rows_in_file"] == counts[0]["raw_rows"] == CDNOW_ROWS


def test_planted_bad_rows_fail_the_blocking_checks_with_metadata(cdnow_loaded):
    with warehouse.connect(settings.warehouse_path()) as con:
        con.execute("""
            insert into raw.transactions (user_id, ts, amount, transaction_id, currency, is_refund,
                                          _batch_id, _row)
            select user_id, ts, -5.0, 'cdnow-1', currency, false, _batch_id, 70000
            from raw.transactions where _row = 1""")
        con.execute("""insert into raw.transactions select * replace (70001 as _row)
                       from raw.transactions where _row = 1""")  # the same line again
    result = run(
        dg.AssetSelection.checks_for_assets("raw_transactions")
        | dg.AssetSelection.assets(downstream_of_transactions),
        extra=[downstream_of_transactions],
    )
    assert not result.success
    # blocking: the asset that reads raw.transactions did not run
    assert result.asset_materializations_for_node("downstream_of_transactions") == []

    evals = evaluations(result)
    quality_eval = evals["check_raw_transactions_quality"]
    assert not quality_eval.passed and quality_eval.severity == dg.AssetCheckSeverity.ERROR
    m = meta(quality_eval)
    assert m["rows"] == CDNOW_ROWS + 2 and m["failed_expectations"] == 2
    failures = {f["type"]: f for f in m["failures_json"]}
    assert failures["expect_column_values_to_be_between"]["unexpected_count"] == 1
    assert failures["expect_column_values_to_be_between"]["sample"][0]["_row"] == 70000
    repeated = failures["expect_column_values_to_be_in_set"]
    assert repeated["columns"] == ["repeats_a_line"] and repeated["unexpected_count"] == 1
    assert repeated["sample"][0]["_row"] == 70001
    assert "| expect_column_values_to_be_between | amount | 1 |" in m["failures"]
    assert "70000" in m["failures"] and "cdnow-1" in m["failures"]
    saved = json.loads(Path(m["gx_result_path"]).read_text())
    assert saved["success"] is False and len(saved["failed"]) == 2

    counts_eval = evals["check_raw_transactions_row_counts"]
    assert not counts_eval.passed
    counts = meta(counts_eval)["counts"][0]
    assert counts["raw_rows"] == CDNOW_ROWS + 2 and counts["rows_in_file"] == CDNOW_ROWS


def test_factory_declares_mart_style_checks_in_one_line(ltv_home):
    loaded = dg.materialize([raw_tables], resources=shared_resources(),
                            run_config={"ops": {"raw_tables": {"config": {"source": "cdnow"}}}})
    assert loaded.success  # the checks below read what this load wrote
    # features as of D = 1997-03-31: history is ts < 1997-04-01; the leaky query forgets that
    sql = """select user_id, date '1997-03-31' as cutoff_date, max(ts) as max_source_ts
             from raw.transactions {where} group by user_id"""
    clean = leakage_check("raw_transactions", quality_suites.history_leakage_suite,
                          sql.format(where="where ts < date '1997-04-01'"),
                          name="check_features_like_no_leakage")
    leaky = gx_check("raw_transactions", quality_suites.history_leakage_suite,
                     sql.format(where=""), name="check_leaky_sql")
    result = dg.materialize(
        [raw_tables, clean, leaky], resources=shared_resources(),
        selection=dg.AssetSelection.checks(clean, leaky), raise_on_error=False,
    )
    evals = evaluations(result)
    assert evals["check_features_like_no_leakage"].passed
    leak = meta(evals["check_leaky_sql"])
    assert not evals["check_leaky_sql"].passed
    [failure] = leak["failures_json"]
    assert failure["columns"] == ["history_end", "max_source_ts"] and failure["unexpected_count"] > 0
    spec = next(iter(clean.check_specs))
    assert spec.blocking and spec.name == "check_features_like_no_leakage"


MART_VALUES = {
    "customer_features": """values
        ('u1', date '2024-01-31', timestamp '2024-01-31 23:59:59', 2, 2, 1, 0, 3),
        ('u2', date '2024-01-31', timestamp '2024-02-01 00:00:00', 1, 1, 0, 0, 0)
        ) t(user_id, cutoff_date, max_source_ts, n_orders, n_purchase_days, frequency, n_refunds,
            n_events""",
    "customer_btyd_summary": """values
        ('u1', date '2024-01-31', 1, 10, 30, 25.0, timestamp '2024-01-31 23:59:59'),
        ('u2', date '2024-01-31', 0, 0, 5, 0.0, timestamp '2024-01-26 10:00:00')
        ) t(user_id, cutoff_date, frequency, recency, "T", monetary_value, max_source_ts""",
    "customer_labels": """values
        ('u1', date '2024-01-31', 30, date '2024-02-01', date '2024-03-02', 12.0, 4.0, 1,
         timestamp '2024-02-01 00:00:00', timestamp '2024-03-02 00:00:00'),
        ('u2', date '2024-01-31', 30, date '2024-02-01', date '2024-03-02', 0.0, 0.0, 0, null, null)
        ) t(user_id, cutoff_date, horizon_days, label_start_date, label_end_date, value, margin,
            n_orders, label_min_ts, label_max_ts""",
    "cohort_revenue": """values (date '2024-01-01', date '2024-01-03', 10.0, 1, 1, 1, 0)
        ) t(cohort_month, activity_date, revenue, n_active_users, n_purchasing_users, n_orders,
            n_refunds""",
}


def test_mart_checks_gate_the_dbt_marts_on_keys_and_the_time_rule(ltv_home):
    from dagster_dbt import get_asset_key_for_model

    from ltv_pipeline.defs.quality.mart_checks import build_mart_checks
    from ltv_pipeline.defs.transform.assets import build_dbt_assets
    from ltv_pipeline.defs.transform.resources import dbt_resource

    # The marts as dbt leaves them, with a feature row that read D + 1 day (u2) and a label
    # on the first day after its window (u1); the checks read them, dbt does not run. The
    # training plan is D with H 30; a leaky row of a date scored earlier (not in the plan,
    # checked by its scoring partition's gate) and a label of another horizon are not read.
    with warehouse.connect(settings.warehouse_path()) as con:
        con.execute("create schema marts")
        for model, values in MART_VALUES.items():
            con.execute(f"create table marts.{model} as select * from ({values})")
        con.execute("create schema intermediate")
        con.execute("create table intermediate.int_cutoffs_planned as "
                    "select date '2024-01-31' as cutoff_date, 30 as horizon_days")
        con.execute("insert into marts.customer_features select * replace ('u3' as user_id, "
                    "date '2023-12-31' as cutoff_date) from marts.customer_features where user_id = 'u2'")
        con.execute("insert into marts.customer_labels select * replace (60 as horizon_days) "
                    "from marts.customer_labels where user_id = 'u1'")
    checks = build_mart_checks()
    dbt = build_dbt_assets()
    result = dg.materialize(
        [dbt, *checks], resources={**shared_resources(), "dbt": dbt_resource()},
        selection=dg.AssetSelection.checks(*checks), raise_on_error=False,
    )
    evals = evaluations(result)
    marts = list(MART_VALUES)
    assert {e.asset_key for e in evals.values()} == {get_asset_key_for_model([dbt], m) for m in marts}
    assert set(evals) == {f"check_{m}_quality" for m in marts} | {
        f"check_{m}_no_leakage" for m in ("customer_features", "customer_btyd_summary", "customer_labels")}
    failed = {name for name, e in evals.items() if not e.passed}
    assert failed == {"check_customer_features_no_leakage", "check_customer_labels_no_leakage"}
    assert not result.success  # blocking, severity ERROR
    [leak] = meta(evals["check_customer_features_no_leakage"])["failures_json"]
    assert leak["sample"] == [{"history_end": "2024-02-01T00:00:00", "user_id": "u2",
                               "cutoff_date": "2024-01-31T00:00:00",
                               "max_source_ts": "2024-02-01T00:00:00"}]
    assert leak["unexpected_count"] == 1 and meta(evals["check_customer_features_quality"])["rows"] == 2
    [label] = meta(evals["check_customer_labels_no_leakage"])["failures_json"]
    assert label["columns"] == ["window_end", "label_max_ts"] and label["sample"][0]["user_id"] == "u1"
    assert label["unexpected_count"] == 1 and meta(evals["check_customer_labels_quality"])["rows"] == 2


def test_quality_defs_merge_with_the_other_domains_and_every_gate_blocks():
    from ltv_pipeline.defs import ingest, jobs, quality, transform

    defs = dg.Definitions.merge(ingest.defs, transform.defs, quality.defs, jobs.defs,
                                dg.Definitions(resources=shared_resources()))
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    ours = [k for k in graph.asset_check_keys if k.name.startswith("check_")]
    # raw: 4 quality + 4 row counts; staging: 4 quality + 4 row counts; marts: 4 quality + 3 leakage
    assert len(ours) == 23
    assert all(graph.get_check_spec(k).blocking for k in ours)
    job_checks = defs.resolve_job_def("full_pipeline_job").asset_layer.asset_graph.asset_check_keys
    assert set(ours) <= set(job_checks)
