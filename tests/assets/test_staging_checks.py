"""The staging gates, run by Dagster on views dbt built from a small synthetic log: they pass
on clean data; a raw row whose currency has no rate fails the stg_raw__transactions suite (no
base amount), and a staging view that drops rows fails the raw -> staging row accounting,
each blocking what reads the view and saying why in its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from ltv_pipeline import settings
from ltv_pipeline.defs.resources import shared_resources
from ltv_pipeline.lib import warehouse
from ltv_pipeline.lib.dbt_project import run_dbt
from ltv_pipeline.lib.dbt_vars import dbt_vars
from ltv_pipeline.lib.generator import generate, write
from ltv_pipeline.lib.sources import prepare_loads, read_directory

MODELS = ("stg_raw__transactions", "stg_raw__users", "stg_raw__events", "stg_raw__fx_rates")


@dg.asset(deps=[dg.AssetKey("stg_raw__transactions")])
def reads_staged_transactions() -> None:
    """Stands in for the intermediate models and marts that read the view."""


@pytest.fixture
def staged(ltv_home, tmp_path) -> Path:
    """raw tables loaded from 300 synthetic users (with a duplicated transaction line, which
    staging removes by its documented grain), staging views built by dbt."""
    write(generate(n_users=300, seed=3), tmp_path / "log")
    loads = prepare_loads(read_directory(tmp_path / "log"))
    warehouse.replace_raw_tables(settings.warehouse_path(), "b1", "test", loads)
    sql("""insert into raw.transactions by name
           select * replace (_row + 1000000 as _row) from raw.transactions
           where transaction_id is not null limit 1""")
    run_dbt(["run", "--select", "staging"], vars=dbt_vars(["2025-01-31"], 90))  # staging ignores the cutoff
    return ltv_home


def sql(statement: str) -> list[tuple]:
    with warehouse.connect(settings.warehouse_path()) as con:
        return con.execute(statement).fetchall()


def run_checks():
    from ltv_pipeline.defs.quality.staging_checks import build_staging_checks
    from ltv_pipeline.defs.transform.assets import build_dbt_assets
    from ltv_pipeline.defs.transform.resources import dbt_resource

    checks = build_staging_checks()
    result = dg.materialize(
        [build_dbt_assets(), *checks, reads_staged_transactions],
        resources={**shared_resources(), "dbt": dbt_resource()},
        selection=dg.AssetSelection.checks(*checks) | dg.AssetSelection.assets(reads_staged_transactions),
        raise_on_error=False,
    )
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    metadata = {name: {k: v.value for k, v in e.metadata.items()} for name, e in evals.items()}
    return result, evals, metadata


def test_staging_checks_pass_on_clean_views_and_account_for_deduplicated_rows(staged):
    result, evals, meta = run_checks()
    assert set(evals) == {f"check_{m}_{kind}" for m in MODELS for kind in ("quality", "row_counts")}
    assert {e.asset_key for e in evals.values()} == {dg.AssetKey(m) for m in MODELS}
    assert all(e.passed for e in evals.values()), [e.description for e in evals.values() if not e.passed]
    assert result.success and result.asset_materializations_for_node("reads_staged_transactions")
    [counts] = meta["check_stg_raw__transactions_row_counts"]["counts"]
    raw_rows = sql("select count(*) from raw.transactions")[0][0]
    assert counts["raw_rows"] == raw_rows and counts["staging_rows"] == raw_rows - 1
    assert counts["deduplicated_rows"] == 1
    tx = meta["check_stg_raw__transactions_quality"]
    assert tx["rows"] == raw_rows - 1 and tx["failed_expectations"] == 0
    assert json.loads(Path(tx["gx_result_path"]).read_text())["success"] is True


def test_currency_without_rate_and_a_view_that_drops_rows_fail_the_blocking_gates(staged):
    # a row that bypassed the loader: CHF has no fx rate, so staging cannot convert it
    sql("""insert into raw.transactions by name
           select * replace ('CHF' as currency, 'chf-1' as transaction_id, 2000000 as _row)
           from raw.transactions limit 1""")
    # a staging model that silently loses rows (here: every add_to_cart event)
    sql("""create or replace view staging.stg_raw__events as
           select user_id, ts, cast(ts as date) as event_date, event_name, metadata_json
           from raw.events where event_name <> 'add_to_cart'""")
    result, evals, meta = run_checks()
    failed = {name for name, e in evals.items() if not e.passed}
    assert failed == {"check_stg_raw__transactions_quality", "check_stg_raw__events_row_counts"}
    assert all(evals[n].severity == dg.AssetCheckSeverity.ERROR for n in failed)
    assert not result.success
    assert result.asset_materializations_for_node("reads_staged_transactions") == []

    tx = meta["check_stg_raw__transactions_quality"]
    by_column = {tuple(f["columns"]): f for f in tx["failures_json"]}
    assert set(by_column) == {("rate_to_base",), ("amount_base",)}
    sample = by_column[("amount_base",)]["sample"]
    assert by_column[("amount_base",)]["unexpected_count"] == 1
    assert sample[0]["transaction_id"] == "chf-1" and sample[0]["_row"] == 2000000
    assert "chf-1" in tx["failures"]
    assert Path(tx["gx_result_path"]).is_relative_to(settings.ltv_home() / "quality")

    events = meta["check_stg_raw__events_row_counts"]
    [counts] = events["counts"]
    dropped = sql("select count(*) from raw.events where event_name = 'add_to_cart'")[0][0]
    assert dropped > 0
    assert counts["staging_rows"] == counts["expected_rows"] - dropped == counts["raw_rows"] - dropped
    [lost] = events["failures_json"]
    assert lost["columns"] == ["staging_rows", "expected_rows"]
    assert lost["sample"][0]["model"] == "stg_raw__events"
