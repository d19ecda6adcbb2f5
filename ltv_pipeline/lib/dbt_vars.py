"""The --vars that tell the dbt project which cutoffs to build (pure; no Dagster, no I/O).

Names and meanings match dbt_project/dbt_project.yml's vars: cutoffs, cutoffs_table,
scoring_date, backtest_origins, train_cutoffs, build_kind, horizon_days, base_currency,
decay_half_life_days, train_max_users.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from ltv_pipeline import settings
from ltv_pipeline.lib.cutoffs import CutoffPlan

DEFAULT_DECAY_HALF_LIFE_DAYS = 90
BUILD_KINDS = ("training", "scoring")


def _iso(value: date | str) -> str:
    if isinstance(value, datetime):
        raise TypeError(f"cutoffs are calendar dates, got the datetime {value!r}")
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise ValueError(f"cutoff dates must be 'YYYY-MM-DD', got {value!r}") from None


def _isos(values: Iterable[date | str]) -> list[str]:
    return sorted({_iso(v) for v in values})


def dbt_vars(
    cutoffs: Iterable[date | str],
    horizon_days: int,
    *,
    scoring_date: date | str | None = None,
    backtest_origins: Iterable[date | str] = (),
    train_cutoffs: Iterable[date | str] = (),
    build_kind: str = "training",
    base_currency: str | None = None,
    decay_half_life_days: float = DEFAULT_DECAY_HALF_LIFE_DAYS,
    train_max_users: int | None = None,
    cutoffs_table: str | None = None,
) -> dict[str, Any]:
    """The dbt vars for building `cutoffs` (plus every date named in a role) with horizon H.

    Dates become sorted, de-duplicated 'YYYY-MM-DD' strings; `cutoffs` is the union of all
    of them, so dbt needs no other var to know what to build, except the dates dbt reads from
    `cutoffs_table` when it is given (schema.table with a cutoff_date column). Raises
    ValueError when there is nothing to build or a value is out of range.
    """
    if isinstance(horizon_days, bool) or int(horizon_days) != horizon_days or horizon_days <= 0:
        raise ValueError(f"horizon_days must be a positive integer, got {horizon_days!r}")
    if build_kind not in BUILD_KINDS:
        raise ValueError(f"build_kind must be one of {BUILD_KINDS}, got {build_kind!r}")
    if decay_half_life_days <= 0:
        raise ValueError(f"decay_half_life_days must be positive, got {decay_half_life_days!r}")
    cap = settings.train_max_users() if train_max_users is None else train_max_users
    if isinstance(cap, bool) or int(cap) != cap or cap <= 0:
        raise ValueError(f"train_max_users must be a positive integer, got {train_max_users!r}")
    if isinstance(cutoffs, (str, date)):
        cutoffs = [cutoffs]
    origins = _isos(backtest_origins)
    trains = _isos(train_cutoffs)
    scoring = _iso(scoring_date) if scoring_date is not None else None
    every = set(_isos(cutoffs)) | set(origins) | set(trains) | ({scoring} if scoring else set())
    if not every and not cutoffs_table:
        raise ValueError("no cutoff dates to build: pass at least one cutoff")
    if cutoffs_table is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*",
                                                      cutoffs_table):
        raise ValueError(f"cutoffs_table must be 'schema.table', got {cutoffs_table!r}")
    currency = (base_currency or settings.base_currency()).strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"base_currency must be an ISO 4217 code, got {base_currency!r}")
    return {
        "cutoffs": sorted(every),
        "cutoffs_table": cutoffs_table,
        "scoring_date": scoring,
        "backtest_origins": origins,
        "train_cutoffs": trains,
        "build_kind": build_kind,
        "horizon_days": int(horizon_days),
        "base_currency": currency,
        "decay_half_life_days": decay_half_life_days,
        "train_max_users": int(cap),
    }


def vars_for_plan(plan: CutoffPlan, **kwargs: Any) -> dict[str, Any]:
    """dbt_vars for every cutoff of a CutoffPlan, with its roles (training cutoffs of the
    final model and of each backtest origin are all train_cutoffs)."""
    trains = set(plan.train_cutoffs)
    for cutoffs in plan.origin_train_cutoffs.values():
        trains.update(cutoffs)
    return dbt_vars(
        plan.all_cutoffs,
        plan.horizon_days,
        scoring_date=plan.scoring_date,
        backtest_origins=plan.backtest_origins,
        train_cutoffs=sorted(trains),
        **kwargs,
    )


def vars_for_scoring(cutoffs_table: str, horizon_days: int, **kwargs: Any) -> dict[str, Any]:
    """dbt_vars of a scoring build: the features and BTYD summaries of each date in
    `cutoffs_table` (a scoring partition or a backfill's range, written by
    lib.dbt_state.request_cutoffs), planned in int_cutoffs_scoring so the training plan is left
    as it is. The vars name no date: they are the same for every scoring date, so dbt reuses
    its parse of the project from one partition to the next (lib.dbt_project.run_dbt)."""
    return dbt_vars([], horizon_days, build_kind="scoring", cutoffs_table=cutoffs_table, **kwargs)


def as_cli_args(vars: Mapping[str, Any]) -> list[str]:
    """["--vars", <json>] for a dbt command line (keys sorted, so the text is stable)."""
    return ["--vars", json.dumps(dict(vars), sort_keys=True)]
