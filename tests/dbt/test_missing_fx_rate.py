"""A currency with no rate on or before the transaction date keeps its row (amount_base null)
and fails the build through the not_null test, instead of vanishing from the sums."""

import pandas as pd

from ltv_pipeline.lib.dbt_vars import dbt_vars


def test_transaction_without_fx_rate_is_kept_and_fails_the_not_null_test(
    dbt_warehouse, write_raw_tables
):
    write_raw_tables(
        dbt_warehouse.path,
        transactions=pd.DataFrame({
            "user_id": ["u1", "u2", "u3"],
            "ts": pd.to_datetime(["2024-01-05", "2024-01-05", "2024-02-05"]),
            "amount": [10.0, 10.0, 10.0],
            "transaction_id": ["a", "b", "c"],
            # JPY has no rate at all; CHF's only rate starts after its transaction.
            "currency": ["JPY", "CHF", "CHF"],
        }),
        fx_rates=pd.DataFrame({
            "date": pd.to_datetime(["2024-02-01"]).date,
            "currency": ["CHF"],
            "rate_to_base": [1.1],
        }),
    )
    done = dbt_warehouse.build(
        dbt_vars(["2024-03-31"], 30), "--select", "stg_raw__fx_rates", "stg_raw__transactions",
        check=False,
    )
    assert done.returncode != 0
    assert "not_null_stg_raw__transactions_amount_base" in done.stdout
    assert "Got 2 results" in done.stdout

    stg = dbt_warehouse.query(
        "select transaction_id, amount_base from staging.stg_raw__transactions"
    ).set_index("transaction_id").sort_index()
    assert len(stg) == 3
    assert stg["amount_base"].isna().tolist() == [True, True, False]
    assert stg.loc["c", "amount_base"] == 11.0
