"""Acting on scores: segments, a priority ranking with exploration, audiences. No Dagster, no DuckDB.

Input: one row per user of a scoring partition (lib/scoring.forecast's columns): user_id,
predicted_value, cold_start, and where needed p10, p90 (NaN without an interval model),
p_alive, segment; optional frequency (BTYD repeat-purchase days) and margin_rate.

Segments (`segment`, the fixed set SEGMENTS): "new" for cold starts (no purchase before the
cutoff + 1 day); warm users are "high" when predicted_value >= thresholds["high"], "medium"
when >= thresholds["medium"], else "low". `segment_thresholds` sets each threshold to the
smallest value of its tier when warm users are ranked by value (default top 20% high, next 30%
medium); store them with the partition so a user scored online later gets the segment the batch
would give. Ties at a threshold join the upper tier; an empty tier has threshold +inf.

Uncertainty is a separate boolean column `uncertain`, not a segment, so value tiers keep their
sizes: a warm user is uncertain when (p90 - p10) > MAX_RELATIVE_WIDTH * predicted_value (width
known and positive) or frequency < MIN_FREQUENCY (a single purchase day). Fixed cut-offs, so
it is also the same online and in batch. Cold starts are never "uncertain" (they are "new").

Priority (`priority`): slot i (1-based) of the ranking is an exploration slot when
floor(i * share) > floor((i - 1) * share), so every top-k prefix holds floor(k * share) of
them. Exploration slots alternate between two pools, new users first: cold starts, and uncertain
warm users, each ordered by optimistic value max(p90, predicted_value); a slot whose pool is
used up takes the other pool, and exploit once both are. Every other slot takes the best
not-yet-ranked user of all users by predicted_value (exploit). Each user is ranked once. Ties
break on a hash of user_id keyed by the seed, so the ranking depends on the rows and the seed
only, not on their order (pass e.g. the partition's date ordinal to rotate tied new users).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ltv_pipeline.lib.files import write_frame

SEGMENTS = ("high", "medium", "low", "new")
SEGMENT_SHARES = (("high", 0.2), ("medium", 0.3))
MAX_RELATIVE_WIDTH = 2.0
MIN_FREQUENCY = 1
# audience -> what its `score` column holds (the ordering score, higher first)
AUDIENCE_SCORES = {"top_value": "predicted_value", "top_margin": "predicted_value * margin_rate",
                   "churn_risk_high_value": "1 - p_alive", "priority": "priority_score"}
AUDIENCE_COLUMNS = ["rank", "user_id", "score", "predicted_value", "segment"]


def _require(scores: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in scores.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; the scores have {list(scores.columns)}")


def _values(values, name: str = "predicted_value") -> np.ndarray:
    out = np.asarray(values, dtype=float)
    if np.isnan(out).any():
        raise ValueError(f"{name} has {int(np.isnan(out).sum())} missing values (rows "
                         f"{np.flatnonzero(np.isnan(out))[:5].tolist()}...): score them or drop them first")
    return out


def segment_thresholds(values, cold_start, shares=SEGMENT_SHARES) -> dict[str, float]:
    """Tier name -> smallest predicted value of that tier among warm users ranked by value
    (tier sizes round(share * warm users)); +inf for an empty tier."""
    values, cold = _values(values), np.asarray(cold_start, dtype=bool)
    ranked = np.sort(values[~cold])[::-1]
    out, start = {}, 0
    for name, share in shares:
        stop = min(start + int(round(share * len(ranked))), len(ranked))
        out[name] = float(ranked[stop - 1]) if stop > start else float("inf")
        start = stop
    return out


def assign_segments(values, cold_start, thresholds: dict[str, float]) -> np.ndarray:
    """Segment per row from stored thresholds only: "new" for cold starts, else the first tier
    (in the order of `thresholds`) whose threshold the value reaches, else "low"."""
    values, cold = _values(values), np.asarray(cold_start, dtype=bool)
    out = np.full(len(values), "low", dtype=object)
    for name, threshold in reversed(list(thresholds.items())):
        out[values >= threshold] = name
    out[cold] = "new"
    return out


def uncertain(values, cold_start, p10=None, p90=None, frequency=None,
              max_relative_width: float = MAX_RELATIVE_WIDTH,
              min_frequency: float = MIN_FREQUENCY) -> np.ndarray:
    """True for warm users with a wide interval (p90 - p10 > max_relative_width * value) or
    few purchases (frequency < min_frequency); missing p10/p90/frequency never flag a user."""
    values, cold = _values(values), np.asarray(cold_start, dtype=bool)
    out = np.zeros(len(values), dtype=bool)
    if p10 is not None and p90 is not None:
        width = np.asarray(p90, dtype=float) - np.asarray(p10, dtype=float)
        out |= np.nan_to_num(width, nan=0.0) > max_relative_width * np.clip(values, 0.0, None)
    if frequency is not None:
        out |= np.nan_to_num(np.asarray(frequency, dtype=float), nan=np.inf) < min_frequency
    return out & ~cold


def annotate(scores: pd.DataFrame, thresholds: dict[str, float] | None = None) -> tuple[pd.DataFrame, dict]:
    """Copy of scores with `segment` and `uncertain`; thresholds computed from these scores
    unless given (pass the stored ones to score a few users like the batch did)."""
    _require(scores, ["user_id", "predicted_value", "cold_start"], "annotate")
    value, cold = scores["predicted_value"], scores["cold_start"].fillna(False).astype(bool)
    if thresholds is None:
        thresholds = segment_thresholds(value, cold)
    opt = {c: scores[c] for c in ("p10", "p90", "frequency") if c in scores.columns}
    out = scores.assign(segment=assign_segments(value, cold, thresholds),
                        uncertain=uncertain(value, cold, **opt))
    return out, thresholds


def _tie_key(user_id: pd.Series, seed: int, *keys: np.ndarray) -> np.ndarray:
    """A seeded hash of user_id (as text) for rows sharing a value of some key, else 0
    (hashing only tied rows is what keeps it fast; it cannot change any other order)."""
    tied = np.zeros(len(user_id), dtype=bool)
    for k in keys:
        tied |= pd.Series(k).duplicated(keep=False).to_numpy()
    out = np.zeros(len(user_id), dtype=np.uint64)
    out[tied] = pd.util.hash_pandas_object(user_id[tied].astype(str), index=False,
                                           hash_key=f"{seed % 10**16:016d}").to_numpy()
    return out


def priority(scores: pd.DataFrame, exploration_share: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Copy of scores (same rows and order) with rank (1 = first), priority_score
    ((n - rank + 1) / n, higher first) and explore (picked for an exploration slot).
    Candidates are cold_start or uncertain users (`uncertain` computed when absent)."""
    _require(scores, ["user_id", "predicted_value", "cold_start"], "priority")
    if not 0.0 <= exploration_share <= 1.0:
        raise ValueError(f"exploration_share must be within [0, 1], got {exploration_share}")
    if scores["user_id"].duplicated().any():
        dup = scores.loc[scores["user_id"].duplicated(), "user_id"].head(5).tolist()
        raise ValueError(f"priority needs one row per user; duplicated user_id: {dup}")
    n = len(scores)
    value = _values(scores["predicted_value"])
    cold = scores["cold_start"].fillna(False).to_numpy(bool)
    if "uncertain" in scores.columns:
        unsure = scores["uncertain"].fillna(False).to_numpy(bool)
    else:
        opt = {c: scores[c] for c in ("p10", "p90", "frequency") if c in scores.columns}
        unsure = uncertain(value, cold, **opt)
    optimistic = np.fmax(value, scores["p90"].to_numpy(float)) if "p90" in scores.columns else value
    tie = _tie_key(scores["user_id"], seed, value, optimistic)
    exploit = np.lexsort((tie, -value))
    pools = [np.flatnonzero(m)[np.lexsort((tie[m], -optimistic[m]))].tolist()
             for m in (cold, unsure & ~cold)]
    i = np.arange(n + 1) * exploration_share + 1e-9  # epsilon: 0.1 * 30 must floor to 3
    slots = np.diff(np.floor(i)) > 0
    rank, picked = _fill(n, exploit, slots, pools)
    return scores.assign(rank=rank, priority_score=(n - rank + 1) / max(n, 1), explore=picked)


def _fill(n: int, exploit: np.ndarray, slots: np.ndarray, pools: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """rank per row and whether it was an exploration pick: the j-th exploration slot (0-based)
    takes the next unplaced row of pools[j % 2], else of the other pool, else exploit; other
    positions take the next unplaced row of `exploit` (all rows, best first)."""
    placed, picked, order = bytearray(n), bytearray(n), []
    xs, x, heads, j = exploit.tolist(), 0, [0, 0], 0
    for is_slot in slots.tolist():
        user = -1
        if is_slot:
            j += 1
            for p in ((j - 1) % 2, j % 2):
                pool = pools[p]
                while heads[p] < len(pool) and placed[pool[heads[p]]]:
                    heads[p] += 1
                if heads[p] < len(pool):
                    user = pool[heads[p]]
                    picked[user] = 1
                    break
        if user < 0:
            while placed[xs[x]]:
                x += 1
            user = xs[x]
        placed[user] = 1
        order.append(user)
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(1, n + 1)
    return rank, np.frombuffer(picked, dtype=bool).copy()


def _top(frame: pd.DataFrame, score, k: int) -> pd.DataFrame:
    """The k highest scores (missing last); ties by higher predicted_value, then user_id."""
    s = np.nan_to_num(np.asarray(score, dtype=float), nan=-np.inf)
    if 0 < k < len(s):  # pre-select: everyone at or above the k-th score, ties included
        keep = s >= np.partition(s, len(s) - k)[len(s) - k]
        frame, s = frame[keep], s[keep]
    ordered = frame.assign(score=s).sort_values(["score", "predicted_value", "user_id"],
                                                ascending=[False, False, True], kind="mergesort")
    top = ordered.head(k).reset_index(drop=True)
    return top.assign(rank=np.arange(1, len(top) + 1),
                      score=top["score"].where(np.isfinite(top["score"])))[AUDIENCE_COLUMNS]


def audiences(scores: pd.DataFrame, k: int, exploration_share: float = 0.1,
              seed: int = 0) -> dict[str, pd.DataFrame]:
    """The top k users of each audience in AUDIENCE_SCORES, columns AUDIENCE_COLUMNS.
    margin_rate is the user's historical (revenue - variable_cost) / revenue, 1 when missing
    (no cost data); churn_risk_high_value keeps "high" users only, ties broken by value;
    priority uses the scores' rank when present, else priority(scores, exploration_share, seed)."""
    _require(scores, ["user_id", "predicted_value", "segment", "p_alive"], "audiences")
    if k < 0:
        raise ValueError(f"audience size k must be >= 0, got {k}")
    value = scores["predicted_value"]
    margin = scores["margin_rate"].fillna(1.0) if "margin_rate" in scores.columns else 1.0
    high = scores[scores["segment"] == "high"]
    ranked = scores if "rank" in scores.columns else priority(scores, exploration_share, seed)
    by_rank = ranked[ranked["rank"] <= k].sort_values("rank").reset_index(drop=True)
    return {
        "top_value": _top(scores, value, k),
        "top_margin": _top(scores, value * margin, k),
        "churn_risk_high_value": _top(high, 1.0 - high["p_alive"], k),
        "priority": by_rank.assign(score=(len(ranked) - by_rank["rank"] + 1) / len(ranked))[AUDIENCE_COLUMNS],
    }


def write_audiences(audiences: dict[str, pd.DataFrame], directory: Path) -> dict[str, list[Path]]:
    """Write each audience as directory/<name>.csv and <name>.parquet, each atomically (a
    temporary file in the same directory, then os.replace): a rewrite replaces the files.
    Returns name -> [csv path, parquet path]. Each file is atomic, the set of files is not."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, frame in audiences.items():
        written[name] = [directory / f"{name}.csv", directory / f"{name}.parquet"]
        for path in written[name]:
            write_frame(frame, path)
    return written


def summary(scores: pd.DataFrame) -> dict:
    """What a user looks for on a scoring partition; quantiles are None when nobody is scored."""
    _require(scores, ["predicted_value", "cold_start", "segment"], "summary")
    value = scores["predicted_value"].astype(float)
    sizes = scores["segment"].value_counts()
    q = {name: (float(value.quantile(p)) if len(value) else None)
         for name, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
    out = {
        "customers_scored": int(len(scores)),
        "cold_starts": int(scores["cold_start"].fillna(False).astype(bool).sum()),
        "segment_sizes": {**{s: 0 for s in SEGMENTS}, **{str(s): int(c) for s, c in sizes.items()}},
        "predicted_value_quantiles": {**q, "max": float(value.max()) if len(value) else None},
        "total_predicted_value": float(value.sum()),
    }
    if "uncertain" in scores.columns:
        out["uncertain"] = int(scores["uncertain"].fillna(False).astype(bool).sum())
    return out
