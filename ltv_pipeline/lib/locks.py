"""One writer at a time per LTV_HOME: an exclusive fcntl lock on LTV_HOME/.warehouse.lock.

Every `ltv` command that writes (the jobs runner.run_job executes in-process, `ltv forget`)
and the erasure job take it for as long as they write. A second writer waits for the first,
saying once on stderr whom it waits for, and gives up after a timeout with an InputError (exit
code 2 in the CLI) naming the holder. The kernel releases the lock when its process ends, a
kill -9 included: there is no stale lock to clean up. The lock is re-entrant within a process
(a job that erases ids inside a CLI run that holds it does not wait for itself).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from ltv_pipeline.lib.errors import InputError

LOCK_NAME = ".warehouse.lock"
# A backfill of many partitions can take an hour: by default a second writer waits that long
# and a little more. LTV_LOCK_TIMEOUT_SECONDS (read when a lock is taken) overrides it.
DEFAULT_TIMEOUT_SECONDS = 2 * 3600
POLL_SECONDS = 0.5

_held: dict[str, int] = {}
_guard = threading.Lock()


class WriterBusy(InputError):
    """Another writer kept LTV_HOME's lock past the timeout."""


def timeout_seconds() -> float:
    text = os.environ.get("LTV_LOCK_TIMEOUT_SECONDS")
    if not text:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"LTV_LOCK_TIMEOUT_SECONDS={text!r} is not a number of seconds") from None
    if value < 0:
        raise InputError(f"LTV_LOCK_TIMEOUT_SECONDS={text!r} must be 0 or more")
    return value


def lock_path(home: Path) -> Path:
    return Path(home) / LOCK_NAME


def holder(home: Path) -> dict:
    """Who holds (or last held) the lock: pid, what, since; {} when unknown."""
    try:
        return json.loads(lock_path(home).read_text() or "{}")
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def exclusive(home: Path, what: str, timeout: float | None = None,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold LTV_HOME's writer lock for the block. Waits (polling, telling on_wait once) up to
    `timeout` seconds (default timeout_seconds()), then raises WriterBusy."""
    path = lock_path(home)
    key = str(path.resolve())
    with _guard:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    fd = _acquire(home, what, timeout, on_wait)
    try:
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(home: Path, what: str, timeout: float | None,
             on_wait: Callable[[str], None] | None) -> int:
    """Open and lock LTV_HOME/.warehouse.lock (waiting as exclusive() says); returns the fd."""
    path = lock_path(home)
    limit = timeout_seconds() if timeout is None else timeout
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        started, told = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                who = holder(home)
                desc = (f"{who.get('what', 'another writer')} (pid {who.get('pid', '?')}, since "
                        f"{who.get('since', '?')})")
                waited = time.monotonic() - started
                if waited >= limit:
                    raise WriterBusy(
                        f"LTV_HOME {Path(home)} is being written by {desc}; waited {waited:.0f} s "
                        f"(LTV_LOCK_TIMEOUT_SECONDS={limit:g}): try again when it has finished"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(f"waiting for {desc} to finish writing {Path(home)} "
                            f"(up to {limit:g} s; LTV_LOCK_TIMEOUT_SECONDS)")
                    told = True
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "what": what, "since": datetime.now(
            timezone.utc).isoformat(timespec="seconds")}).encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


INHERIT_ENV = "LTV_WRITER_LOCK_PID"
_process_fd: int | None = None


def hold_until_exit(home: Path, what: str, on_wait: Callable[[str], None] | None = None) -> None:
    """Take the lock for the rest of this process (a CLI command: its runs and the reads that
    follow them, which DuckDB would refuse while another process writes). Idempotent. A child
    `ltv` process started while it is held (LTV_WRITER_LOCK_PID names its parent, the holder)
    works under its parent's lock instead of waiting for it."""
    global _process_fd
    if _process_fd is not None:
        return
    parent = os.environ.get(INHERIT_ENV)
    if parent and parent == str(os.getppid()) and str(holder(home).get("pid")) == parent:
        _process_fd = -1
        with _guard:
            _held[str(lock_path(home).resolve())] = 1
        return
    # never closed: the kernel releases the lock when the process ends
    _process_fd = _acquire(home, what, None, on_wait)
    with _guard:
        _held[str(lock_path(home).resolve())] = 1
    os.environ[INHERIT_ENV] = str(os.getpid())
