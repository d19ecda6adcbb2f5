"""GX suites (lib/quality_suites) run by lib/quality: pass on clean frames, fail with the right
expectation, count and sample on planted bad rows, and never pass an expectation that raised."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ltv_pipeline.lib import quality
from ltv_pipeline.lib import quality_suites as qs

D = pd.Timestamp("2024-01-31")


def ts(values) -> pd.DatetimeIndex:
    return pd.to_datetime(values, format="ISO8601")


def transactions() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["u1", "u1", "u2"],
        "ts": ts(["2024-01-01 10:00", "2024-01-05 11:00", "2024-01-07 12:00"]),
        "amount": [10.0, 5.0, 7.5],
        "transaction_id": ["t1", "t2", "t3"],
        "currency": ["USD", "EUR", "USD"],
        "is_refund": [False, True, False],
        "variable_cost": [4.0, None, 3.0],
        "channel": ["web", None, "app"],
        "sku": None,
        "country": None,
        "_row": [1, 2, 3],
    })


def users() -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["u1", "u2"], "signup_ts": ts(["2023-12-01", None]),
                         "country": None, "device": None, "acquisition_source": None, "_row": [1, 2]})


def events() -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["u1", "u2"], "ts": ts(["2024-01-01", "2024-01-02"]),
                         "event_name": ["session_start", "add_to_cart"], "metadata_json": None,
                         "_row": [1, 2]})


def fx_rates() -> pd.DataFrame:
    return pd.DataFrame({"date": ts(["2024-01-01", "2024-01-01", "2024-01-02"]),
                         "currency": ["EUR", "GBP", "EUR"], "rate_to_base": [1.1, 1.3, 1.09],
                         "_row": [1, 2, 3]})


def features() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["u1", "u2", "u1"],
        "cutoff_date": ts(["2024-01-31", "2024-01-31", "2024-02-29"]).date,
        "max_source_ts": ts(["2024-01-31 23:59:59", "2024-01-02", "2024-02-10"]),
        "n_orders": [2, 1, 3], "n_purchase_days": [2, 1, 3], "frequency": [1, 0, 2],
        "n_refunds": [0, 0, 1], "n_events": [4, 0, 5],
    })


def summary() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["u1", "u2"], "cutoff_date": [D, D], "frequency": [2, 0],
        "recency": [20, 0], "T": [90, 0], "monetary_value": [40.0, 0.0],
        "max_source_ts": ts(["2024-01-21 09:00", "2024-01-31 23:59:59"]),
    })


def labels() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["u1", "u2"], "cutoff_date": [D, D], "horizon_days": [30, 30],
        "label_start_date": ts(["2024-02-01"] * 2).date,
        "label_end_date": ts(["2024-03-02"] * 2).date,
        "value": [12.0, 0.0], "margin": [4.0, 0.0], "n_orders": [1, 0],
        # first day of the window at midnight and its last second are inside
        "label_min_ts": ts(["2024-02-01 00:00:00", None]),
        "label_max_ts": ts(["2024-03-01 23:59:59", None]),
    })


def cohorts() -> pd.DataFrame:
    return pd.DataFrame({
        "cohort_month": ts(["2024-01-01", "2024-01-01"]),
        "activity_date": ts(["2024-01-03", "2024-01-04"]),
        "revenue": [10.0, -2.0], "n_active_users": [1, 1], "n_purchasing_users": [1, 0],
        "n_orders": [1, 0], "n_refunds": [0, 1],
    })


CLEAN = [
    (qs.raw_transactions_suite, transactions),
    (qs.raw_users_suite, users),
    (qs.raw_events_suite, events),
    (qs.fx_rates_suite, fx_rates),
    (qs.customer_features_suite, features),
    (qs.customer_btyd_summary_suite, summary),
    (qs.customer_labels_suite, labels),
    (qs.cohort_revenue_suite, cohorts),
    (qs.history_leakage_suite, features),
    (qs.history_leakage_suite, summary),
    (qs.label_window_suite, labels),
]


@pytest.mark.parametrize(("builder", "frame"), CLEAN, ids=lambda x: x.__name__)
def test_suite_passes_on_clean_frame(builder, frame):
    suite = builder()
    result = quality.run_suite(frame(), suite)
    assert result.success, result.summary()
    assert result.failed == []
    assert result.evaluated == len(suite.suite.expectations) > 0
    assert result.rows == len(frame())


def only_failure(result: quality.QualityResult) -> quality.FailedExpectation:
    assert not result.success
    assert len(result.failed) == 1, result.summary()
    return result.failed[0]


def test_null_user_id_fails_not_null_with_file_row_in_sample():
    df = transactions()
    df.loc[1, "user_id"] = None
    failure = only_failure(quality.run_suite(df, qs.raw_transactions_suite()))
    assert failure.type == "expect_column_values_to_not_be_null"
    assert failure.columns == ["user_id"]
    assert failure.unexpected_count == 1
    assert failure.sample == [{"user_id": None, "_row": 2, "transaction_id": "t2"}]


def test_negative_amount_fails_range_with_amount_in_sample():
    df = transactions()
    df.loc[2, "amount"] = -3.0
    failure = only_failure(quality.run_suite(df, qs.raw_transactions_suite()))
    assert (failure.type, failure.columns) == ("expect_column_values_to_be_between", ["amount"])
    assert failure.unexpected_count == 1
    assert failure.unexpected_percent == pytest.approx(100 / 3)
    assert failure.sample[0]["amount"] == -3.0 and failure.sample[0]["_row"] == 3


def test_repeated_line_and_lowercase_currency_both_fail_but_lines_of_one_id_pass():
    df = pd.concat([transactions(), transactions().iloc[[0, 0]]], ignore_index=True)
    df.loc[3, "amount"] = 2.5  # a second line of t1: kept
    df["_row"] = [1, 2, 3, 4, 5]  # row 5 repeats row 1 in every contract column
    df.loc[1, "transaction_id"] = "t1"  # t2 becomes t1's refund: another line
    df.loc[2, "currency"] = "usd"
    result = quality.run_suite(df, qs.raw_transactions_suite())
    by_rule = {(f.type, tuple(f.columns)): f for f in result.failed}
    repeated = ("expect_column_values_to_be_in_set", ("repeats_a_line",))
    currency = ("expect_column_values_to_be_in_set", ("currency",))
    assert set(by_rule) == {repeated, currency}
    assert by_rule[repeated].unexpected_count == 1
    assert [r["_row"] for r in by_rule[repeated].sample] == [5]
    assert by_rule[currency].sample[0]["currency"] == "usd"


@pytest.mark.parametrize("code", ["ABC", "EURO", "US", "€"])
def test_currency_that_is_not_an_iso_4217_code_fails(code):
    """Stricter than the three-letter pattern it replaced: ABC has the shape but is no code."""
    df = transactions()
    df.loc[1, "currency"] = code
    failure = only_failure(quality.run_suite(df, qs.raw_transactions_suite()))
    assert (failure.type, failure.columns) == ("expect_column_values_to_be_in_set", ["currency"])
    assert failure.sample == [{"currency": code, "_row": 2, "transaction_id": "t2", "user_id": "u1"}]


def test_iso_currency_list_holds_current_and_historic_codes():
    from ltv_pipeline.lib.currencies import ISO_4217_CODES

    assert {"USD", "EUR", "GBP", "JPY", "CHF", "DEM", "XAU"} <= ISO_4217_CODES
    assert all(len(c) == 3 and c.isalpha() and c.isupper() for c in ISO_4217_CODES)
    assert not {"ABC", "XYZ", "EURO"} & ISO_4217_CODES


def test_unknown_event_name_fails_value_set():
    df = events()
    df.loc[0, "event_name"] = "page_scroll"
    failure = only_failure(quality.run_suite(df, qs.raw_events_suite()))
    assert (failure.type, failure.columns) == ("expect_column_values_to_be_in_set", ["event_name"])
    assert failure.unexpected_count == 1
    assert failure.sample[0]["event_name"] == "page_scroll"


def test_duplicate_user_in_users_fails_uniqueness():
    df = users()
    df.loc[1, "user_id"] = "u1"
    failure = only_failure(quality.run_suite(df, qs.raw_users_suite()))
    assert (failure.type, failure.unexpected_count) == ("expect_column_values_to_be_unique", 2)


def test_fx_rates_duplicate_date_currency_and_zero_rate_fail():
    df = fx_rates()
    df.loc[2, "date"] = pd.Timestamp("2024-01-01")
    df.loc[1, "rate_to_base"] = 0.0
    result = quality.run_suite(df, qs.fx_rates_suite())
    by_type = {f.type: f for f in result.failed}
    assert set(by_type) == {"expect_compound_columns_to_be_unique", "expect_column_values_to_be_between"}
    assert by_type["expect_compound_columns_to_be_unique"].columns == ["date", "currency"]
    assert by_type["expect_compound_columns_to_be_unique"].unexpected_count == 2
    assert by_type["expect_column_values_to_be_between"].sample[0]["currency"] == "GBP"


def test_duplicate_user_cutoff_in_features_fails_compound_uniqueness():
    df = pd.concat([features(), features().iloc[[1]]], ignore_index=True)
    failure = only_failure(quality.run_suite(df, qs.customer_features_suite()))
    assert failure.type == "expect_compound_columns_to_be_unique"
    assert failure.columns == ["user_id", "cutoff_date"]
    assert failure.unexpected_count == 2
    assert all(r["user_id"] == "u2" for r in failure.sample)


def test_recency_beyond_T_and_negative_frequency_fail_btyd_summary():
    df = summary()
    df.loc[0, "recency"] = 91
    df.loc[1, "frequency"] = -1
    result = quality.run_suite(df, qs.customer_btyd_summary_suite())
    failed = {(f.type, tuple(f.columns)): f for f in result.failed}
    assert set(failed) == {
        ("expect_column_pair_values_a_to_be_greater_than_b", ("T", "recency")),
        ("expect_column_values_to_be_between", ("frequency",)),
    }
    pair = failed[("expect_column_pair_values_a_to_be_greater_than_b", ("T", "recency"))]
    assert pair.sample[0]["user_id"] == "u1" and pair.sample[0]["recency"] == 91


def test_feature_row_with_source_ts_on_next_day_is_leakage():
    df = features()
    df.loc[1, "max_source_ts"] = pd.Timestamp("2024-02-01 00:00:00")  # D + 1 day, midnight
    failure = only_failure(quality.run_suite(df, qs.history_leakage_suite()))
    assert failure.type == "expect_column_pair_values_a_to_be_greater_than_b"
    assert failure.columns == ["history_end", "max_source_ts"]
    assert failure.unexpected_count == 1
    [row] = failure.sample
    assert row["user_id"] == "u2" and row["max_source_ts"] == "2024-02-01T00:00:00"
    assert row["history_end"] == "2024-02-01T00:00:00"


def test_missing_max_source_ts_is_not_a_silent_pass():
    df = summary()
    df.loc[0, "max_source_ts"] = pd.NaT
    failure = only_failure(quality.run_suite(df, qs.history_leakage_suite()))
    assert (failure.type, failure.columns) == ("expect_column_values_to_not_be_null", ["max_source_ts"])


def test_label_before_window_start_fails():
    df = labels()
    df.loc[0, "label_min_ts"] = pd.Timestamp("2024-01-31 23:00")  # on D: history, not label
    failure = only_failure(quality.run_suite(df, qs.label_window_suite()))
    assert failure.columns == ["label_min_ts", "window_start"]
    assert failure.sample[0]["user_id"] == "u1" and failure.sample[0]["horizon_days"] == 30


def test_label_on_window_end_and_wrong_declared_end_fail():
    df = labels()
    df.loc[0, "label_max_ts"] = pd.Timestamp("2024-03-02 00:00")  # D + 1 + H: first day after
    df.loc[1, "label_end_date"] = pd.Timestamp("2024-03-03").date()
    result = quality.run_suite(df, qs.label_window_suite())
    by_cols = {tuple(f.columns): f for f in result.failed}
    assert set(by_cols) == {("window_end", "label_max_ts"), ("label_end_date", "window_end")}
    assert by_cols[("window_end", "label_max_ts")].sample[0]["user_id"] == "u1"
    assert by_cols[("label_end_date", "window_end")].sample[0]["user_id"] == "u2"


def test_training_cutoff_whose_window_passes_scoring_date_fails():
    scoring = "2024-06-30"
    df = pd.DataFrame({
        "cutoff_date": ts(["2024-03-31", "2024-04-01", "2024-04-02"]),
        "horizon_days": [90, 90, 90],
    })
    # 2024-04-01 + 1 + 90 days = 2024-07-01: the window's last day is the scoring date (ok);
    # 2024-04-02's window reaches 2024-07-01, after the scoring date.
    failure = only_failure(quality.run_suite(df, qs.training_window_suite(scoring)))
    assert failure.columns == ["known_end", "label_window_end"]
    assert failure.unexpected_count == 1
    assert failure.sample[0]["cutoff_date"] == "2024-04-02T00:00:00"
    assert quality.run_suite(df.iloc[:2], qs.training_window_suite(scoring)).success


def test_expectation_on_missing_column_is_a_failure_with_its_message():
    result = quality.run_suite(transactions().drop(columns=["amount"]), qs.raw_transactions_suite())
    assert not result.success
    errored = [f for f in result.failed if f.exceptions]
    assert {f.type for f in errored} == {
        "expect_column_values_to_not_be_null", "expect_column_values_to_be_between"}
    assert all('"amount"' in f.exceptions[0] and "does not exist" in f.exceptions[0] for f in errored)
    [columns] = [f for f in result.failed if f.type == "expect_table_columns_to_match_set"]
    assert columns.observed["mismatched"]["missing"] == ["amount"]


def test_expectation_that_raises_on_bad_types_is_a_failure():
    df = transactions().astype({"amount": str})
    result = quality.run_suite(df, qs.raw_transactions_suite())
    [failure] = [f for f in result.failed if f.columns == ["amount"]]
    assert failure.exceptions and "same type" in failure.exceptions[0]
    assert "raised" in result.summary()


def test_leakage_rule_that_cannot_be_computed_fails():
    failure = only_failure(quality.run_suite(features().drop(columns=["cutoff_date"]),
                                             qs.history_leakage_suite()))
    assert failure.type == "derive_columns" and "cutoff_date" in failure.exceptions[0]


@pytest.mark.parametrize(("builder", "frame"), [(qs.label_window_suite, labels),
                                                (qs.raw_transactions_suite, transactions)])
def test_run_suite_leaves_the_input_frame_alone(builder, frame):
    df = frame()
    df.loc[0, df.columns[0]] = None  # a failing row too: GX filters and samples it
    before = df.copy()
    quality.run_suite(df, builder())
    pd.testing.assert_frame_equal(df, before)
    assert not pd.options.mode.copy_on_write  # validation's copy-on-write does not leak out


def test_row_counts_account_for_every_file_row():
    ok = {"batch_id": "b1", "table_name": "transactions", "rows_in_file": 10, "raw_rows": 8,
          "quarantined_rows": 2, "rows_loaded": 8, "rows_quarantined": 2, "rows_from_other_batches": 0}
    assert quality.row_count_consistency([ok]).success
    lost = {**ok, "raw_rows": 7}
    result = quality.row_count_consistency([ok, {**lost, "table_name": "events"}])
    failed = {tuple(f.columns): f for f in result.failed}
    assert set(failed) == {("accounted_rows", "rows_in_file"), ("raw_rows", "rows_loaded")}
    assert failed[("accounted_rows", "rows_in_file")].sample[0]["table_name"] == "events"


def test_row_counts_without_any_logged_batch_fail():
    result = quality.row_count_consistency([])
    assert [f.type for f in result.failed] == ["expect_table_row_count_to_be_between"]


def test_save_result_writes_failures_and_the_gx_result(tmp_path):
    df = transactions()
    df.loc[0, "amount"] = -1.0
    result = quality.run_suite(df, qs.raw_transactions_suite())
    path = quality.save_result(result, tmp_path / "q" / "r.json")
    saved = json.loads(path.read_text())
    assert saved["success"] is False and saved["suite"] == "raw_transactions"
    assert saved["failed"][0]["sample"][0]["amount"] == -1.0
    assert saved["gx_result"]["success"] is False
    assert len(saved["gx_result"]["results"]) == result.evaluated


def test_markdown_lists_failed_expectation_and_offending_row():
    df = events()
    df.loc[1, "event_name"] = "teleport"
    md = quality.run_suite(df, qs.raw_events_suite()).to_markdown()
    assert "| expect_column_values_to_be_in_set | event_name | 1 | 50 |" in md
    assert "teleport" in md


def test_columns_a_suite_does_not_read_are_ignored_but_not_by_unknown_table_rules():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    wide = transactions().assign(extra_1=1, extra_2="x")
    assert quality.run_suite(wide, qs.raw_transactions_suite()).success
    # a table-level rule the engine cannot reason about sees the whole frame
    count = quality.QualitySuite(gx.ExpectationSuite(
        name="count", expectations=[gxe.ExpectTableColumnCountToEqual(value=wide.shape[1])]))
    assert quality.run_suite(wide, count).success


def test_gx_does_not_fingerprint_the_frame():
    """lib/quality switches off GX's whole-frame hash (a third of the time on large frames);
    if GX moves the switch, this fails instead of validation silently slowing down."""
    result = quality.run_suite(pd.DataFrame({"user_id": ["a", "b"], "_row": [1, 2]}),
                               qs.raw_users_suite())
    assert "pandas_data_fingerprint" not in result.gx_result["meta"]["batch_markers"]


def test_gx_lets_go_of_the_validated_frame():
    # GX's project manager keeps the last context, and its batch, alive: without dropping the
    # data source, every check's frame stayed in memory until the next suite ran.
    import gc

    def alive() -> int:
        gc.collect()
        return sum(isinstance(o, pd.DataFrame) and "probe_only_here" in o.columns for o in gc.get_objects())

    suite = qs.make_suite("probe", [quality.gxe.ExpectColumnValuesToNotBeNull(column="probe_only_here")])
    frame = transactions().assign(probe_only_here=1)
    result = quality.run_suite(frame, suite)
    assert result.success and result.evaluated == 1
    del frame
    assert alive() == 0
