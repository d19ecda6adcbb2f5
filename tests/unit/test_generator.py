"""The synthetic log generator: contract, determinism, BTYD-like statistics, drift, parquet."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import schema
from ltv_pipeline.lib.generator import generate, write

N_USERS = 10_000
START, END = date(2023, 1, 1), date(2025, 12, 31)
DRIFT_AT = date(2025, 1, 1)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return generate(N_USERS, seed=11)


@pytest.fixture(scope="module")
def drifted() -> dict[str, pd.DataFrame]:
    return generate(N_USERS, seed=11, drift_at=DRIFT_AT)


def _purchases(tables):
    tx = tables["transactions"]
    return tx[~tx["is_refund"]]


def test_same_seed_gives_identical_frames():
    a, b = generate(3_000, seed=5), generate(3_000, seed=5)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


def test_different_seed_gives_different_frames():
    a, b = generate(3_000, seed=5), generate(3_000, seed=6)
    for name in a:
        assert not a[name].equals(b[name]), name


def test_tables_follow_the_input_contract(tables):
    assert set(tables) == set(schema.CONTRACTS)
    for name, frame in tables.items():
        contract = schema.CONTRACTS[name]
        assert list(frame.columns) == list(contract.columns), name
        for col, kind in contract.columns.items():
            s = frame[col]
            if kind == "timestamp":
                assert s.dtype == "datetime64[ns]", (name, col)
            elif kind == "date":
                assert s.map(type).eq(date).all(), (name, col)
            elif kind == "float":
                assert s.dtype == np.float64 and np.isfinite(s).all(), (name, col)
            elif kind == "bool":
                assert s.dtype == bool, (name, col)
            elif col != "metadata_json":  # the one column that may be null
                assert s.map(type).eq(str).all(), (name, col)
        assert len(frame) > 0, name


def test_ids_are_unique_and_reference_known_users(tables):
    users, tx, events = tables["users"], tables["transactions"], tables["events"]
    assert users["user_id"].is_unique and len(users) == N_USERS
    assert tx["transaction_id"].is_unique
    assert users["user_id"].str.fullmatch(r"u\d{7}").all()
    assert tx["transaction_id"].str.fullmatch(r"t\d{8}").all()
    known = set(users["user_id"])
    assert set(tx["user_id"]) <= known and set(events["user_id"]) <= known


def test_no_activity_outside_the_window_or_before_signup(tables):
    lo, hi = pd.Timestamp(START), pd.Timestamp(END) + pd.Timedelta(days=1)
    signup = tables["users"].set_index("user_id")["signup_ts"]
    assert signup.between(lo, hi, inclusive="left").all()
    for name in ("transactions", "events"):
        frame = tables[name]
        assert frame["ts"].between(lo, hi, inclusive="left").all(), name
        assert (frame["ts"] >= frame["user_id"].map(signup)).all(), name


def test_refunds_follow_a_purchase_of_at_least_their_amount(tables):
    tx = tables["transactions"].sort_values("ts", kind="stable")
    refunds = tx["is_refund"]
    assert (tx["amount"] > 0).all()
    best_so_far = (tx["amount"].where(~refunds, 0.0)
                   .groupby([tx["user_id"], tx["currency"]]).cummax())
    assert (best_so_far[refunds] >= tx.loc[refunds, "amount"]).all()


def test_variable_cost_is_40_to_70_percent_of_amount(tables):
    tx = tables["transactions"]
    share = tx["variable_cost"] / tx["amount"]
    assert share[tx["amount"] >= 5].between(0.39, 0.71).all()


def test_currency_follows_country_and_usd_is_the_majority(tables):
    tx = tables["transactions"]
    expected = tx["country"].map({"DE": "EUR", "FR": "EUR", "GB": "GBP"}).fillna("USD")
    assert (tx["currency"] == expected).all()
    mix = tx["currency"].value_counts(normalize=True)
    assert mix["USD"] > 0.5 and mix["EUR"] > 0.05 and mix["GBP"] > 0.05


def test_fx_rates_cover_every_day_for_each_non_base_currency(tables):
    fx = tables["fx_rates"]
    days = pd.date_range(START, END, freq="D").date
    assert set(fx["currency"]) == {"EUR", "GBP"}
    for cur, center in (("EUR", 1.08), ("GBP", 1.27)):
        rows = fx[fx["currency"] == cur]
        assert list(rows["date"]) == list(days)
        assert rows["rate_to_base"].between(0.75 * center, 1.25 * center).all()
        assert rows["rate_to_base"].nunique() > 100  # it walks


def test_events_use_known_names_and_small_json_metadata(tables):
    events = tables["events"]
    assert events["event_name"].isin(schema.EVENT_NAMES).all()
    assert set(events["event_name"]) == set(schema.EVENT_NAMES)
    meta = events["metadata_json"].dropna()
    assert len(meta) > 0 and events["metadata_json"].isna().any()
    assert all(json.loads(m)["sku"].startswith("sku_") for m in meta.iloc[:2000])
    assert 3 <= len(events) / N_USERS <= 8


def test_one_time_buyer_share_is_btyd_like(tables):
    orders_per_buyer = _purchases(tables).groupby("user_id").size()
    assert 0.40 <= (orders_per_buyer == 1).mean() <= 0.65
    assert orders_per_buyer.max() >= 20  # heterogeneous rates: some heavy buyers


def test_refund_rows_are_3_to_6_percent(tables):
    assert 0.03 <= tables["transactions"]["is_refund"].mean() <= 0.06


def test_some_users_never_buy(tables):
    buyers = tables["transactions"]["user_id"].nunique()
    assert 0.1 <= 1 - buyers / N_USERS <= 0.6


def test_holiday_season_has_higher_purchase_intensity(tables):
    ts = _purchases(tables)["ts"]
    october = ts.between("2024-10-01", "2024-11-01", inclusive="left").sum() / 31
    holiday = ts.between("2024-11-20", "2024-12-25", inclusive="left").sum() / 35
    assert holiday > 1.2 * october


def test_recent_browsing_signals_future_purchases(tables):
    cutoff, purchases, events = pd.Timestamp("2024-06-01"), _purchases(tables), tables["events"]
    buyers = purchases.loc[purchases["ts"] < cutoff, "user_id"].unique()
    recent = events.loc[events["ts"].between(cutoff - pd.Timedelta(days=30), cutoff,
                                             inclusive="left"), "user_id"]
    future = purchases.loc[purchases["ts"].between(cutoff, cutoff + pd.Timedelta(days=90),
                                                   inclusive="left"), "user_id"]
    browsed = pd.Series(buyers).isin(set(recent))
    bought = pd.Series(buyers).isin(set(future))
    assert browsed.any() and (~browsed).any()
    assert bought[browsed].mean() > 2 * bought[~browsed].mean()


def test_drift_leaves_rows_before_drift_at_identical(tables, drifted):
    cut = pd.Timestamp(DRIFT_AT)
    for name, col in (("transactions", "ts"), ("events", "ts"), ("users", "signup_ts")):
        before = tables[name][tables[name][col] < cut].reset_index(drop=True)
        before_drifted = drifted[name][drifted[name][col] < cut].reset_index(drop=True)
        assert len(before) > 0
        pd.testing.assert_frame_equal(before, before_drifted, check_exact=True)
    pd.testing.assert_frame_equal(tables["fx_rates"], drifted["fx_rates"], check_exact=True)
    assert not tables["transactions"].equals(drifted["transactions"])


def test_drift_lowers_purchase_rate_and_raises_spend_after_drift_at(tables, drifted):
    def after(t):
        p = _purchases(t)
        return p[p["ts"] >= pd.Timestamp(DRIFT_AT)]

    base, shifted = after(tables), after(drifted)
    # Same users, same lifetimes: fewer purchases after drift_at means a lower rate per alive user.
    assert len(shifted) < 0.8 * len(base)
    usd_base, usd_shifted = (p.loc[p["currency"] == "USD", "amount"] for p in (base, shifted))
    assert usd_shifted.mean() > 1.15 * usd_base.mean()
    market = [(p["channel"] == "marketplace").mean() for p in (base, shifted)]
    assert market[1] > market[0] + 0.1


def test_custom_window_is_respected():
    start, end = date(2024, 3, 1), date(2024, 5, 31)
    tables = generate(2_000, seed=2, start=start, end=end)
    lo, hi = pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1)
    assert tables["transactions"]["ts"].between(lo, hi, inclusive="left").all()
    assert tables["events"]["ts"].between(lo, hi, inclusive="left").all()
    assert len(tables["fx_rates"]) == 2 * 92


@pytest.mark.parametrize("kwargs", [{"n_users": 0}, {"end": date(2022, 12, 31)}])
def test_bad_arguments_raise_value_error(kwargs):
    args = {"n_users": 10, "seed": 0, **kwargs}
    with pytest.raises(ValueError):
        generate(**args)


def test_write_round_trips_through_parquet(tmp_path):
    tables = generate(2_000, seed=3)
    out = tmp_path / "nested" / "out"
    paths = write(tables, out)
    assert paths == {name: out / f"{name}.parquet" for name in tables}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.parquet" for n in tables)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(pd.read_parquet(paths[name]), frame, check_exact=True)
