"""Money sums do not depend on the order rows are added in (macro ltv_exact_sum): a plain
double sum of 0.1, 0.2 and 0.3 is 0.6000000000000001 in that order and 0.6 in the reverse one,
and DuckDB adds rows in whatever order its threads finish, so the same data gave features a
last bit apart from run to run, and tree models near a split gave different forecasts."""

import pandas as pd

from ltv_pipeline.lib.dbt_vars import dbt_vars


def test_money_sums_are_exact_whatever_the_row_order(dbt_warehouse, write_raw_tables):
    assert (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1  # the premise: double sums depend on order
    # One user: three orders on 2024-01-10 (0.1, 0.2, 0.3 in that order), the same three in
    # the reverse order 100 days later (the previous and the last 90-day windows of the
    # cutoff 2024-05-10), and again in the label window.
    days = ["2024-01-10"] * 3 + ["2024-04-19"] * 3 + ["2024-05-20"] * 3
    amounts = [0.1, 0.2, 0.3, 0.3, 0.2, 0.1, 0.1, 0.2, 0.3]
    write_raw_tables(
        dbt_warehouse.path,
        transactions=pd.DataFrame({
            "user_id": ["u1"] * 9,
            "ts": pd.to_datetime(days) + pd.to_timedelta(range(9), unit="min"),
            "amount": amounts,
            "transaction_id": [f"t{i}" for i in range(9)],
            "currency": ["USD"] * 9,
        }),
    )
    dbt_warehouse.build(dbt_vars(["2024-05-10"], 30), "--select",
                        "+customer_features", "+customer_labels", "+customer_btyd_summary")

    days_table = dbt_warehouse.query(
        "select activity_date, revenue, gross_revenue from intermediate.int_user_days_aggregated "
        "order by activity_date")
    assert days_table["revenue"].tolist() == [0.6, 0.6, 0.6]
    assert days_table["gross_revenue"].tolist() == [0.6, 0.6, 0.6]

    features = dbt_warehouse.query(
        "select revenue_total, revenue_90d, revenue_prev_90d, revenue_trend_90d "
        "from marts.customer_features where user_id = 'u1'").iloc[0]
    assert features["revenue_total"] == 1.2
    assert features["revenue_90d"] == features["revenue_prev_90d"] == 0.6
    assert features["revenue_trend_90d"] == 0.0  # exactly: not a last-bit residue

    label = dbt_warehouse.query("select value from marts.customer_labels where user_id = 'u1'")
    assert label["value"].tolist() == [0.6]
    summary = dbt_warehouse.query(
        "select monetary_value from marts.customer_btyd_summary where user_id = 'u1'")
    assert summary["monetary_value"].tolist() == [0.6]
