"""What the dbt assets refuse or report before dbt runs: a scoring date before the data (an
InputError, exit code 2 in the CLI), and dbt's tests on the raw sources as asset checks of
the ingest assets."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.defs.transform.assets import DBT_ASSETS_NAME, TransformConfig, build_dbt_assets, plan_for
from ltv_pipeline.defs.transform.resources import dbt_resource
from ltv_pipeline.lib import warehouse
from ltv_pipeline.lib.errors import InputError, find_input_error

TX = pd.DataFrame({"user_id": ["a", "b", "a"],
                   "ts": pd.to_datetime(["2024-01-10 10:00", "2024-02-01 00:00", "2024-06-30 23:00"]),
                   "amount": [1.0, 2.0, 3.0]})


@pytest.fixture
def wh(ltv_home, write_raw_tables) -> WarehouseResource:
    write_raw_tables(ltv_home / "warehouse.duckdb", transactions=TX)
    return WarehouseResource(ltv_home=str(ltv_home))


def test_as_of_before_the_first_transaction_is_an_input_error_naming_the_dates(wh):
    with pytest.raises(InputError) as info:
        plan_for(TransformConfig(as_of="2024-01-09"), wh)
    message = str(info.value)
    assert message.startswith("the cutoff 2024-01-09 (as_of; `ltv demo --as-of`, `ltv predict --cutoff`) "
                              "is before the first transaction date")
    assert "2024-01-10" in message and "2024-06-30" in message
    # the first day of the data is the earliest scoring date there is
    assert plan_for(TransformConfig(as_of="2024-01-10", horizon_days=30), wh).scoring_date.isoformat() == "2024-01-10"


def test_malformed_as_of_is_an_input_error(wh):
    with pytest.raises(InputError, match=r"as_of \(--as-of\) '2024-13-01' is not a date in YYYY-MM-DD form"):
        plan_for(TransformConfig(as_of="2024-13-01"), wh)


def test_the_dbt_run_refuses_before_dbt_starts_and_builds_nothing(wh, ltv_home):
    with pytest.raises(Exception) as info:
        dg.materialize(
            [build_dbt_assets()], resources={"dbt": dbt_resource(), "warehouse_db": wh},
            run_config={"ops": {DBT_ASSETS_NAME: {"config": {"as_of": "2023-12-31"}}}},
        )
    found = find_input_error(info.value)  # what the CLI maps to exit code 2
    assert found is not None and "2023-12-31 (as_of; " in str(found) and "is before the first transaction date" in str(found)
    with warehouse.connect(ltv_home / "warehouse.duckdb", read_only=True) as con:
        schemas = {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}
    assert "marts" not in schemas and "intermediate" not in schemas


def test_dbt_source_tests_are_asset_checks_of_the_ingest_assets():
    specs = {(s.asset_key.path[-1], s.name) for s in build_dbt_assets().check_specs}
    assert {("raw_transactions", "source_not_null_raw_transactions_user_id"),
            ("raw_transactions", "source_not_null_raw_transactions_ts"),
            ("raw_users", "source_not_null_raw_users_user_id"),
            ("raw_events", "source_not_null_raw_events_ts")} <= specs
