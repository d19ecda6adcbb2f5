"""Erasure of customers (no Dagster imports): `ltv forget USER_ID` and the erasure job.

forget(home, ids) removes every row and record of the ids from each store the project writes
(lib/erasure.py does one store each: the warehouse tables with a user_id column, the Feast
exports and online store, audience exports, Great Expectations result files), adds the ids to
the erasure list that ingest applies to every later load, and appends one line per id to the
erasure log. It is idempotent: a second call finds nothing and says so.

Nothing here stores an id in clear: the erasure list and the log hold HMAC-SHA256(secret, id)
with a per-home secret (LTV_HOME/privacy/secret.key, mode 0600, created on the first erasure).
The list is useless without that file; keep both when a home is moved or rebuilt, or an erased
customer comes back with the next load of the same source.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ltv_pipeline.lib.errors import InputError, sample

MAX_ID_LENGTH = 256
SECRET_FILE = "secret.key"
ERASED_FILE = "erased.txt"
LOG_FILE = "erasures.jsonl"


def privacy_dir(home: Path) -> Path:
    return Path(home) / "privacy"


def validate_ids(user_ids: Iterable[object]) -> list[str]:
    """The ids as stored (text, stripped, as ingest stores them), de-duplicated in order. Raises
    InputError for an empty id, one longer than MAX_ID_LENGTH or one holding control
    characters (no loaded id can hold them: they would only be typing mistakes)."""
    out: list[str] = []
    bad: list[str] = []
    for raw in user_ids:
        text = "" if raw is None else str(raw).strip()
        if (not text or len(text) > MAX_ID_LENGTH
                or any(unicodedata.category(ch).startswith("C") for ch in text)):
            bad.append(text[:40])
        elif text not in out:
            out.append(text)
    if bad:
        raise InputError(f"USER_ID: {len(bad)} id(s) empty, longer than {MAX_ID_LENGTH} characters or "
                         f"holding control characters: {sample(bad)}; nothing was erased")
    if not out:
        raise InputError("USER_ID: no id given; nothing was erased")
    return out


def secret(home: Path, create: bool = False) -> bytes | None:
    """The home's HMAC key (None when there is none and create is False). Created with mode
    0600; a key file others can read is narrowed to 0600 again."""
    path = privacy_dir(home) / SECRET_FILE
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return secret(home)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    text = path.read_text().strip()
    if len(text) < 32:
        raise InputError(f"{path} is not a key written by `ltv forget` (too short): restore it "
                         "from a backup of this home; erasures cannot be checked without it")
    return text.encode()


def id_hash(key: bytes, user_id: str) -> str:
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def erased_hashes(home: Path) -> set[str]:
    """Hashes of every erased id of this home (empty when nothing was ever erased)."""
    path = privacy_dir(home) / ERASED_FILE
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines under an exclusive lock, flushed to disk before returning."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, "".join(f"{line}\n" for line in lines).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def record_erased(home: Path, hashes: Iterable[str]) -> int:
    """Add hashes to the erasure list (those not in it yet); returns how many were added."""
    new = sorted(set(hashes) - erased_hashes(home))
    if new:
        _append_lines(privacy_dir(home) / ERASED_FILE, new)
    return len(new)


def erased_mask(ids: pd.Series, home: Path) -> pd.Series:
    """True for each id (as ingest stores it) on the home's erasure list. Hashes each distinct
    id once; costs nothing while the list is empty."""
    hashes = erased_hashes(home)
    if not hashes or ids.empty:
        return pd.Series(False, index=ids.index)
    key = secret(home)
    if key is None:
        raise InputError(f"{privacy_dir(home)} holds an erasure list but no {SECRET_FILE}: restore "
                         "the key from a backup of this home (erased customers cannot be "
                         "recognised without it); nothing was loaded")
    codes, uniques = pd.factorize(ids.astype("string"), use_na_sentinel=True)
    hit = [id_hash(key, str(u)) in hashes for u in uniques]
    flags = pd.array(hit + [False], dtype=bool)[codes]  # -1 (a null id) takes the last: False
    return pd.Series(flags, index=ids.index)


def normalized_ids(ids: pd.Series) -> pd.Series:
    """Quarantined ids are kept as given: the forms ingest would have stored them under
    (stripped; a float-typed '12.0' is '12')."""
    text = ids.astype("string").str.strip()
    return text.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)


def forget(home: Path, user_ids: Iterable[object], source: str = "cli") -> dict:
    """Erase the ids from every store under `home` (see the module docstring); returns what was
    removed: per id its hash and counts per store, the totals, and whether anything was found.
    The caller holds the home's writer lock (lib/locks.py)."""
    from ltv_pipeline.lib import erasure

    ids = validate_ids(user_ids)
    home = Path(home)
    key = secret(home, create=True)
    hashed = {u: id_hash(key, u) for u in ids}
    stores = {
        "warehouse": erasure.erase_warehouse(home / "warehouse.duckdb", ids),
        "feast_exports": erasure.erase_parquet_rows(home / "feast" / "data", ids),
        "online_store": erasure.erase_online_store(home, ids),
        "audience_exports": erasure.erase_audience_exports(home / "exports", ids),
        "quality_results": erasure.scrub_quality_results(home / "quality", ids),
    }
    added = record_erased(home, hashed.values())
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    per_id = []
    for u in ids:
        counts = {store: {place: n[u] for place, n in found.items() if n.get(u)}
                  for store, found in stores.items()}
        counts = {store: c for store, c in counts.items() if c}
        per_id.append({"id_hash": hashed[u], "time": now, "source": source,
                       "removed": counts, "rows_removed": sum(sum(c.values()) for c in counts.values())})
    _append_lines(privacy_dir(home) / LOG_FILE, [json.dumps(e, sort_keys=True) for e in per_id])
    total = sum(e["rows_removed"] for e in per_id)
    return {
        "erased_ids": len(ids),
        "rows_removed": total,
        "nothing_found": total == 0,
        "newly_excluded_from_loads": added,
        "erasures": per_id,
        "log": str(privacy_dir(home) / LOG_FILE),
        "not_erased": "trained models (aggregates, no per-customer rows) are retrained on the next "
                      "run; Dagster's run history is not rewritten",
    }
