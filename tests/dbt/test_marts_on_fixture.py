"""The marts on a small hand-made log whose every number is worked out below.

Cutoff D = 2024-03-31, horizon H = 30: history is ts < 2024-04-01, the label window is
[2024-04-01, 2024-05-01).
"""

import pandas as pd
import pytest

from ltv_pipeline.lib.dbt_vars import dbt_vars

D = "2024-03-31"
VARS = dbt_vars([D], 30)
ts = pd.Timestamp


def transactions(move_u5_to_next_day: bool = False) -> pd.DataFrame:
    u5_last = ts("2024-04-01 00:00:00") if move_u5_to_next_day else ts("2024-03-31 12:00:00")
    rows = [
        # user, ts, amount, transaction_id, currency, is_refund, variable_cost, channel, sku
        ("u1", ts("2024-01-10 10:00"), 100.0, "t1", "USD", False, 60.0, "web", "A"),
        ("u1", ts("2024-01-10 10:00"), 100.0, "t1", "USD", False, 60.0, "web", "A"),  # loaded twice
        ("u1", ts("2024-01-20 09:00"), 30.0, "t1", "USD", True, None, "web", "A"),  # refund of t1
        ("u1", ts("2024-03-31 23:00"), 50.0, "t2", "eur", False, None, "app", "B"),  # EUR 1.20
        ("u1", ts("2024-04-15 08:00"), 20.0, "t3", None, False, None, "app", "B"),  # label
        ("u2", ts("2024-02-01 10:00"), 10.0, None, None, False, None, None, None),  # no id:
        ("u2", ts("2024-02-01 10:00"), 10.0, None, None, False, None, None, None),  # not dups
        ("u2", ts("2024-02-15 10:00"), 10.0, "t4", "GBP", False, 2.0, None, None),  # GBP 1.25
        ("u4", ts("2024-04-02 10:00"), 99.0, "t5", "USD", False, None, None, None),  # after D
        ("u5", ts("2024-02-01 10:00"), 40.0, "t6", "USD", False, None, None, None),
        ("u5", u5_last, 25.0, "t7", "USD", False, None, None, None),  # on D, or on D + 1 day
        # u6: one order of two lines (10 + 5), the first line loaded twice; removed later
        ("u6", ts("2024-03-01 10:00"), 10.0, "t8", "USD", False, None, None, "X"),
        ("u6", ts("2024-03-01 10:00"), 5.0, "t8", "USD", False, None, None, "Y"),
        ("u6", ts("2024-03-01 10:00"), 10.0, "t8", "USD", False, None, None, "X"),
    ]
    if move_u5_to_next_day:  # the second version of the log also loses u6's only purchase
        rows = [r for r in rows if r[0] != "u6"]
    cols = ["user_id", "ts", "amount", "transaction_id", "currency", "is_refund",
            "variable_cost", "channel", "sku"]
    return pd.DataFrame(rows, columns=cols)


USERS = pd.DataFrame({
    "user_id": ["u1", "u3", "u4"],
    "signup_ts": [ts("2023-12-15"), ts("2024-03-15 08:00"), ts("2024-04-01 00:00")],
    "country": ["DE", "US", "FR"],
    "device": ["ios", "web", "android"],
    "acquisition_source": ["ads", "organic", "ads"],
})
EVENTS = pd.DataFrame({
    "user_id": ["u3", "u3", "u1"],
    "ts": [ts("2024-03-20 10:00"), ts("2024-03-20 10:05"), ts("2024-04-01 00:00")],
    "event_name": ["session_start", "add_to_cart", "session_start"],
})
FX = pd.DataFrame({
    "date": pd.to_datetime(["2024-03-01", "2024-03-31", "2024-04-01", "2024-01-01"]).date,
    "currency": ["EUR", "EUR", "EUR", "GBP"],
    "rate_to_base": [1.10, 1.20, 1.30, 1.25],
})


def write(dbt_warehouse, write_raw_tables, move=False):
    write_raw_tables(dbt_warehouse.path, transactions=transactions(move), users=USERS,
                     events=EVENTS, fx_rates=FX)


def features(wh) -> pd.DataFrame:
    return wh.query(f"select * from marts.customer_features where cutoff_date = date '{D}'"
                    ).set_index("user_id").sort_index()


def labels(wh) -> pd.DataFrame:
    return wh.query(f"select * from marts.customer_labels where cutoff_date = date '{D}'"
                    ).set_index("user_id").sort_index()


def counts(wh) -> dict[str, int]:
    return {t: int(wh.query(f"select count(*) as n from marts.{t}")["n"][0])
            for t in ("customer_features", "customer_btyd_summary", "customer_labels")}


@pytest.fixture(scope="module")
def first_build(dbt_warehouse, write_raw_tables):
    write(dbt_warehouse, write_raw_tables)
    dbt_warehouse.build(VARS)
    return {"features": features(dbt_warehouse), "labels": labels(dbt_warehouse),
            "counts": counts(dbt_warehouse)}


def test_population_is_users_known_before_next_day(first_build):
    f = first_build["features"]
    # u4 signed up at D + 1 day 00:00 and bought later: not known at D.
    assert list(f.index) == ["u1", "u2", "u3", "u5", "u6"]
    assert f.loc["u3", "is_cold_start"] and f.loc["u3", "has_signup"]
    assert not f.loc["u1", "is_cold_start"]
    assert first_build["counts"] == {
        "customer_features": 5, "customer_btyd_summary": 4, "customer_labels": 5}


def test_a_line_loaded_twice_counts_once_and_null_ids_are_kept(first_build):
    f = first_build["features"]
    assert f.loc["u1", "n_orders"] == 2  # t1 once, t2
    assert f.loc["u1", "n_refunds"] == 1  # the refund carrying t1's id is not a duplicate
    assert f.loc["u2", "n_orders"] == 3  # both id-less rows and t4


def test_lines_of_one_transaction_are_one_order(first_build, dbt_warehouse):
    f = first_build["features"]
    assert f.loc["u6", "n_orders"] == 1
    assert f.loc["u6", "revenue_total"] == pytest.approx(15.0)  # 10 + 5, the repeat once
    assert f.loc["u6", "monetary_mean"] == pytest.approx(15.0)  # per order, not per line
    assert f.loc["u6", "monetary_max"] == pytest.approx(15.0)
    stg = dbt_warehouse.query("select sku from staging.stg_raw__transactions "
                              "where transaction_id = 't8' order by sku")
    assert stg["sku"].tolist() == ["X", "Y"]


def test_refunds_are_netted_from_revenue_and_margin(first_build):
    f = first_build["features"]
    # gross 100 + 50 EUR * 1.20 = 160; refund 30; margin (100 - 60) - 30 + 60 = 70
    assert f.loc["u1", "gross_revenue_total"] == pytest.approx(160.0)
    assert f.loc["u1", "refund_amount_total"] == pytest.approx(30.0)
    assert f.loc["u1", "revenue_total"] == pytest.approx(130.0)
    assert f.loc["u1", "margin_total"] == pytest.approx(70.0)
    assert f.loc["u1", "refund_rate"] == pytest.approx(0.5)


def test_fx_uses_latest_rate_on_or_before_the_transaction_date(first_build, dbt_warehouse):
    stg = dbt_warehouse.query(
        "select transaction_id, currency, rate_to_base, amount_base "
        "from staging.stg_raw__transactions where transaction_id in ('t2', 't3', 't4')"
    ).set_index("transaction_id")
    assert stg.loc["t2", "currency"] == "EUR"
    assert stg.loc["t2", "rate_to_base"] == pytest.approx(1.20)  # 03-31 rate, not 03-01 or 04-01
    assert stg.loc["t2", "amount_base"] == pytest.approx(60.0)
    assert stg.loc["t3", "currency"] == "USD"  # null currency is the base currency
    assert stg.loc["t3", "amount_base"] == pytest.approx(20.0)
    assert stg.loc["t4", "amount_base"] == pytest.approx(12.5)  # GBP rate from 2024-01-01
    f = first_build["features"]
    # u2: 10 + 10 + 12.5; margin (10 - 2) GBP * 1.25 = 10 for t4
    assert f.loc["u2", "revenue_total"] == pytest.approx(32.5)
    assert f.loc["u2", "margin_total"] == pytest.approx(30.0)


def test_features_stop_at_the_end_of_the_cutoff_day(first_build):
    f = first_build["features"]
    assert f.loc["u1", "max_source_ts"] == ts("2024-03-31 23:00")  # not the D + 1 event
    assert f.loc["u1", "recency_days"] == 0 and f.loc["u1", "tenure_days"] == 81
    assert f.loc["u1", "n_events"] == 0
    assert f.loc["u1", "country"] == "DE" and f.loc["u1", "device"] == "ios"
    assert f.loc["u3", "sessions_30d"] == 1 and f.loc["u3", "abandoned_cart_days_30d"] == 1
    assert f.loc["u3", "cart_abandonment_rate_30d"] == pytest.approx(1.0)
    assert f.loc["u3", "days_since_signup"] == 16
    assert (f["max_source_ts"] < ts("2024-04-01")).all()


def test_btyd_summary_nets_refunds_on_their_day_only(first_build, dbt_warehouse):
    s = dbt_warehouse.query(
        f"select * from marts.customer_btyd_summary where cutoff_date = date '{D}'"
    ).set_index("user_id")
    # u1 purchase days 2024-01-10 and 2024-03-31 (the refund day is no purchase day)
    assert s.loc["u1", ["frequency", "recency", "T"]].tolist() == [1, 81, 81]
    assert s.loc["u1", "monetary_value"] == pytest.approx(60.0)
    assert s.loc["u2", ["frequency", "recency", "T"]].tolist() == [1, 14, 59]
    assert s.loc["u2", "monetary_value"] == pytest.approx(12.5)


def test_labels_cover_the_window_and_give_zeros_without_purchases(first_build):
    lab = first_build["labels"]
    assert lab.loc["u1", ["value", "n_orders"]].tolist() == [pytest.approx(20.0), 1]
    assert lab.loc["u1", "label_min_ts"] == ts("2024-04-15 08:00")
    assert lab.loc["u3", ["value", "margin", "n_orders"]].tolist() == [0.0, 0.0, 0]
    assert pd.isna(lab.loc["u3", "label_min_ts"])
    assert (lab["label_start_date"] == ts("2024-04-01")).all()
    assert (lab["label_end_date"] == ts("2024-05-01")).all()
    # The log ends 2024-04-15, before the window's last day (2024-04-30).
    assert not lab["is_window_complete"].any()


def test_cohort_revenue_uses_signup_month_else_first_purchase_month(first_build, dbt_warehouse):
    c = dbt_warehouse.query("select * from marts.cohort_revenue")
    by_cohort = c.groupby("cohort_month")["revenue"].sum()
    # u1 signed up 2023-12: 100 - 30 + 60 + 20; u2 (no signup) first bought 2024-02: 32.5 and
    # u5 65; u6 first bought 2024-03: 15; u4 signed up 2024-04: 99.
    assert by_cohort[ts("2023-12-01")] == pytest.approx(150.0)
    assert by_cohort[ts("2024-02-01")] == pytest.approx(97.5)
    assert by_cohort[ts("2024-03-01")] == pytest.approx(15.0)
    assert by_cohort[ts("2024-04-01")] == pytest.approx(99.0)
    assert c["revenue"].sum() == pytest.approx(150.0 + 97.5 + 15.0 + 99.0)


def test_building_a_cutoff_again_replaces_it(first_build, dbt_warehouse):
    # Same raw data: rebuilding the marts alone (incremental: the pre-hook deletes the cutoffs, then append) is enough.
    dbt_warehouse.build(VARS, "--select", "path:models/marts")
    assert counts(dbt_warehouse) == first_build["counts"]
    pd.testing.assert_frame_equal(features(dbt_warehouse), first_build["features"])


def test_a_transaction_moved_to_the_next_day_leaves_features_and_enters_the_label_on_rebuild(
    first_build, dbt_warehouse, write_raw_tables
):
    before_f, before_l = first_build["features"], first_build["labels"]
    assert before_f.loc["u5", "n_orders"] == 2
    assert before_f.loc["u5", "revenue_total"] == pytest.approx(65.0)
    assert before_l.loc["u5", ["value", "n_orders"]].tolist() == [0.0, 0]

    # t7: 2024-03-31 12:00 -> 2024-04-01 00:00; and u6's only purchase disappears.
    write(dbt_warehouse, write_raw_tables, move=True)
    dbt_warehouse.build(VARS)
    after_f, after_l = features(dbt_warehouse), labels(dbt_warehouse)

    assert after_f.loc["u5", "n_orders"] == 1
    assert after_f.loc["u5", "revenue_total"] == pytest.approx(40.0)
    assert after_f.loc["u5", "recency_days"] == 59
    assert after_f.loc["u5", "max_source_ts"] == ts("2024-02-01 10:00")
    assert after_l.loc["u5", ["value", "n_orders"]].tolist() == [pytest.approx(25.0), 1]
    assert after_l.loc["u5", "label_min_ts"] == ts("2024-04-01 00:00")
    # The rebuilt cutoff was replaced, not appended: u6 is gone from every mart, and nobody
    # else changed.
    assert "u6" not in after_f.index and "u6" not in after_l.index
    others = [u for u in before_f.index if u not in ("u5", "u6")]
    pd.testing.assert_frame_equal(after_f.loc[others], before_f.loc[others])
    assert counts(dbt_warehouse) == {
        "customer_features": 4, "customer_btyd_summary": 3, "customer_labels": 4}
