"""Giving freed memory back to the operating system between pipeline steps (no Dagster).

`ltv predict`, `ltv demo` and `ltv score` run every step of a job in one process. Python
frees a step's frames when it ends, but glibc's allocator keeps much of the freed heap mapped,
so the next step starts from the previous one's high-water mark and the process peak is the
sum of the two rather than the larger (measured at 1M users: README, "peak memory per step").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from functools import cache


@cache
def _malloc_trim():
    """glibc's malloc_trim, or None on another C library (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return getattr(libc, "malloc_trim", None)
    except OSError:
        return None


# Below this resident size a step's leftovers are small and the full garbage collection
# (~0.2 s with Dagster loaded) is not worth paying after each of a run's ~40 steps.
MIN_RSS_BYTES = 1 << 30


def resident_bytes() -> int | None:
    """This process's resident set size (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def release(min_rss_bytes: int = MIN_RSS_BYTES) -> bool:
    """When the process holds at least min_rss_bytes (or its size is unknown): collect garbage
    and return free heap pages to the OS. True when malloc_trim ran."""
    rss = resident_bytes()
    if rss is not None and rss < min_rss_bytes:
        return False
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
