"""Which cutoff dates to build for a scoring date (pure; no Dagster, no I/O).

The time rule (DESIGN.md): for a cutoff D the history is every row with ts < D + 1 day and the
label window of horizon H is [D + 1 day, D + 1 day + H days), whose last day is D + H. A label
is fully observed as of a date A (data up to the end of day A) exactly when D + H <= A.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

DEFAULT_N_ORIGINS = 3
DEFAULT_ORIGIN_SPACING_DAYS = 30
DEFAULT_N_TRAIN_CUTOFFS = 3
DEFAULT_TRAIN_SPACING_DAYS = 30
DEFAULT_MIN_HISTORY_DAYS = 30


@dataclass(frozen=True)
class CutoffPlan:
    """The cutoffs one run builds, by role. All tuples are sorted ascending."""

    as_of: date
    horizon_days: int
    # Scoring: features as of `as_of`; its label window lies in the future.
    scoring_date: date
    # Backtest origins: each origin's label window ends on or before as_of.
    backtest_origins: tuple[date, ...]
    # Training cutoffs of the final (champion) model: windows end on or before as_of.
    train_cutoffs: tuple[date, ...]
    # Per origin, the training cutoffs of the model backtested there: windows end on or
    # before the origin, so training never sees a row the origin's model could not have seen.
    origin_train_cutoffs: dict[date, tuple[date, ...]] = field(default_factory=dict)
    # The day every label window above ends by: as_of, or the data's last day when that is
    # earlier (plan_cutoffs' observed_until).
    labels_until: date | None = None

    @property
    def all_cutoffs(self) -> tuple[date, ...]:
        """Every distinct cutoff to build (features for all; labels where observed)."""
        dates = {self.scoring_date, *self.backtest_origins, *self.train_cutoffs}
        for cutoffs in self.origin_train_cutoffs.values():
            dates.update(cutoffs)
        return tuple(sorted(dates))


def label_window(cutoff: date, horizon_days: int) -> tuple[date, date]:
    """[start, end) of the label window of `cutoff`: [D + 1 day, D + 1 day + H days)."""
    start = cutoff + timedelta(days=1)
    return start, start + timedelta(days=horizon_days)


def label_observed_by(cutoff: date, horizon_days: int, as_of: date) -> bool:
    """True when the whole label window lies within data up to the end of day `as_of`,
    i.e. cutoff + H <= as_of."""
    return cutoff + timedelta(days=horizon_days) <= as_of


def plan_cutoffs(
    as_of: date,
    horizon_days: int,
    n_origins: int = DEFAULT_N_ORIGINS,
    origin_spacing_days: int = DEFAULT_ORIGIN_SPACING_DAYS,
    n_train_cutoffs: int = DEFAULT_N_TRAIN_CUTOFFS,
    train_spacing_days: int = DEFAULT_TRAIN_SPACING_DAYS,
    data_start: date | None = None,
    min_history_days: int = DEFAULT_MIN_HISTORY_DAYS,
    observed_until: date | None = None,
) -> CutoffPlan:
    """Plan the cutoffs for scoring as of `as_of` with horizon H = `horizon_days`.

    The rule (A = as_of, H = horizon_days):
    - scoring date: A.
    - backtest origins: o_k = A - H - k * origin_spacing_days for k = 0 .. n_origins - 1, so
      every origin's label window [o + 1, o + 1 + H) ends on or before A (o + H <= A): the
      backtest can score it against realised values.
    - training cutoffs of the final model: t_j = A - H - j * train_spacing_days for
      j = 0 .. n_train_cutoffs - 1 (label windows end on or before A).
    - per origin o, its training cutoffs: o - H - j * train_spacing_days (label windows end on
      or before o), so a backtest model is trained only on what was known at its origin.
    - with `data_start` given, a cutoff earlier than data_start + min_history_days is dropped
      (too little history for features); an origin left with no training cutoff is dropped,
      since no model could be trained for it.
    - with `observed_until` (the data's last day) before A, the origins and training cutoffs
      are placed from it instead of A: a label window is only complete where the data reach
      its end (marts.customer_labels.is_window_complete), so windows ending after the data
      would leave the backtest and training without labels. The scoring date stays A.

    Raises ValueError for a non-positive horizon or negative counts/spacings.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    for name, value in (
        ("n_origins", n_origins),
        ("n_train_cutoffs", n_train_cutoffs),
        ("min_history_days", min_history_days),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    for name, value in (
        ("origin_spacing_days", origin_spacing_days),
        ("train_spacing_days", train_spacing_days),
    ):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    horizon = timedelta(days=horizon_days)
    earliest = data_start + timedelta(days=min_history_days) if data_start else None

    def keep(d: date) -> bool:
        return earliest is None or d >= earliest

    def train_series(end: date) -> tuple[date, ...]:
        last = end - horizon
        series = (last - timedelta(days=j * train_spacing_days) for j in range(n_train_cutoffs))
        return tuple(sorted(d for d in series if keep(d)))

    labels_until = min(as_of, observed_until) if observed_until else as_of
    origin_train: dict[date, tuple[date, ...]] = {}
    for k in range(n_origins):
        origin = labels_until - horizon - timedelta(days=k * origin_spacing_days)
        trains = train_series(origin)
        if keep(origin) and trains:
            origin_train[origin] = trains

    return CutoffPlan(
        as_of=as_of,
        horizon_days=horizon_days,
        scoring_date=as_of,
        backtest_origins=tuple(sorted(origin_train)),
        train_cutoffs=train_series(labels_until),
        origin_train_cutoffs=dict(sorted(origin_train.items())),
        labels_until=labels_until,
    )
