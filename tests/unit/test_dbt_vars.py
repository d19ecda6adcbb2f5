import json
from datetime import date, datetime

import pytest

from ltv_pipeline.lib.cutoffs import plan_cutoffs
from ltv_pipeline.lib.dbt_vars import as_cli_args, dbt_vars, vars_for_plan


def test_dbt_vars_normalises_sorts_and_unions_every_cutoff():
    v = dbt_vars(["1998-03-01", date(1997, 9, 30), "1998-03-01"], 90,
                 scoring_date="1998-06-30", backtest_origins=[date(1998, 4, 1)],
                 train_cutoffs=["1998-01-01"])
    assert v["cutoffs"] == ["1997-09-30", "1998-01-01", "1998-03-01", "1998-04-01", "1998-06-30"]
    assert v["scoring_date"] == "1998-06-30"
    assert v["backtest_origins"] == ["1998-04-01"]
    assert v["train_cutoffs"] == ["1998-01-01"]
    assert v["horizon_days"] == 90
    assert v["base_currency"] == "USD"


def test_dbt_vars_accepts_a_single_date():
    assert dbt_vars(date(1997, 9, 30), 30)["cutoffs"] == ["1997-09-30"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cutoffs": ["1997/09/30"], "horizon_days": 30}, "YYYY-MM-DD"),
        ({"cutoffs": [], "horizon_days": 30}, "no cutoff"),
        ({"cutoffs": ["1997-09-30"], "horizon_days": 0}, "horizon_days"),
        ({"cutoffs": ["1997-09-30"], "horizon_days": 1.5}, "horizon_days"),
        ({"cutoffs": ["1997-09-30"], "horizon_days": 30, "base_currency": "dollars"}, "ISO 4217"),
        ({"cutoffs": ["1997-09-30"], "horizon_days": 30, "train_max_users": 0}, "train_max_users"),
        ({"cutoffs": ["1997-09-30"], "horizon_days": 30, "train_max_users": 2.5}, "train_max_users"),
    ],
)
def test_dbt_vars_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dbt_vars(**kwargs)


def test_dbt_vars_rejects_datetimes_which_would_hide_a_time_of_day():
    with pytest.raises(TypeError):
        dbt_vars([datetime(1997, 9, 30, 12)], 30)


def test_vars_for_plan_marks_every_training_cutoff_and_builds_them_all():
    plan = plan_cutoffs(date(1998, 6, 30), 90)
    v = vars_for_plan(plan)
    assert v["cutoffs"] == [d.isoformat() for d in plan.all_cutoffs]
    assert v["scoring_date"] == "1998-06-30"
    origin_trains = {d.isoformat() for ds in plan.origin_train_cutoffs.values() for d in ds}
    assert origin_trains <= set(v["train_cutoffs"])
    assert {d.isoformat() for d in plan.train_cutoffs} <= set(v["train_cutoffs"])


def test_as_cli_args_is_one_stable_json_argument():
    v = dbt_vars(["1997-09-30"], 90)
    args = as_cli_args(v)
    assert args[0] == "--vars" and len(args) == 2
    assert json.loads(args[1]) == v
    assert args == as_cli_args(dict(reversed(list(v.items()))))


def test_train_max_users_comes_from_the_setting_unless_given(monkeypatch):
    from ltv_pipeline import settings
    from ltv_pipeline.lib.errors import InputError

    monkeypatch.delenv("LTV_TRAIN_MAX_USERS", raising=False)
    assert dbt_vars(["1997-09-30"], 30)["train_max_users"] == settings.TRAIN_MAX_USERS
    monkeypatch.setenv("LTV_TRAIN_MAX_USERS", "5000")
    assert dbt_vars(["1997-09-30"], 30)["train_max_users"] == 5000
    assert dbt_vars(["1997-09-30"], 30, train_max_users=7)["train_max_users"] == 7
    monkeypatch.setenv("LTV_TRAIN_MAX_USERS", "lots")
    with pytest.raises(InputError, match="LTV_TRAIN_MAX_USERS"):
        dbt_vars(["1997-09-30"], 30)


def test_a_scoring_range_is_built_in_batches_of_the_user_date_budget(monkeypatch):
    from ltv_pipeline import settings
    from ltv_pipeline.lib import dbt_state
    from ltv_pipeline.lib.errors import InputError

    days = [f"2025-10-{d:02d}" for d in range(1, 31)]
    monkeypatch.delenv("LTV_SCORING_BUILD_MAX_USER_DATES", raising=False)
    budget = settings.scoring_build_max_user_dates()
    assert budget == settings.SCORING_BUILD_MAX_USER_DATES
    assert dbt_state.batches(days, 20_000, budget) == [days]  # small logs: one build
    at_1m = dbt_state.batches(days, 1_000_000, budget)
    assert [len(b) for b in at_1m] == [3] * 10 and sum(at_1m, []) == days
    assert dbt_state.batches(days, 10 * budget, budget) == [[d] for d in days]  # at least one date
    assert dbt_state.batches([], 1_000_000, budget) == []
    monkeypatch.setenv("LTV_SCORING_BUILD_MAX_USER_DATES", "0")
    with pytest.raises(InputError, match="LTV_SCORING_BUILD_MAX_USER_DATES"):
        settings.scoring_build_max_user_dates()
