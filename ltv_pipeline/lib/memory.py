"""Giving freed memory back to the operating system between pipeline steps (no Dagster).

`ltv predict`, `ltv demo` and `ltv score` run every step of a job in one process. Python
frees a step's frames when it ends, but glibc's allocator keeps much of the freed heap mapped,
so the next step starts from the previous one's high-water mark and the process peak is the
sum of the two rather than the larger (measured at 1M users in defs/hooks.py's docstring).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
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


def release() -> bool:
    """Collect garbage and return free heap pages to the OS; True when malloc_trim ran."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
