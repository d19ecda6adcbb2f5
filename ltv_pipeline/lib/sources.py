"""Input sources: the real CDNOW log, the synthetic generator, or a directory of files.

Each source yields the contract's tables (lib/schema.py) as DataFrames; `prepare_loads`
validates them (lib/validation.py) into TableLoads that lib/warehouse.py writes atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from ltv_pipeline.lib.errors import InputError
from ltv_pipeline.lib.schema import CONTRACTS, OPTIONAL_TABLES
from ltv_pipeline.lib.validation import TEXT, contract_names, validate_table
from ltv_pipeline.lib.warehouse import TableLoad

SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class InputTable:
    name: str
    file: str  # what error messages and the load log call it
    frame: pd.DataFrame


def cdnow_master_path() -> Path:
    import lifetimes

    return Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"


def read_cdnow(path: Path | None = None) -> dict[str, InputTable]:
    """The real CDNOW master log (23,570 customers, 69,659 rows, 1997-01-01..1998-06-30)
    shipped with lifetimes: customer_id, date (YYYYMMDD), number_of_cds, dollar_value.
    Rows are orders; the row number makes a stable transaction_id."""
    path = path or cdnow_master_path()
    raw = pd.read_csv(path, sep=r"\s+", dtype=str)
    frame = pd.DataFrame(
        {
            "user_id": raw["customer_id"].str.lstrip("0"),
            "ts": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "amount": pd.to_numeric(raw["dollar_value"]),
            "transaction_id": [f"cdnow-{i}" for i in range(1, len(raw) + 1)],
            "currency": "USD",
        }
    )
    return {"transactions": InputTable("transactions", str(path), frame)}


def read_synthetic(n_users: int, seed: int) -> dict[str, InputTable]:
    from ltv_pipeline.lib.generator import generate

    tables = generate(n_users=n_users, seed=seed)
    label = f"synthetic(users={n_users}, seed={seed})"
    return {name: InputTable(name, f"{label}:{name}", df) for name, df in tables.items()}


def _find(directory: Path, name: str) -> Path | None:
    found = [directory / f"{name}{s}" for s in SUFFIXES if (directory / f"{name}{s}").exists()]
    if len(found) > 1:
        raise InputError(f"{directory}: both {found[0].name} and {found[1].name} exist; keep one")
    return found[0] if found else None


def _text_type(arrow_type):
    """Parquet text columns stay Arrow-backed (validation.TEXT): no Python string per value."""
    import pyarrow as pa

    return TEXT if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) else None


CSV_DELIMITERS = (";", "\t", "|")  # tried, in this order, when the header has no comma


def csv_delimiter(path: Path) -> str:
    """The CSV's field separator, read off its header: a comma, unless the header has none and
    holds a semicolon, tab or pipe (a spreadsheet's export in many locales uses ';'). A header
    of one column has none of them and stays comma-separated."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        header = f.readline()
    if "," in header:
        return ","
    return next((d for d in CSV_DELIMITERS if d in header), ",")


def read_file(path: Path) -> pd.DataFrame:
    """Read a CSV (every column as text, so validation sees values as given; the separator from
    csv_delimiter) or Parquet file."""
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path, sep=csv_delimiter(path), dtype=str, keep_default_na=False,
                               na_values=[""])
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pandas(types_mapper=_text_type)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty (no header, no rows)") from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is a file-format problem
        kind = "CSV" if path.suffix == ".csv" else "Parquet"
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as {kind}: {msg}") from None


def read_directory(directory: Path) -> dict[str, InputTable]:
    """transactions.{parquet,csv} (required) and users, events, fx_rates (optional)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"--source {directory}: not 'cdnow', 'synthetic' or a directory")
    tables = {}
    for name in CONTRACTS:
        path = _find(directory, name)
        if path is None:
            if name in OPTIONAL_TABLES:
                continue
            raise InputError(
                f"{directory}: no transactions.parquet or transactions.csv "
                f"(found: {', '.join(sorted(p.name for p in directory.iterdir())) or 'nothing'})"
            )
        tables[name] = InputTable(name, str(path), read_file(path))
    return tables


def read_source(source: str, synthetic_users: int, synthetic_seed: int) -> dict[str, InputTable]:
    if source == "cdnow":
        return read_cdnow()
    if source == "synthetic":
        return read_synthetic(synthetic_users, synthetic_seed)
    return read_directory(Path(source))


def load_currency(tables: dict[str, InputTable], configured: str | None, default: str) -> str:
    """The base currency of a load: `configured` (LTV_BASE_CURRENCY) when set. Else, when the
    source brings no fx rates and every transaction that names a currency names the same
    ISO 4217 code, that code: nothing can be converted, so the amounts stay as given (a log
    kept in GBP is forecast in GBP) instead of every row going to quarantine. Else `default`."""
    from ltv_pipeline.lib.currencies import ISO_4217_CODES

    if configured:
        return configured
    fx_rates = tables.get("fx_rates")
    transactions = tables.get("transactions")
    if (fx_rates is not None and len(fx_rates.frame)) or transactions is None:
        return default
    frame = contract_names("transactions", transactions.frame)
    if "currency" not in frame.columns:
        return default
    codes = {str(c).strip().upper() for c in pd.unique(frame["currency"].dropna())} - {""}
    if len(codes) == 1 and (code := codes.pop()) in ISO_4217_CODES:
        return code
    return default


def prepare_loads(tables: dict[str, InputTable], base_currency: str = "USD",
                  now: datetime | None = None) -> list[TableLoad]:
    """Validate every table (fx_rates first: its currencies decide which transactions are
    convertible). Tables the source lacks are loaded empty so downstream SQL always has them.
    A row after `now` is in the future (default: the machine's clock).

    Consumes `tables`: each file's frame leaves the dict (and memory) once validated, so the
    peak holds one raw table beside the validated ones (1M users, 6.9M events: 3.84 GB when
    every raw frame stayed until the end)."""
    from ltv_pipeline.lib import memory

    loads: dict[str, TableLoad] = {}
    known: set[str] = set()
    for name in ("fx_rates", "users", "events", "transactions"):
        table = tables.pop(name, None)
        if table is None:
            empty = pd.DataFrame(columns=list(CONTRACTS[name].columns))
            loads[name] = TableLoad(name, None, 0, empty, empty.assign(reason=None))
            continue
        clean, bad = validate_table(name, table.frame, table.file, known, base_currency, now)
        if name == "fx_rates":
            known = set(clean["currency"].dropna())
        loads[name] = TableLoad(name, table.file, len(table.frame), clean, bad)
        del table
        memory.release()  # only when the process is large (lib/memory.py)
    return [loads[name] for name in CONTRACTS]


def ids_as_given(ids: pd.Series, transactions: Path) -> pd.Series:
    """Output user ids typed as the transactions file typed them: the warehouse holds ids as
    text, so a Parquet file's integer user_id comes back as int64 (a join with the caller's own
    integer ids then works); any other file's ids stay text, as given."""
    if Path(transactions).suffix != ".parquet" or ids.empty:
        return ids
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(transactions)
    field = next((f for f in schema if str(f.name).strip().lower() == "user_id"), None)
    if field is None or not pa.types.is_integer(field.type):
        return ids
    numbers = pd.to_numeric(ids, errors="coerce")
    return numbers.astype("int64") if numbers.notna().all() else ids


def last_activity_date(tables: dict[str, InputTable]) -> date:
    return pd.to_datetime(tables["transactions"].frame["ts"]).max().date()


def drop_erased(loads: list[TableLoad], home: Path) -> tuple[list[TableLoad], dict[str, int]]:
    """The loads without the rows of erased customers (lib/privacy: the home's erasure list),
    clean and quarantined alike (quarantine would keep their personal data), and the rows
    dropped per table. A dropped row is accounted as not in the file: rows_in_file (what
    raw.load_batches logs and the row-count checks reconcile) is the file's rows minus them;
    the ingest asset reports the dropped rows as rows_erased."""
    from ltv_pipeline.lib.privacy import erased_hashes, erased_mask, normalized_ids

    if not erased_hashes(home):
        return loads, {load.table: 0 for load in loads}
    out, dropped = [], {}
    for load in loads:
        if "user_id" not in CONTRACTS[load.table].columns:
            out.append(load)
            dropped[load.table] = 0
            continue
        clean_hit = erased_mask(load.clean["user_id"], home)
        bad_hit = erased_mask(normalized_ids(load.quarantined["user_id"]), home)
        n = int(clean_hit.sum()) + int(bad_hit.sum())
        dropped[load.table] = n
        out.append(TableLoad(load.table, load.file, load.rows_in_file - n,
                             load.clean.loc[~clean_hit.to_numpy()].reset_index(drop=True),
                             load.quarantined.loc[~bad_hit.to_numpy()].reset_index(drop=True)))
    return out, dropped
