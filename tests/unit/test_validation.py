"""Row-level quarantine and whole-file errors of the input contract."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from ltv_pipeline.lib.errors import InputError
from ltv_pipeline.lib import validation
from ltv_pipeline.lib.validation import validate_table

NOW = datetime(2026, 1, 1)


def tx(**cols) -> pd.DataFrame:
    base = {
        "user_id": ["a", "b", "c"],
        "ts": ["2025-01-01", "2025-01-02T10:00:00", "2025-01-03 11:30:00"],
        "amount": ["10.5", "20", "30"],
    }
    base.update(cols)
    return pd.DataFrame(base)


def reasons(bad: pd.DataFrame) -> list[str]:
    return list(bad["reason"])


def test_clean_rows_are_typed_and_optional_columns_added():
    clean, bad = validate_table("transactions", tx(), "tx.csv", now=NOW)
    assert bad.empty
    assert list(clean["amount"]) == [10.5, 20.0, 30.0]
    assert str(clean["ts"].dtype) == "datetime64[us]"
    assert clean["ts"].iloc[2] == pd.Timestamp("2025-01-03 11:30:00")
    assert list(clean["currency"]) == ["USD"] * 3
    assert list(clean["is_refund"]) == [False] * 3
    assert list(clean["_row"]) == [1, 2, 3]


@pytest.mark.parametrize(
    "column, values, reason",
    [
        ("user_id", [None, "b", "c"], "missing user_id"),
        ("ts", ["not a date", "2025-01-02", "2025-01-03"], "unparseable ts (expected ISO 8601)"),
        ("ts", ["2031-01-01", "2025-01-02", "2025-01-03"], "ts in the future"),
        ("amount", ["ten", "20", "30"], "non-numeric amount"),
        ("amount", ["NaN", "20", "30"], "amount is NaN or infinite"),
        ("amount", ["-5", "20", "30"], "negative amount without is_refund"),
        ("currency", ["XYZ", "USD", None], "currency without an fx rate"),
        ("transaction_id", ["t1", "t1", "t2"], "transaction_id of another user_id"),
    ],
)
def test_bad_rows_go_to_quarantine_with_a_reason(column, values, reason):
    frame = tx(**{column: values})
    clean, bad = validate_table("transactions", frame, "tx.csv", now=NOW)
    assert reasons(bad) == [reason]
    assert len(clean) + len(bad) == len(frame)
    # the quarantined row keeps its values as given and its row number
    assert bad["_row"].iloc[0] == (2 if column == "transaction_id" else 1)


def test_rows_sharing_a_transaction_id_are_its_lines_unless_repeated_exactly():
    frame = pd.DataFrame({
        "user_id": ["a", "a", "a", "a", "a", "b", "c", "c"],
        "ts": ["2025-01-01"] * 3 + ["2025-01-09", "2025-01-01", "2025-01-01", "2025-01-02",
                                    "2025-01-02"],
        "amount": ["10", "4", "10", "10", "4", "7", "3", "3"],
        "sku": ["x", "y", "x", "x", "y", "z", None, None],
        "transaction_id": ["o1", "o1", "o1", "o1", "o1", "o1", None, None],
        "is_refund": ["false", "false", "false", "true", "false", "false", "false", "false"],
    })
    clean, bad = validate_table("transactions", frame, "tx.csv", now=NOW)
    # two items of o1, then the refund of the first item (it carries the order's id)
    assert list(clean["amount"]) == [10.0, 4.0, 10.0, 3.0, 3.0]
    assert list(clean["is_refund"]) == [False, False, True, False, False]
    assert list(clean["_row"]) == [1, 2, 4, 7, 8]  # rows without an id are never duplicates
    assert dict(zip(bad["_row"], bad["reason"])) == {
        3: validation.DUPLICATE_LINE, 5: validation.DUPLICATE_LINE,
        6: "transaction_id of another user_id"}


def test_refund_with_positive_amount_is_accepted():
    clean, bad = validate_table(
        "transactions", tx(is_refund=["false", "true", "0"]), "tx.csv", now=NOW
    )
    assert bad.empty
    assert list(clean["is_refund"]) == [False, True, False]


def test_known_currency_from_fx_rates_is_accepted():
    clean, bad = validate_table(
        "transactions", tx(currency=["eur", "USD", "GBP"]), "tx.csv", {"EUR", "GBP"}, now=NOW
    )
    assert bad.empty and list(clean["currency"]) == ["EUR", "USD", "GBP"]


def test_huge_outlier_is_quarantined():
    n = 500
    frame = pd.DataFrame(
        {"user_id": [f"u{i}" for i in range(n)], "ts": ["2025-01-01"] * n,
         "amount": [str(10 + i % 50) for i in range(n - 1)] + ["1e12"]}
    )
    clean, bad = validate_table("transactions", frame, "tx.csv", now=NOW)
    assert len(bad) == 1 and bad["reason"].iloc[0].startswith("implausible amount")
    assert bad["amount"].iloc[0] == "1e12"


def test_numeric_user_ids_are_read_as_strings():
    frame = tx(user_id=[1.0, 2.0, None])
    clean, bad = validate_table("transactions", frame, "tx.parquet", now=NOW)
    assert list(clean["user_id"]) == ["1", "2"]
    assert reasons(bad) == ["missing user_id"]


def test_ids_of_mixed_types_name_the_same_user():
    # one export wrote 12, another 12.0 (a float column), a third padded it with spaces
    frame = tx(user_id=["12", "12.0", " 12 "])
    clean, bad = validate_table("transactions", frame, "tx.csv", now=NOW)
    assert bad.empty and list(clean["user_id"]) == ["12", "12", "12"]
    mixed = tx(user_id=[12, 12.0, "12"])  # an object column as a DataFrame source hands it over
    clean, _ = validate_table("transactions", mixed, "tx", now=NOW)
    assert list(clean["user_id"]) == ["12", "12", "12"]


def test_numeric_ids_in_scientific_notation_lost_digits():
    frame = tx(user_id=["123456789012", "1.23457E+11", "123456789013"])
    clean, bad = validate_table("transactions", frame, "tx.csv", now=NOW)
    assert list(clean["user_id"]) == ["123456789012", "123456789013"]
    assert reasons(bad) == ["user_id in scientific notation (digits lost)"]
    assert bad["user_id"].iloc[0] == "1.23457E+11"  # kept as given
    mostly = tx(user_id=["1.23457E+11", "1.23457E+11", "5"])
    with pytest.raises(InputError, match=r"tx\.csv: column 'user_id' holds ids in scientific "
                                         r"notation.*2 of 3 rows; sample: '1\.23457E\+11'"):
        validate_table("transactions", mostly, "tx.csv", now=NOW)


def test_text_ids_that_look_like_numbers_are_kept_as_given():
    frame = tx(user_id=["3e45", "a9f3", "1e10"])  # hex-like ids: not a numeric id column
    clean, bad = validate_table("transactions", frame, "tx.csv", now=NOW)
    assert bad.empty and list(clean["user_id"]) == ["3e45", "a9f3", "1e10"]


def test_timezone_aware_timestamps_become_utc():
    frame = tx(ts=["2025-01-01T10:00:00+02:00", "2025-01-01T10:00:00Z", "2025-01-01"])
    clean, _ = validate_table("transactions", frame, "tx.csv", now=NOW)
    assert clean["ts"].iloc[0] == pd.Timestamp("2025-01-01 08:00:00")
    assert clean["ts"].iloc[1] == pd.Timestamp("2025-01-01 10:00:00")


def test_missing_required_column_names_file_and_column():
    with pytest.raises(InputError, match=r"tx\.csv: missing required column\(s\) amount"):
        validate_table("transactions", tx().drop(columns="amount"), "tx.csv", now=NOW)


def test_headers_differing_only_in_case_or_spaces_take_the_contract_names():
    frame = tx(currency=["usd", "usd", "usd"]).rename(
        columns={"user_id": "User_ID", "ts": " TS", "amount": "Amount ", "currency": "Currency"})
    clean, bad = validate_table("transactions", frame, "tx.csv", now=NOW)
    assert bad.empty and clean["amount"].tolist() == [10.5, 20.0, 30.0]
    assert clean["user_id"].tolist() == ["a", "b", "c"] and set(clean["currency"]) == {"USD"}
    # two headers that would both be 'amount': neither is renamed, the file names what it found
    with pytest.raises(InputError, match=r"missing required column\(s\) amount; found columns: .*'Amount', 'AMOUNT'"):
        validate_table("transactions", tx(AMOUNT=["1", "2", "3"]).rename(columns={"amount": "Amount"}),
                       "tx.csv", now=NOW)


def test_empty_file_is_a_file_error():
    with pytest.raises(InputError, match="tx.csv: the file has a header but no rows"):
        validate_table("transactions", tx().iloc[:0], "tx.csv", now=NOW)


def test_mostly_unparseable_column_is_a_file_error_with_sample():
    frame = tx(ts=["01/02/2025", "01/03/2025", "2025-01-04"])
    with pytest.raises(InputError, match=r"column 'ts' is not an ISO 8601.*'01/02/2025'"):
        validate_table("transactions", frame, "tx.csv", now=NOW)


def test_mixed_date_formats_quarantine_the_minority():
    frame = tx(ts=["2025-01-01", "2025-01-02", "03/01/2025"])
    clean, bad = validate_table("transactions", frame, "tx.csv", now=NOW)
    assert len(clean) == 2 and reasons(bad) == ["unparseable ts (expected ISO 8601)"]


def test_unknown_event_names_are_quarantined():
    frame = pd.DataFrame(
        {"user_id": ["a", "b"], "ts": ["2025-01-01", "2025-01-02"],
         "event_name": ["product_view", "teleport"]}
    )
    clean, bad = validate_table("events", frame, "events.csv", now=NOW)
    assert list(clean["event_name"]) == ["product_view"]
    assert reasons(bad) == ["unknown event_name"]


def test_fx_rates_must_be_positive_and_unique():
    frame = pd.DataFrame(
        {"date": ["2025-01-01", "2025-01-01", "2025-01-02"], "currency": ["eur", "EUR", "EUR"],
         "rate_to_base": ["1.1", "1.2", "-1"]}
    )
    clean, bad = validate_table("fx_rates", frame, "fx.csv", now=NOW)
    assert list(clean["rate_to_base"]) == [1.1]
    assert sorted(reasons(bad)) == ["duplicate (date, currency)", "rate_to_base is not positive"]


def test_duplicate_users_are_quarantined():
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "country": ["US", "DE", "FR"]})
    clean, bad = validate_table("users", frame, "users.csv", now=NOW)
    assert list(clean["user_id"]) == ["a", "b"] and reasons(bad) == ["duplicate user_id"]


def test_quarantine_summary_names_the_commonest_reasons_and_the_table():
    assert validation.quarantine_summary("transactions", {}) == ""
    reasons = {"currency without an fx rate": 1, "missing user_id": 5, "duplicate transaction_id": 2,
               "negative amount without is_refund": 3}
    assert validation.quarantine_summary("transactions", reasons) == (
        " (5 missing user_id; 3 negative amount without is_refund; 2 duplicate transaction_id; "
        "1 for 1 other reason(s): rows and reasons in quarantine.transactions)")
