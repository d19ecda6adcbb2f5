"""The ingest multi-asset, materialized against a temporary LTV_HOME."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from ltv_pipeline import settings
from ltv_pipeline.defs.ingest.assets import raw_tables
from ltv_pipeline.defs.resources import shared_resources
from ltv_pipeline.lib import warehouse


def materialize(source: str, **extra):
    return dg.materialize(
        [raw_tables],
        resources=shared_resources(),
        run_config={"ops": {"raw_tables": {"config": {"source": source, **extra}}}},
        raise_on_error=False,
    )


def metadata(result, key: str) -> dict:
    mats = result.asset_materializations_for_node("raw_tables")
    [mat] = [m for m in mats if m.asset_key.path == [key]]
    return {k: v.value for k, v in mat.metadata.items()}


def test_cdnow_load_records_counts_and_batch(ltv_home):
    result = materialize("cdnow")
    assert result.success
    meta = metadata(result, "raw_transactions")
    assert meta["dagster/row_count"] == 69_659 and meta["rows_quarantined"] == 0
    assert warehouse.table_counts(settings.warehouse_path())["transactions"] == 69_659
    with warehouse.connect(settings.warehouse_path(), read_only=True) as con:
        n_users = con.execute("select count(distinct user_id) from raw.transactions").fetchone()[0]
        logged = con.execute("select distinct batch_id from raw.load_batches").fetchall()
    assert n_users == 23_570
    assert logged == [(meta["batch_id"],)]


def test_directory_load_quarantines_bad_rows_and_accounts_for_all(ltv_home, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame(
        {"user_id": ["1", "2", None, "4"], "ts": ["2025-01-01", "bad", "2025-01-02", "2025-01-03"],
         "amount": ["5", "6", "7", "-1"]}
    ).to_csv(src / "transactions.csv", index=False)
    result = materialize(str(src))
    assert result.success
    meta = metadata(result, "raw_transactions")
    assert meta["dagster/row_count"] == 1 and meta["rows_quarantined"] == 3
    assert meta["dagster/row_count"] + meta["rows_quarantined"] == meta["rows_in_file"]
    assert warehouse.table_counts(settings.warehouse_path(), "quarantine")["transactions"] == 3


def test_bad_file_fails_the_run_and_keeps_the_previous_load(ltv_home, tmp_path):
    assert materialize("cdnow").success
    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame({"user_id": ["1"], "when": ["2025-01-01"], "amount": [3]}).to_csv(
        src / "transactions.csv", index=False
    )
    result = materialize(str(src))
    assert not result.success
    failure = result.failure_data_for_node("raw_tables")
    assert "missing required column(s) ts" in failure.error.cause.message
    assert warehouse.table_counts(settings.warehouse_path())["transactions"] == 69_659


def test_a_log_in_one_currency_without_rates_is_loaded_in_that_currency(ltv_home, tmp_path):
    """Every row in GBP and no fx rates: the load keeps them all, records GBP as its base
    currency, and later builds (dbt vars, the scoring fingerprint) read it; a load in USD
    afterwards sets it back. LTV_BASE_CURRENCY would have quarantined them instead."""
    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame({"user_id": ["1", "2", "2"], "ts": ["2025-01-01", "2025-01-02", "2025-02-01"],
                  "amount": ["5", "6", "7"], "currency": ["GBP", "gbp", "GBP"]}
                 ).to_csv(src / "transactions.csv", index=False)
    result = materialize(str(src))
    assert result.success
    meta = metadata(result, "raw_transactions")
    assert (meta["dagster/row_count"], meta["rows_quarantined"], meta["base_currency"]) == (3, 0, "GBP")
    assert settings.base_currency() == "GBP"
    from ltv_pipeline.lib.dbt_vars import dbt_vars

    assert dbt_vars(["2025-03-01"], 90)["base_currency"] == "GBP"
    assert metadata(materialize("cdnow"), "raw_transactions")["base_currency"] == "USD"
    assert settings.base_currency() == "USD"


def test_a_set_base_currency_is_kept(ltv_home, tmp_path, monkeypatch):
    """With LTV_BASE_CURRENCY=USD the same GBP log has nothing convertible: a clear error."""
    monkeypatch.setenv("LTV_BASE_CURRENCY", "usd")
    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame({"user_id": ["1", "2"], "ts": ["2025-01-01", "2025-01-02"], "amount": ["5", "6"],
                  "currency": ["GBP", "GBP"]}).to_csv(src / "transactions.csv", index=False)
    result = materialize(str(src))
    assert not result.success
    message = result.failure_data_for_node("raw_tables").error.cause.message
    assert "2 currency without an fx rate (column 'currency', sample: 'GBP')" in message
    assert "the base currency USD" in message
