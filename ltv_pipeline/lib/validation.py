"""Row-by-row validation of input tables against the contract (lib/schema.py).

A problem with the whole file (missing required column, empty file, a column that is mostly
unparseable) raises InputError naming the file and column with sample values. Rows that can be
judged one by one are split off into a quarantine frame with a reason; the clean frame holds
typed columns. clean + quarantined always accounts for every input row.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ltv_pipeline.lib.errors import InputError, sample
from ltv_pipeline.lib.schema import CONTRACTS, EVENT_NAMES, TRANSACTION_LINE_COLUMNS

TRUE = {"true", "t", "1", "yes", "y"}
FALSE = {"false", "f", "0", "no", "n", ""}
# A column where more than this share of rows is unparseable is a file problem, not bad rows.
MAX_BAD_SHARE = 0.5
# Amounts above this multiple of the 99th percentile are implausible (unit or typing errors).
OUTLIER_FACTOR = 1000.0
NO_FX_RATE = "currency without an fx rate"
DUPLICATE_LINE = "duplicate line (same transaction_id and values as an earlier row)"
# Ids written as numbers: digits ("12"), an integer as a float ("12.0"), or in a spreadsheet's
# scientific notation ("1.23457E+11": always an explicit "+", which no text or hex id has).
NUMERIC_ID = r"^[+-]?\d+(\.\d+)?([eE]\+\d+)?$"
INTEGRAL_DECIMAL = r"^[+-]?\d+\.0+$"
SCIENTIFIC = r"^[+-]?\d+(\.\d+)?[eE]\+\d+$"
# Notations other than the contract's that a column often holds, with what to do about them:
# named in the file error when most of its unparseable values look so, never guessed (1,234
# may be either number; 12/1/2010 either date). Numbers: decimal commas (12,50 or 1.234,50), as
# spreadsheets in many locales export them.
NUMBER_HINTS = (
    (r"^[+-]?\d{1,3}(?:\.\d{3})*,\d+$|^[+-]?\d+,\d+$",
     "These look like decimal commas: write numbers with a decimal point (12.50, not 12,50)"),
)
# Date/times: Unix epoch numbers and local dates.
TIMESTAMP_HINTS = (
    (r"^\d{9,19}$", "These look like Unix epoch times: write ISO 8601 date/times "
                     "(2025-01-31 or 2025-01-31T12:00:00Z)"),
    (r"^\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}", "These look like local dates (12/1/2010): write ISO 8601 "
                                          "(2010-12-01); day and month cannot be told apart in them"),
)
ID_PROBE_SIZE = 10_000
# Text is held Arrow-backed (missing = NaN, comparisons give numpy bools): strip, lower, isin
# and regexes run vectorised in Arrow; pandas' python-backed "string" calls Python per value
# (1M users, 6.9M events: validation 30 s, most of it str.strip).
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)


class _Rows:
    """Collects per-row rejection reasons (first reason wins)."""

    def __init__(self, n: int):
        self.reason = np.full(n, None, dtype=object)

    def reject(self, mask: np.ndarray | pd.Series, why: str) -> None:
        mask = np.asarray(mask, dtype=bool) & pd.isna(self.reason)
        self.reason[mask] = why


def _file_error(file: str, column: str, what: str, values, hint: str = "") -> InputError:
    return InputError(f"{file}: column '{column}' {what}; sample: {sample(values)}{hint}")


def _check_share(file, column, bad: np.ndarray, raw: pd.Series, what: str, hint: str = "") -> None:
    n = len(bad)
    if n and bad.sum() > MAX_BAD_SHARE * n:
        raise _file_error(file, column, f"{what} in {bad.sum():,} of {n:,} rows", raw[bad].head(5), hint)


def _hint(text: pd.Series, bad: np.ndarray, hints) -> str:
    """'. <advice>' of the first (regex, advice) that most of the first 100 bad values match."""
    if not bad.any():
        return ""
    shown = text[bad].head(100)
    for regex, advice in hints:
        if shown.str.contains(regex, regex=True).mean() > 0.5:
            return f". {advice}"
    return ""


def _matches(text: pa.Array, regex: str) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(text, regex), False).to_numpy(zero_copy_only=False)


def _text(raw: pd.Series) -> pd.Series:
    return raw.astype(TEXT).str.strip()


def _ids(df, col, file, rows: _Rows, required: bool) -> pd.Series:
    s = df[col]
    if pd.api.types.is_float_dtype(s):  # 12.0 read from a numeric column means "12"
        s = s.map(lambda v: None if pd.isna(v) else (str(int(v)) if v.is_integer() else str(v)))
    s = _text(s)
    s = s.where(s != "")
    # Ids of mixed types: a float-typed export or a spreadsheet writes the id 12 as "12.0", or as
    # "1.2E+11" once it is long (its digits are gone: the row cannot be kept). Only judged in a
    # numeric id column (mostly numbers, judged on an evenly spaced sample).
    probe = s.iloc[:: max(1, len(s) // ID_PROBE_SIZE)].dropna()
    if len(probe) and probe.str.fullmatch(NUMERIC_ID).mean() > MAX_BAD_SHARE:
        text = pa.array(s.to_numpy(dtype=object, na_value=None), type=pa.string())
        integral = _matches(text, INTEGRAL_DECIMAL)
        if integral.any():
            s = s.mask(integral, s.str.replace(r"\.0+$", "", regex=True))
        sci = _matches(text, SCIENTIFIC)
        _check_share(file, col, sci, df[col], "holds ids in scientific notation (digits lost)")
        rows.reject(sci, f"{col} in scientific notation (digits lost)")
    if required:
        rows.reject(s.isna(), f"missing {col}")
    return s


def _timestamps(df, col, file, rows: _Rows, now: datetime, required: bool) -> pd.Series:
    raw = df[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw
    else:
        text = _text(raw)
        ts = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
        bad = (text.notna() & (text != "") & ts.isna()).to_numpy()
        _check_share(file, col, bad, raw, "is not an ISO 8601 date/time",
                     _hint(text, bad, TIMESTAMP_HINTS))
        rows.reject(bad, f"unparseable {col} (expected ISO 8601)")
    if getattr(ts.dtype, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    ts = ts.astype("datetime64[us]")
    if required:
        rows.reject(ts.isna(), f"missing {col}")
    rows.reject((ts > pd.Timestamp(now)).fillna(False), f"{col} in the future")
    return ts


def _numbers(df, col, file, rows: _Rows, required: bool) -> pd.Series:
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce").astype("float64")
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        # a numeric column (Parquet): no text to judge; NaN is missing, +-inf is infinite
        given, nan_text = num.notna(), pd.Series(np.isinf(num.to_numpy()), index=num.index)
        bad, hint = np.zeros(len(raw), dtype=bool), ""
    else:
        text = _text(raw)
        given = raw.notna() & (text != "") & text.notna()
        nan_text = text.str.lower().isin(["nan", "inf", "-inf", "infinity"])
        bad = (given & num.isna() & ~nan_text).to_numpy()
        hint = _hint(text, bad, NUMBER_HINTS)
    _check_share(file, col, bad, raw, "is not numeric", hint)
    rows.reject(bad, f"non-numeric {col}")
    rows.reject(nan_text | ~np.isfinite(num.fillna(0)), f"{col} is NaN or infinite")
    if required:
        rows.reject(~given, f"missing {col}")
    return num.where(np.isfinite(num))


def _bools(df, col, file, rows: _Rows) -> pd.Series:
    raw = df[col]
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype(bool)
    text = _text(raw).str.lower().fillna("")
    bad = ~text.isin(TRUE | FALSE)
    _check_share(file, col, bad.to_numpy(), raw, "is not a boolean")
    rows.reject(bad, f"{col} is not a boolean")
    return text.isin(TRUE)


def _strings(df, col) -> pd.Series:
    s = _text(df[col])
    return s.where(s != "")


def contract_names(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Headers that differ from a contract column only in case or surrounding spaces
    ('User_ID', ' amount') take its name, unless two headers would take the same one."""
    renames = {c: str(c).strip().lower() for c in df.columns
               if str(c).strip().lower() in CONTRACTS[table].columns and c != str(c).strip().lower()}
    names = [renames.get(c, c) for c in df.columns]
    return df.rename(columns=renames) if renames and len(set(names)) == len(names) else df


def _ensure_columns(table: str, df: pd.DataFrame, file: str) -> pd.DataFrame:
    contract = CONTRACTS[table]
    df = contract_names(table, df)
    missing = [c for c in contract.required if c not in df.columns]
    if missing:
        raise InputError(
            f"{file}: missing required column(s) {', '.join(missing)}; "
            f"found columns: {sample(df.columns, 20)}"
        )
    if df.empty:
        raise InputError(f"{file}: the file has a header but no rows")
    out = df.reset_index(drop=True).copy()
    for col in contract.optional:
        if col not in out.columns:
            out[col] = None
    return out


def validate_table(
    table: str,
    df: pd.DataFrame,
    file: str,
    known_currencies: set[str] | None = None,
    base_currency: str = "USD",
    now: datetime | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split one input table into (clean typed rows, quarantined rows with a reason)."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    df = _ensure_columns(table, df, file)
    rows = _Rows(len(df))
    types = CONTRACTS[table].columns
    out = pd.DataFrame(index=df.index)
    for col, kind in types.items():
        required = col in CONTRACTS[table].required
        if kind == "id":
            out[col] = _ids(df, col, file, rows, required)
        elif kind in ("timestamp", "date"):
            out[col] = _timestamps(df, col, file, rows, now, required)
        elif kind == "float":
            out[col] = _numbers(df, col, file, rows, required)
        elif kind == "bool":
            out[col] = _bools(df, col, file, rows)
        else:
            out[col] = _strings(df, col)
            if required:
                rows.reject(out[col].isna(), f"missing {col}")
    _table_rules(table, out, rows, known_currencies, base_currency)
    out["_row"] = np.arange(1, len(df) + 1)
    bad = pd.notna(rows.reason)
    quarantined = df.loc[bad, list(types)].astype("string")
    quarantined["_row"] = out.loc[bad, "_row"]
    quarantined["reason"] = rows.reason[bad]
    if table == "transactions" and bad.all():
        raise _nothing_loadable(file, quarantined, base_currency)
    if bad.any():
        clean = out.loc[~bad].reset_index(drop=True)
    else:  # the usual case: no second copy of a table of millions of rows
        clean, clean.index = out, pd.RangeIndex(len(out))
    return clean, quarantined.reset_index(drop=True)


def _nothing_loadable(file: str, quarantined: pd.DataFrame, base_currency: str) -> InputError:
    """Every transaction failed a row rule: the commonest reasons, each with a sample of the
    column it names, and for currencies the two ways out."""
    counts = quarantined["reason"].value_counts()
    parts = []
    for reason, n in counts.head(3).items():
        column = next((c for c in quarantined.columns if c in str(reason).split()), None)
        shown = pd.unique(quarantined.loc[quarantined["reason"] == reason, column].dropna())[:5] \
            if column else []
        parts.append(f"{n:,} {reason}" + (f" (column '{column}', sample: {sample(shown)})" if len(shown) else ""))
    hint = ""
    if counts.index[0] == NO_FX_RATE:
        hint = (f". Amounts are converted to the base currency {base_currency}: give fx rates (--fx-rates, or "
                "an fx_rates file beside the transactions), or set LTV_BASE_CURRENCY to the currency they are in")
    return InputError(f"{file}: no transaction can be loaded, every row breaks a row rule: "
                      + "; ".join(parts) + hint)


def shared_transaction_ids(transactions: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Masks (same line again, id of another user) over rows whose transaction_id repeats.

    Rows sharing an id are lines of one transaction (an order's items, a purchase and its
    refund) and are all kept, unless a row equals an earlier row with that id in every
    contract column (the same line delivered twice) or names another user_id than the id's
    first row. Rows without an id are never compared; only rows whose id repeats are."""
    ids = transactions["transaction_id"]
    repeated = (ids.notna() & ids.duplicated(keep=False)).to_numpy()
    again = np.zeros(len(transactions), dtype=bool)
    other_user = np.zeros(len(transactions), dtype=bool)
    if repeated.any():
        lines = transactions.loc[repeated, list(TRANSACTION_LINE_COLUMNS)]
        again[repeated] = lines.duplicated().to_numpy()
        first_user = lines.groupby("transaction_id", sort=False)["user_id"].transform("first")
        other_user[repeated] = (lines["user_id"] != first_user).fillna(False).to_numpy()
    index = transactions.index
    return pd.Series(again, index=index), pd.Series(other_user, index=index)


def _table_rules(table, out, rows: _Rows, known_currencies, base_currency) -> None:
    if table == "transactions":
        out["is_refund"] = out["is_refund"].fillna(False).astype(bool)
        out["currency"] = out["currency"].str.upper().fillna(base_currency)
        rows.reject((out["amount"] < 0) & ~out["is_refund"], "negative amount without is_refund")
        rows.reject((out["amount"] < 0) & out["is_refund"], "refund with a negative amount")
        ok = pd.isna(rows.reason) & (out["amount"] > 0)
        if ok.sum() >= 100:
            cap = OUTLIER_FACTOR * float(out.loc[ok, "amount"].quantile(0.99))
            rows.reject(out["amount"] > cap, f"implausible amount (over {cap:,.2f})")
        known = {base_currency} | (known_currencies or set())
        unknown = ~out["currency"].isin(known)
        rows.reject(unknown, NO_FX_RATE)
        again, other_user = shared_transaction_ids(out)
        rows.reject(again, DUPLICATE_LINE)
        rows.reject(other_user, "transaction_id of another user_id")
    elif table == "users":
        rows.reject(out["user_id"].notna() & out["user_id"].duplicated(), "duplicate user_id")
    elif table == "events":
        rows.reject(~out["event_name"].isin(EVENT_NAMES).fillna(False), "unknown event_name")
    elif table == "fx_rates":
        out["currency"] = out["currency"].str.upper()
        out["date"] = out["date"].dt.normalize()
        rows.reject(out["currency"].isna(), "missing currency")
        rows.reject(~(out["rate_to_base"] > 0).fillna(False), "rate_to_base is not positive")
        rows.reject(out.duplicated(["date", "currency"]), "duplicate (date, currency)")


def quarantine_summary(table: str, reasons: dict[str, int], shown: int = 3) -> str:
    """'' when nothing was quarantined, else the commonest reasons (reason -> rows) with their
    counts and where the rows are, e.g. ' (1,498 missing user_id; 800 negative amount without
    is_refund: rows and reasons in quarantine.transactions)'."""
    if not reasons:
        return ""
    counts = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [f"{n:,} {reason}" for reason, n in counts[:shown]]
    if len(counts) > shown:
        parts.append(f"{sum(n for _, n in counts[shown:]):,} for {len(counts) - shown} other reason(s)")
    return f" ({'; '.join(parts)}: rows and reasons in quarantine.{table})"
