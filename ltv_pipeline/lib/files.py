"""Writing files the way every output of the project is written (no Dagster): atomically, a
temporary file beside the target renamed onto it, so readers see the old file or the new one,
never a half-written one. `replacing` is the one primitive; the writers below build on it."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

TMP_PREFIX = ".tmp-"  # temporary files are .tmp-<name>-<random>.tmp: a cleaner may glob .tmp-*


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory, so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], *, mode: int = 0o600,
              sync_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` (parents created) for the caller to write; when the
    block ends without an exception it is renamed onto `path` with os.replace, otherwise
    removed and `path` is left as it was. mode: the new file's permission bits (0600, as
    tempfile.mkstemp creates it, unless given). sync_dir: fsync the directory after the rename
    (fsyncing the file's own contents is the writer's part)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}-",
                                suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, mode)
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if sync_dir:
        fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600,
                       sync_dir: bool = False) -> Path:
    """Write `data` to `path` atomically (see replacing), fsyncing the file before the rename."""
    with replacing(path, mode=mode, sync_dir=sync_dir) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, mode: int = 0o600,
                      sync_dir: bool = False) -> Path:
    """Write `text` (UTF-8) to `path` atomically, as write_bytes_atomic."""
    return write_bytes_atomic(path, text.encode("utf-8"), mode=mode, sync_dir=sync_dir)


def write_frame(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write `frame` as .csv or .parquet (by the extension) atomically. Mode 0644: exports are
    read by other tools."""
    path = Path(path)
    with replacing(path, mode=0o644) as tmp:
        if path.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def write_json(payload: object, path: str | os.PathLike[str]) -> Path:
    """Write `payload` as JSON (indent 2, sorted keys) atomically, fsynced."""
    return write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True))
