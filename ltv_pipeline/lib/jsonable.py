"""Plain JSON values for manifests, metadata and saved results (no Dagster imports)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def to_jsonable(v: Any) -> Any:
    """Plain JSON types: timestamps as ISO strings, numpy scalars as Python, NaN/NaT as None."""
    if isinstance(v, Mapping):
        return {str(k): to_jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [to_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return [to_jsonable(x) for x in v.tolist()]
    if v is None or v is pd.NaT:
        return None
    if hasattr(v, "isoformat") and not isinstance(v, np.generic):  # dates, times, Timestamps
        return v.isoformat()
    if isinstance(v, np.datetime64):
        return None if np.isnat(v) else pd.Timestamp(v).isoformat()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)):
        return v
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)
