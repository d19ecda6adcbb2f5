"""Reading each kind of source into the contract's tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ltv_pipeline.lib import sources
from ltv_pipeline.lib.errors import InputError


def test_cdnow_master_is_the_real_log():
    tables = sources.read_cdnow()
    tx = tables["transactions"].frame
    assert len(tx) == 69_659
    assert tx["user_id"].nunique() == 23_570
    assert tx["ts"].min() == pd.Timestamp("1997-01-01")
    assert tx["ts"].max() == pd.Timestamp("1998-06-30")
    assert tx["transaction_id"].is_unique
    loads = sources.prepare_loads(tables)
    assert tables == {}  # consumed: each file's frame is dropped once validated
    by_name = {load.table: load for load in loads}
    assert len(by_name["transactions"].clean) == 69_659
    assert by_name["transactions"].clean.index.equals(pd.RangeIndex(69_659))
    assert by_name["transactions"].quarantined.empty
    # optional tables exist, empty, so downstream SQL can always read them
    assert by_name["users"].clean.empty and by_name["users"].file is None


def write_csv(directory: Path, name: str, frame: pd.DataFrame) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


TX = pd.DataFrame(
    {"user_id": ["1", "2", "2"], "ts": ["2025-01-01", "2025-01-02", "2025-02-01"],
     "amount": [10.0, 5.0, 7.0], "currency": ["USD", "EUR", "EUR"]}
)
FX = pd.DataFrame({"date": ["2025-01-01"], "currency": ["EUR"], "rate_to_base": [1.1]})


def test_directory_with_csv_and_parquet(tmp_path):
    write_csv(tmp_path, "transactions", TX)
    FX.to_parquet(tmp_path / "fx_rates.parquet")
    tables = sources.read_directory(tmp_path)
    assert set(tables) == {"transactions", "fx_rates"}
    loads = {load.table: load for load in sources.prepare_loads(tables)}
    assert len(loads["transactions"].clean) == 3  # EUR is convertible thanks to fx_rates
    assert loads["fx_rates"].clean["rate_to_base"].tolist() == [1.1]


def test_currency_without_fx_table_is_quarantined(tmp_path):
    write_csv(tmp_path, "transactions", TX)
    loads = {load.table: load for load in sources.prepare_loads(sources.read_directory(tmp_path))}
    assert len(loads["transactions"].clean) == 1
    assert loads["transactions"].quarantined["reason"].tolist() == ["currency without an fx rate"] * 2
    assert loads["transactions"].rows_in_file == 3


def test_a_log_in_one_currency_without_rates_stays_in_it(tmp_path):
    """No fx rates and one currency throughout: nothing to convert, so that currency is the
    load's base and every row is kept (before, every row went to quarantine)."""
    gbp = TX.drop(columns="currency").assign(Currency=["gbp", "GBP", None])  # a missing currency is the base's
    write_csv(tmp_path, "transactions", gbp)
    tables = sources.read_directory(tmp_path)
    assert sources.load_currency(tables, None, "USD") == "GBP"
    assert sources.load_currency(tables, "EUR", "USD") == "EUR"  # LTV_BASE_CURRENCY decides
    loads = {load.table: load for load in sources.prepare_loads(tables, "GBP")}
    assert loads["transactions"].quarantined.empty
    assert loads["transactions"].clean["currency"].tolist() == ["GBP"] * 3  # header matched as 'currency'


@pytest.mark.parametrize("currencies, with_rates, expected", [
    (["USD", "EUR", "EUR"], False, "USD"),  # two currencies: the default, EUR quarantined
    (["GBP", "GBP", "GBP"], True, "USD"),  # rates given: they are to the default base
    (["XYZ", "XYZ", "XYZ"], False, "USD"),  # not an ISO 4217 code
    ([None, None, None], False, "USD"),
])
def test_the_load_keeps_the_default_base_otherwise(tmp_path, currencies, with_rates, expected):
    write_csv(tmp_path, "transactions", TX.assign(currency=currencies))
    if with_rates:
        write_csv(tmp_path, "fx_rates", FX.assign(currency=["GBP"]))
    assert sources.load_currency(sources.read_directory(tmp_path), None, "USD") == expected


def test_a_file_with_no_loadable_row_names_the_reason_column_and_values(tmp_path):
    write_csv(tmp_path, "transactions", TX.assign(currency=["EUR", "GBP", "EUR"]))
    with pytest.raises(InputError) as info:
        sources.prepare_loads(sources.read_directory(tmp_path))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'transactions.csv'}: no transaction can be loaded")
    assert "3 currency without an fx rate (column 'currency', sample: 'EUR', 'GBP')" in message
    assert "base currency USD" in message and "LTV_BASE_CURRENCY" in message
    write_csv(tmp_path, "transactions", TX.assign(amount=[-10.0, -5.0, -7.0], currency="USD"))
    with pytest.raises(InputError, match=r"3 negative amount without is_refund \(column 'amount', "
                                         r"sample: '-10\.0', '-5\.0', '-7\.0'\)$"):
        sources.prepare_loads(sources.read_directory(tmp_path))


def test_missing_transactions_file_names_directory(tmp_path):
    write_csv(tmp_path, "users", pd.DataFrame({"user_id": ["1"]}))
    with pytest.raises(InputError, match=r"no transactions\.parquet or transactions\.csv.*users\.csv"):
        sources.read_directory(tmp_path)


def test_both_csv_and_parquet_is_ambiguous(tmp_path):
    write_csv(tmp_path, "transactions", TX)
    TX.to_parquet(tmp_path / "transactions.parquet")
    with pytest.raises(InputError, match="both transactions.parquet and transactions.csv"):
        sources.read_directory(tmp_path)


def test_empty_and_corrupt_files_are_file_errors(tmp_path):
    (tmp_path / "transactions.csv").write_text("")
    with pytest.raises(InputError, match=r"transactions\.csv: the file is empty"):
        sources.read_directory(tmp_path)
    (tmp_path / "transactions.csv").unlink()
    (tmp_path / "transactions.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(InputError, match=r"transactions\.parquet: cannot be read as Parquet"):
        sources.read_directory(tmp_path)


def test_not_a_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not 'cdnow', 'synthetic' or a directory"):
        sources.read_source(str(tmp_path / "nope"), 10, 0)


def test_a_parquet_file_validates_as_the_same_rows_written_as_csv(tmp_path):
    """Parquet text stays Arrow-backed (no Python string per value); the same messy rows as a
    CSV (read as Python text) give the same clean rows and the same quarantine reasons."""
    rows = pd.DataFrame({
        "user_id": [" a ", "b", "", "c", None, "d"],
        "ts": ["2025-01-01", "2025-01-02 10:00", "2025-01-03", "bad", "2025-01-04", "2025-01-05"],
        "amount": [10.0, float("inf"), 3.0, 4.0, None, 6.0],
        "currency": ["usd", " USD", "USD", "USD", "USD", "USD"],
        "transaction_id": ["t1", "t2", "t3", "t4", "t5", "t1"],
    })
    (tmp_path / "pq").mkdir()
    (tmp_path / "csv").mkdir()
    rows.to_parquet(tmp_path / "pq" / "transactions.parquet", index=False)
    rows.to_csv(tmp_path / "csv" / "transactions.csv", index=False)
    from_pq = sources.read_directory(tmp_path / "pq")
    assert str(from_pq["transactions"].frame["user_id"].dtype) == str(sources.TEXT)
    loads = {k: sources.prepare_loads(sources.read_directory(tmp_path / k))[0]
             for k in ("pq", "csv")}
    pq_load, csv_load = loads["pq"], loads["csv"]
    assert list(pq_load.clean["user_id"]) == list(csv_load.clean["user_id"]) == ["a"]
    assert list(pq_load.clean["currency"]) == ["USD"]
    assert list(pq_load.quarantined["reason"]) == list(csv_load.quarantined["reason"])
    assert set(pq_load.quarantined["reason"]) == {
        "amount is NaN or infinite", "missing user_id", "unparseable ts (expected ISO 8601)",
        "transaction_id of another user_id"}


def test_output_ids_keep_the_integer_type_of_a_parquet_file(tmp_path):
    """The warehouse holds ids as text; predict's output gives a Parquet file's integer ids
    back as int64, so the caller's join on its own ids works. Text ids stay text."""
    ids = pd.Series(["7", "12", "0"], dtype="string")
    pd.DataFrame({"User_ID": [7, 12, 0], "ts": ["2025-01-01"] * 3, "amount": [1.0] * 3}
                 ).to_parquet(tmp_path / "ints.parquet")
    out = sources.ids_as_given(ids, tmp_path / "ints.parquet")
    assert out.dtype == "int64" and out.tolist() == [7, 12, 0]
    pd.DataFrame({"user_id": ["007", "12", "0"], "ts": ["2025-01-01"] * 3, "amount": [1.0] * 3}
                 ).to_parquet(tmp_path / "text.parquet")
    assert sources.ids_as_given(ids, tmp_path / "text.parquet") is ids
    write_csv(tmp_path, "ints", pd.DataFrame({"user_id": [7, 12, 0]}))
    assert sources.ids_as_given(ids, tmp_path / "ints.csv") is ids


@pytest.mark.parametrize("sep, encoding", [(";", "utf-8-sig"), ("\t", "utf-8"), ("|", "utf-8")])
def test_a_csv_separated_otherwise_reads_as_the_comma_separated_one(tmp_path, sep, encoding):
    """A spreadsheet's export in many locales separates with ';' (often behind a byte-order
    mark): the header tells the separator. Before, the whole header was one column and the load
    stopped with 'missing required column(s)'."""
    write_csv(tmp_path / "comma", "transactions", TX)
    other = tmp_path / "other"
    other.mkdir()
    TX.to_csv(other / "transactions.csv", index=False, sep=sep, encoding=encoding)
    assert sources.csv_delimiter(other / "transactions.csv") == sep
    pd.testing.assert_frame_equal(sources.read_directory(other)["transactions"].frame,
                                  sources.read_directory(tmp_path / "comma")["transactions"].frame)


def test_a_one_column_csv_and_commas_inside_quoted_values_stay_comma_separated(tmp_path):
    users = write_csv(tmp_path, "users", pd.DataFrame({"user_id": ["a;b", "c"]}))
    assert sources.csv_delimiter(users) == ","
    assert sources.read_file(users)["user_id"].tolist() == ["a;b", "c"]
    tx = write_csv(tmp_path, "transactions", TX.assign(sku=["x;y", "z", "w"]))
    assert sources.csv_delimiter(tx) == ","


def test_decimal_commas_are_named_in_the_error(tmp_path):
    (tmp_path / "transactions.csv").write_text(
        "user_id;ts;amount\n1;2025-01-01;10,50\n2;2025-01-02;1.234,00\n2;2025-02-01;7\n")
    with pytest.raises(InputError) as info:
        sources.prepare_loads(sources.read_directory(tmp_path))
    message = str(info.value)
    assert "column 'amount' is not numeric in 2 of 3 rows; sample: '10,50', '1.234,00'" in message
    assert message.endswith("These look like decimal commas: write numbers with a decimal point "
                            "(12.50, not 12,50)")
    # other non-numeric text gets no such hint
    (tmp_path / "transactions.csv").write_text(
        "user_id,ts,amount\n1,2025-01-01,ten\n2,2025-01-02,five\n2,2025-02-01,7\n")
    with pytest.raises(InputError) as info:
        sources.prepare_loads(sources.read_directory(tmp_path))
    assert str(info.value).endswith("sample: 'ten', 'five'")


@pytest.mark.parametrize("values, hint", [
    (["1735689600", "1735776000", "2025-02-01"], "These look like Unix epoch times"),
    (["12/1/2010 8:26", "12/2/2010 9:00", "2025-02-01"], "These look like local dates (12/1/2010)"),
    (["soon", "later", "2025-02-01"], None),
])
def test_timestamps_in_another_notation_are_named_in_the_error(tmp_path, values, hint):
    write_csv(tmp_path, "transactions", TX.assign(ts=values, currency="USD"))
    with pytest.raises(InputError) as info:
        sources.prepare_loads(sources.read_directory(tmp_path))
    message = str(info.value)
    assert f"column 'ts' is not an ISO 8601 date/time in 2 of 3 rows; sample: '{values[0]}', '{values[1]}'" in message
    assert (hint in message) if hint else message.endswith(f"'{values[1]}'")
