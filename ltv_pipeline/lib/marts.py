"""Reading the dbt marts the models learn from (plain SQL over an open DuckDB connection).

Schemas and names follow dbt_project/: intermediate.int_cutoffs_planned (the cutoff plan of the
last dbt build), marts.customer_btyd_summary, marts.customer_labels, marts.customer_features.
Callers open the connection in a with-block and close it before any dbt run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from ltv_pipeline.lib.dbt_vars import DEFAULT_DECAY_HALF_LIFE_DAYS


@dataclass(frozen=True)
class BuiltPlan:
    """The cutoffs the last dbt build made, by role, the horizon of its labels, the half-life
    of its decayed spend feature (a scoring build computes its features with it) and the
    currency of its amounts (None: a plan from before the column)."""

    horizon_days: int
    scoring_date: date
    train_cutoffs: tuple[date, ...]
    backtest_origins: tuple[date, ...]
    all_cutoffs: tuple[date, ...]
    decay_half_life_days: float = DEFAULT_DECAY_HALF_LIFE_DAYS
    base_currency: str | None = None

    def train_cutoffs_before(self, origin: date) -> tuple[date, ...]:
        """Cutoffs whose label window [C + 1, C + 1 + H) ends on or before origin + 1 day,
        i.e. C + H <= origin: what a model evaluated at `origin` may learn from."""
        return tuple(c for c in self.all_cutoffs if (origin - c).days >= self.horizon_days)


def read_plan(con: duckdb.DuckDBPyConnection) -> BuiltPlan:
    plan = con.execute("select * from intermediate.int_cutoffs_planned order by cutoff_date").df()
    if plan.empty:
        raise ValueError("intermediate.int_cutoffs_planned is empty: run the dbt build first")
    as_dates = lambda mask: tuple(pd.to_datetime(plan.loc[mask, "cutoff_date"]).dt.date)  # noqa: E731
    scoring = as_dates(plan["is_scoring_date"])
    return BuiltPlan(
        horizon_days=int(plan["horizon_days"].iloc[0]),
        scoring_date=scoring[-1] if scoring else as_dates(plan["cutoff_date"].notna())[-1],
        train_cutoffs=as_dates(plan["is_train_cutoff"]),
        backtest_origins=as_dates(plan["is_backtest_origin"]),
        all_cutoffs=as_dates(plan["cutoff_date"].notna()),
        # a plan built before the column existed was built with the default
        decay_half_life_days=float(plan["decay_half_life_days"].iloc[0])
        if "decay_half_life_days" in plan else DEFAULT_DECAY_HALF_LIFE_DAYS,
        base_currency=str(plan["base_currency"].iloc[0]) if "base_currency" in plan else None,
    )


def in_list(cutoffs) -> str:
    """A SQL list of date literals from dates or ISO strings (values are parsed, never pasted)."""
    return ", ".join(f"date '{pd.Timestamp(c).date().isoformat()}'" for c in cutoffs) or "null"


def btyd_summary(con: duckdb.DuckDBPyConnection, cutoffs) -> pd.DataFrame:
    """user_id, cutoff_date, frequency, recency, T, monetary_value, mean_order_value (every
    purchase day's mean: Gamma-Gamma's posterior spend conditions on it) for the given cutoffs, and
    revenue_total (customer_features: net revenue of every day before cutoff + 1 day, which
    carries the first purchase that the BTYD summary leaves out; rfm_stack reads it)."""
    return con.execute(
        "select s.user_id, s.cutoff_date, s.frequency, s.recency, s.\"T\", s.monetary_value, "
        "s.mean_order_value, "
        "f.revenue_total from marts.customer_btyd_summary s left join marts.customer_features f "
        "on f.user_id = s.user_id and f.cutoff_date = s.cutoff_date "
        f"where s.cutoff_date in ({in_list(cutoffs)}) order by s.cutoff_date, s.user_id"
    ).df()


def labels(con: duckdb.DuckDBPyConnection, cutoffs, horizon_days: int) -> pd.DataFrame:
    """user_id, cutoff_date, value, margin, n_orders of complete label windows."""
    return con.execute(
        "select user_id, cutoff_date, value, margin, n_orders from marts.customer_labels "
        f"where cutoff_date in ({in_list(cutoffs)}) and horizon_days = ? and is_window_complete "
        "order by cutoff_date, user_id",
        [int(horizon_days)],
    ).df()


def population(con: duckdb.DuckDBPyConnection, cutoff) -> pd.DataFrame:
    """Everyone known at a cutoff (customer_features rows): user_id, cutoff_date, is_cold_start,
    margin_share (historical margin / revenue, null without revenue)."""
    return con.execute(
        "select user_id, cutoff_date, is_cold_start, margin_share from marts.customer_features "
        f"where cutoff_date = {in_list([cutoff])} order by user_id"
    ).df()


def cohort_revenue(con: duckdb.DuckDBPyConnection, before: date) -> pd.DataFrame:
    return con.execute(
        "select cohort_month, activity_date, revenue from marts.cohort_revenue "
        "where activity_date < ? order by activity_date",
        [before],
    ).df()
