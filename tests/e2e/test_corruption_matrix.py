"""The corruption matrix: each kind of bad input, written as an input directory next to a
good one, ends either in a quarantine (the rows counted, with their reason and file row
number, and raw + quarantine accounting for every row of every file) or in a clear error that
names the file and column with sample values, with the warehouse left as the last good load
made it.

The ingest asset is materialized in process (the full `ltv demo` runs dbt, GX, Feast and
training); a few whole-file errors go through `ltv demo` in a subprocess, where the exit code,
the one-paragraph message and the absence of a traceback are part of the contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ltv_pipeline import settings
from ltv_pipeline.defs.ingest.assets import RAW_ASSETS, raw_tables
from ltv_pipeline.defs.quality.checks import raw_quality_checks, raw_row_count_checks
from ltv_pipeline.defs.resources import shared_resources
from ltv_pipeline.lib import warehouse
from ltv_pipeline.lib.errors import find_input_error
from ltv_pipeline.lib.generator import generate
from ltv_pipeline.lib.schema import CONTRACTS

LTV = str(Path(sys.executable).parent / "ltv")
TABLES = list(CONTRACTS)
Tables = dict[str, pd.DataFrame]


@pytest.fixture(scope="module")
def good() -> Tables:
    """A small synthetic log in the contract's schema (all four tables, EUR/GBP with rates)."""
    return generate(n_users=200, seed=3)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as a CSV file gives it to the loader: every value text, empty cells null."""
    text = frame.astype(object).map(lambda v: None if v is None or v is pd.NaT or v != v else str(v))
    text = text.astype(object)
    for col in frame.select_dtypes("bool").columns:
        text[col] = frame[col].map({True: "true", False: "false"})
    return text


def write_dir(directory: Path, tables: Tables, fmt: str) -> Path:
    directory.mkdir(parents=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(directory / f"{name}.csv", index=False)
        else:
            frame.to_parquet(directory / f"{name}.parquet", index=False)
    return directory


def rows_in(path: Path) -> int:
    """Data rows in a written file, counted apart from the loader."""
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    return len(pd.read_csv(path, dtype=str, keep_default_na=False))


def load(source: Path | str):
    return dg.materialize(
        [raw_tables, *raw_quality_checks, raw_row_count_checks],
        resources=shared_resources(),
        run_config={"ops": {"raw_tables": {"config": {"source": str(source)}}}},
        raise_on_error=False,
    )


def query(sql: str) -> pd.DataFrame:
    with warehouse.connect(settings.warehouse_path(), read_only=True) as con:
        return con.execute(sql).df()


def warehouse_state() -> dict:
    """What a failed load must leave alone: row counts of raw and quarantine, the load log."""
    return {
        "raw": warehouse.table_counts(settings.warehouse_path(), "raw"),
        "quarantine": warehouse.table_counts(settings.warehouse_path(), "quarantine"),
        "load_batches": query("select * from raw.load_batches order by table_name").to_dict("records"),
    }


# ---- quarantine: row-level problems -----------------------------------------------------


@dataclass(frozen=True)
class Quarantine:
    """corrupt(tables) edits the text (csv) or typed (parquet) frames in place and returns the
    0-based positions of the rows it spoiled in `table`; those and only those must be
    quarantined with `reason` (a prefix for reasons that carry a number)."""

    kind: str
    fmt: str
    table: str
    reason: str
    corrupt: Callable[[Tables], list[int]]
    verify: Callable[[Tables], None] | None = None  # extra checks on what was loaded


def _set(frame: pd.DataFrame, column: str, values: list, start: int = 5, step: int = 37) -> list[int]:
    rows = [start + i * step for i in range(len(values))]
    for row, value in zip(rows, values):
        frame.loc[row, column] = value
    return rows


def _append_copies(frame_name: str, tables: Tables, positions: list[int]) -> list[int]:
    frame = tables[frame_name]
    copies = frame.iloc[positions]
    tables[frame_name] = pd.concat([frame, copies], ignore_index=True)
    return list(range(len(frame), len(frame) + len(positions)))


def _negative_amounts(t: Tables) -> list[int]:
    tx = t["transactions"]
    rows = _set(tx, "amount", [-5.0, -19.99])
    tx.loc[rows, "is_refund"] = False
    return rows


def _refund_with_negative_amount(t: Tables) -> list[int]:
    tx = t["transactions"]
    rows = _set(tx, "amount", [-7.5])
    tx.loc[rows, "is_refund"] = True
    return rows


def _mixed_date_formats(t: Tables) -> list[int]:
    tx = t["transactions"]
    # ISO 8601 in several spellings is fine; day-first, dotted and English dates are not
    _set(tx, "ts", ["2024-05-01T10:00:00+02:00", "2024/05/01", "20240501"], start=11, step=50)
    return _set(tx, "ts", ["03/01/2025", "03.01.2025", "Jan 3 2025"])


def _verify_iso_spellings(t: Tables) -> None:
    ids = [t["transactions"].loc[11 + i * 50, "transaction_id"] for i in range(3)]
    loaded = query(f"select transaction_id, ts from raw.transactions where transaction_id in {tuple(ids)}")
    got = dict(zip(loaded["transaction_id"], loaded["ts"]))
    assert [got[i] for i in ids] == [pd.Timestamp("2024-05-01 08:00:00"),
                                     pd.Timestamp("2024-05-01"), pd.Timestamp("2024-05-01")]


def _numeric(user_id: str) -> str:
    return str(int(user_id.lstrip("u")))


def _mixed_type_user_ids(t: Tables) -> list[int]:
    """Numeric ids, written as 12 in users and as 12, 12.0 or " 12 " in transactions (a
    float-typed export and a hand-edited file), and once as a spreadsheet's 3.4E+01."""
    t["users"]["user_id"] = t["users"]["user_id"].map(_numeric)
    tx = t["transactions"]
    numeric = tx["user_id"].map(_numeric)
    styles = [numeric, numeric + ".0", " " + numeric + " "]
    tx["user_id"] = [styles[i % 3].iloc[i] for i in range(len(tx))]
    row = int(numeric.astype(int).ge(10).idxmax())
    tx.loc[row, "user_id"] = f"{int(numeric[row]):.1E}"  # 34 -> "3.4E+01"
    return [row]


def _verify_ids_join(t: Tables) -> None:
    orphans = query("select count(*) as n from raw.transactions t anti join raw.users u using (user_id)")
    assert orphans["n"].iloc[0] == 0  # every spelling of an id names its user
    loaded = query("select count(distinct user_id) as n from raw.transactions")["n"].iloc[0]
    assert loaded == t["transactions"]["user_id"].str.strip().str.removesuffix(".0").nunique() - 1


def _verify_outlier_kept_normal_rows(t: Tables) -> None:
    top = query("select max(amount) as m from raw.transactions")["m"].iloc[0]
    assert top == t["transactions"]["amount"].nsmallest(len(t["transactions"]) - 2).max()


QUARANTINES = [
    Quarantine("null_user_id", "csv", "transactions", "missing user_id",
               lambda t: _set(t["transactions"], "user_id", [None, "", "   "])),
    Quarantine("unparseable_timestamp", "csv", "transactions", "unparseable ts (expected ISO 8601)",
               lambda t: _set(t["transactions"], "ts", ["not a date", "2025-02-30", "yesterday"])),
    Quarantine("future_timestamp", "parquet", "transactions", "ts in the future",
               lambda t: _set(t["transactions"], "ts", [pd.Timestamp("2099-01-01"),
                                                        pd.Timestamp("2031-06-30 12:00")])),
    Quarantine("non_numeric_amount", "csv", "transactions", "non-numeric amount",
               lambda t: _set(t["transactions"], "amount", ["ten", "12,50", "$5"])),
    Quarantine("nan_or_infinite_amount", "csv", "transactions", "amount is NaN or infinite",
               lambda t: _set(t["transactions"], "amount", ["NaN", "inf", "-Infinity"])),
    Quarantine("nan_amount_in_parquet", "parquet", "transactions", "missing amount",
               lambda t: _set(t["transactions"], "amount", [float("nan")])),
    Quarantine("negative_amount_without_refund_flag", "parquet", "transactions",
               "negative amount without is_refund", _negative_amounts),
    Quarantine("refund_with_negative_amount", "parquet", "transactions",
               "refund with a negative amount", _refund_with_negative_amount),
    Quarantine("unknown_currency_without_rate", "csv", "transactions", "currency without an fx rate",
               lambda t: _set(t["transactions"], "currency", ["XYZ", "JPY"])),
    Quarantine("duplicate_transaction_line", "parquet", "transactions", "duplicate line",
               lambda t: _append_copies("transactions", t, [3, 40, 41])),
    Quarantine("duplicate_user", "csv", "users", "duplicate user_id",
               lambda t: _append_copies("users", t, [0, 7])),
    Quarantine("mixed_date_formats", "csv", "transactions", "unparseable ts (expected ISO 8601)",
               _mixed_date_formats, _verify_iso_spellings),
    Quarantine("user_id_of_mixed_types", "csv", "transactions",
               "user_id in scientific notation (digits lost)", _mixed_type_user_ids, _verify_ids_join),
    Quarantine("huge_outlier", "parquet", "transactions", "implausible amount (over ",
               lambda t: _set(t["transactions"], "amount", [1e12, 5e11]), _verify_outlier_kept_normal_rows),
    Quarantine("unknown_event_name", "parquet", "events", "unknown event_name",
               lambda t: _set(t["events"], "event_name", ["teleport", "PRODUCT_VIEW", "page_view"])),
    Quarantine("missing_event_name", "csv", "events", "missing event_name",
               lambda t: _set(t["events"], "event_name", [None, " "])),
    Quarantine("bad_fx_rate", "csv", "fx_rates", "rate_to_base is not positive",
               lambda t: _set(t["fx_rates"], "rate_to_base", ["0", "-1.1"])),
]


@pytest.mark.parametrize("case", QUARANTINES, ids=lambda c: c.kind)
def test_row_problems_are_quarantined_with_a_reason_and_every_row_counted(case, good, ltv_home, tmp_path):
    tables = {name: (as_text(f) if case.fmt == "csv" else f.copy()) for name, f in good.items()}
    spoiled = case.corrupt(tables)
    src = write_dir(tmp_path / case.kind, tables, case.fmt)

    result = load(src)
    assert result.success  # the clean part passes the raw GX gates and the row-count gate
    evals = result.get_asset_check_evaluations()
    assert len(evals) == 8 and all(e.passed for e in evals)

    # the load's metadata counts the quarantined rows, by reason
    [mat] = [m for m in result.asset_materializations_for_node("raw_tables")
             if m.asset_key.path == [RAW_ASSETS[case.table]]]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["rows_quarantined"] == len(spoiled)
    [(reason, n)] = meta["quarantine_reasons"].items()
    assert reason.startswith(case.reason) and n == len(spoiled)

    # exactly the spoiled rows (by their row number in the file) are in quarantine
    bad = query(f"select _row, reason from quarantine.{case.table} order by _row")
    assert list(bad["_row"]) == sorted(p + 1 for p in spoiled)
    assert all(r.startswith(case.reason) for r in bad["reason"])

    # raw + quarantine = rows in the file, for every table, as logged and as stored
    logged = query("select * from raw.load_batches").set_index("table_name")
    raw = warehouse.table_counts(settings.warehouse_path(), "raw")
    quarantined = warehouse.table_counts(settings.warehouse_path(), "quarantine")
    for name in TABLES:
        in_file = rows_in(src / f"{name}.{case.fmt}")
        assert logged.loc[name, "rows_in_file"] == in_file, name
        assert raw[name] + quarantined[name] == in_file, name
        assert (logged.loc[name, "rows_loaded"], logged.loc[name, "rows_quarantined"]) == (
            raw[name], quarantined[name]), name
    if case.verify:
        case.verify(tables)


def test_the_good_directory_loads_whole(good, ltv_home, tmp_path):
    for fmt in ("csv", "parquet"):
        tables = {n: (as_text(f) if fmt == "csv" else f) for n, f in good.items()}
        result = load(write_dir(tmp_path / fmt, tables, fmt))
        assert result.success
        assert warehouse.table_counts(settings.warehouse_path(), "raw") == {
            n: len(f) for n, f in good.items()}
        assert sum(warehouse.table_counts(settings.warehouse_path(), "quarantine").values()) == 0


def test_a_csv_separated_by_semicolons_loads_whole(good, ltv_home, tmp_path):
    """A spreadsheet's export in many locales: every file separated by ';' (the header tells
    the separator, lib/sources.csv_delimiter). It stopped the load before ('missing required
    column(s)': the whole header was one column)."""
    d = write_dir(tmp_path / "csv", {n: as_text(f) for n, f in good.items()}, "csv")
    for name in good:
        path = d / f"{name}.csv"
        pd.read_csv(path, dtype=str, keep_default_na=False).to_csv(path, index=False, sep=";")
    assert load(d).success
    assert warehouse.table_counts(settings.warehouse_path(), "raw") == {n: len(f) for n, f in good.items()}
    assert sum(warehouse.table_counts(settings.warehouse_path(), "quarantine").values()) == 0


# ---- whole-file problems: a clear error, the warehouse unchanged ------------------------


@dataclass(frozen=True)
class FileError:
    """write(directory) fills a directory (the good log is written first, in fmt); the load
    must fail with a message matching every pattern in `says` (the file, the column, a
    sample of the offending values)."""

    kind: str
    fmt: str
    write: Callable[[Path, Tables], None]
    says: tuple[str, ...]


def _rewrite(name: str, fmt: str, edit: Callable[[pd.DataFrame], pd.DataFrame]):
    def write(d: Path, t: Tables) -> None:
        frame = edit(as_text(t[name]) if fmt == "csv" else t[name].copy())
        (d / f"{name}.{fmt}").unlink()
        if fmt == "csv":
            frame.to_csv(d / f"{name}.csv", index=False)
        else:
            frame.to_parquet(d / f"{name}.parquet", index=False)
    return write


def _replace_file(filename: str, content: bytes):
    stem = filename.split(".")[0]

    def write(d: Path, t: Tables) -> None:
        for old in d.glob(f"{stem}.*"):
            old.unlink()
        (d / filename).write_bytes(content)
    return write


def _day_first(frame: pd.DataFrame) -> pd.DataFrame:
    frame["ts"] = pd.to_datetime(frame["ts"]).dt.strftime("%d/%m/%Y")
    return frame


def _decimal_comma(frame: pd.DataFrame) -> pd.DataFrame:
    frame["amount"] = frame["amount"].str.replace(".", ",", regex=False)
    return frame


def _spaces(d: Path, t: Tables) -> None:
    """Space-separated columns (a fixed-width report): not a separator the header is read for
    (a ';', tab or '|' one loads: test_a_csv_separated_by_semicolons_loads_whole)."""
    (d / "transactions.csv").unlink()
    as_text(t["transactions"]).to_csv(d / "transactions.csv", index=False, sep=" ")


def _both_formats(d: Path, t: Tables) -> None:
    t["transactions"].to_parquet(d / "transactions.parquet", index=False)


def _spreadsheet_ids(frame: pd.DataFrame) -> pd.DataFrame:
    frame["user_id"] = [f"{1.23456789e11 + i:.5E}" for i in range(len(frame))]
    return frame


def _no_rates_for_two_currencies(d: Path, t: Tables) -> None:
    """Every amount in EUR or GBP, and no fx rates: not one row is convertible to USD."""
    _rewrite("transactions", "csv", lambda f: f.assign(currency=["EUR", "GBP"] * (len(f) // 2)
                                                        + ["EUR"] * (len(f) % 2)))(d, t)
    (d / "fx_rates.csv").unlink()


FILE_ERRORS = [
    FileError("missing_required_column", "csv",
              _rewrite("transactions", "csv", lambda f: f.drop(columns="amount")),
              (r"transactions\.csv: missing required column\(s\) amount",
               r"found columns: 'user_id', 'ts', 'transaction_id'")),
    FileError("missing_required_column_in_events", "parquet",
              _rewrite("events", "parquet", lambda f: f.rename(columns={"event_name": "event"})),
              (r"events\.parquet: missing required column\(s\) event_name", r"'event'")),
    FileError("empty_file", "csv", _replace_file("transactions.csv", b""),
              (r"transactions\.csv: the file is empty \(no header, no rows\)",)),
    FileError("header_only", "csv", _replace_file("transactions.csv", b"user_id,ts,amount\n"),
              (r"transactions\.csv: the file has a header but no rows",)),
    FileError("wrong_format_csv_named_parquet", "parquet",
              _replace_file("transactions.parquet", b"user_id,ts,amount\n1,2025-01-01,3\n"),
              (r"transactions\.parquet: cannot be read as Parquet",)),
    FileError("wrong_format_binary_named_csv", "csv",
              _replace_file("transactions.csv", bytes(range(256)) * 8),
              (r"transactions\.csv: cannot be read as CSV",)),
    FileError("wrong_delimiter", "csv", _spaces,
              (r"transactions\.csv: missing required column\(s\) user_id, ts, amount",
               r"found columns: 'user_id ts amount ")),
    FileError("day_first_dates_throughout", "csv", _rewrite("transactions", "csv", _day_first),
              (r"transactions\.csv: column 'ts' is not an ISO 8601 date/time in 607 of 607 rows",
               r"sample: '12/01/2023', '01/02/2023'")),
    FileError("decimal_commas_throughout", "csv", _rewrite("transactions", "csv", _decimal_comma),
              (r"transactions\.csv: column 'amount' is not numeric in \d+ of 607 rows",
               r"sample: '4,71', '34,49'")),
    FileError("ids_in_scientific_notation_throughout", "csv",
              _rewrite("transactions", "csv", _spreadsheet_ids),
              (r"transactions\.csv: column 'user_id' holds ids in scientific notation",
               r"sample: '1\.23457E\+11'")),
    FileError("no_row_convertible_to_the_base_currency", "csv", _no_rates_for_two_currencies,
              (r"transactions\.csv: no transaction can be loaded, every row breaks a row rule: "
               r"607 currency without an fx rate \(column 'currency', sample: 'EUR', 'GBP'\)",
               r"give fx rates", r"LTV_BASE_CURRENCY")),
    FileError("every_amount_negative", "parquet",
              _rewrite("transactions", "parquet", lambda f: f.assign(amount=-f["amount"].abs() - 1)),
              (r"transactions\.parquet: no transaction can be loaded",
               r"\d+ negative amount without is_refund \(column 'amount', sample: '-",
               r"; \d+ refund with a negative amount \(column 'amount'")),
    FileError("both_csv_and_parquet", "csv", _both_formats,
              (r"both transactions\.parquet and transactions\.csv exist; keep one",)),
]


def bad_directory(case: FileError, good: Tables, root: Path) -> Path:
    tables = {n: (as_text(f) if case.fmt == "csv" else f) for n, f in good.items()}
    d = write_dir(root / case.kind, tables, case.fmt)
    case.write(d, good)
    return d


@pytest.fixture
def loaded_before(good, ltv_home, tmp_path) -> dict:
    """A good load in this LTV_HOME (with some rows in quarantine): what must survive."""
    tables = {n: f.copy() for n, f in good.items()}
    tables["transactions"].loc[3, "currency"] = "XYZ"
    assert load(write_dir(tmp_path / "previous", tables, "parquet")).success
    state = warehouse_state()
    assert state["quarantine"]["transactions"] == 1 and len(state["load_batches"]) == 4
    return state


@pytest.mark.parametrize("case", FILE_ERRORS, ids=lambda c: c.kind)
def test_file_problems_stop_the_load_with_a_clear_error_and_change_nothing(
    case, good, loaded_before, tmp_path
):
    result = load(bad_directory(case, good, tmp_path))
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "raw_tables"
    message = result.failure_data_for_node("raw_tables").error.cause.message
    for pattern in case.says:
        assert pd.Series([message]).str.contains(pattern).item(), (pattern, message)
    # nothing was written: the raw tables, the quarantine and the load log are as before
    assert warehouse_state() == loaded_before


CLI_CASES = ["wrong_format_csv_named_parquet", "day_first_dates_throughout",
             "missing_required_column_in_events"]


@pytest.mark.parametrize("kind", CLI_CASES)
def test_ltv_demo_exits_2_naming_the_file_and_leaves_the_warehouse(kind, good, loaded_before, ltv_home, tmp_path):
    [case] = [c for c in FILE_ERRORS if c.kind == kind]
    src = bad_directory(case, good, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | {"LTV_HOME": str(ltv_home)}
    proc = subprocess.run([LTV, "demo", "--source", str(src)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("ltv demo: ")]
    assert str(src) in line  # the full path of the offending file
    for pattern in case.says:
        assert pd.Series([line]).str.contains(pattern).item(), (pattern, line)
    assert "Traceback" not in proc.stderr and "Stack Trace" not in proc.stderr
    assert proc.stdout == ""  # no table of counts: nothing was loaded
    assert warehouse_state() == loaded_before


def test_the_input_error_survives_dagster_wrapping(good, ltv_home, tmp_path):
    """The CLI maps a failed run to exit code 2 through the InputError behind Dagster's error."""
    [case] = [c for c in FILE_ERRORS if c.kind == "header_only"]
    src = bad_directory(case, good, tmp_path)
    with pytest.raises(Exception) as info:
        dg.materialize([raw_tables], resources=shared_resources(),
                       run_config={"ops": {"raw_tables": {"config": {"source": str(src)}}}})
    found = find_input_error(info.value)
    assert found is not None and "transactions.csv: the file has a header but no rows" in str(found)
