"""A scoring build reads its dates from a table (lib/dbt_state.request_cutoffs, dbt var
cutoffs_table), so its --vars are the same for every date, and run_dbt hands each new run dir
the parse state of the last build with those vars: dbt parses again only what changed instead
of the whole project. Same hand-made log as test_marts_on_fixture.py."""

import numpy as np
import pandas as pd
import pytest
from test_marts_on_fixture import D, features, write

from ltv_pipeline.lib import dbt_state, marts, warehouse
from ltv_pipeline.lib.dbt_project import parse_cache_path, run_dbt
from ltv_pipeline.lib.dbt_vars import dbt_vars, vars_for_scoring

SELECT = ["build", "--select", "+customer_features +customer_btyd_summary",
          "--exclude-resource-type", "unit_test"]
FULL_PARSE = "Unable to do partial parsing"


def score_build(wh, days, target, **kwargs):
    with warehouse.connect(wh.path) as con:
        table = dbt_state.request_cutoffs(con, days)
    return run_dbt(SELECT, vars_for_scoring(table, 30, **kwargs), target_path=target)


def days_in(wh, table: str) -> list[str]:
    return wh.query(f"select distinct strftime(cutoff_date, '%Y-%m-%d') as d from {table} order by d")["d"].tolist()


def test_a_scoring_build_plans_the_requested_dates_and_reuses_the_parse(dbt_warehouse, write_raw_tables):
    write(dbt_warehouse, write_raw_tables)
    dbt_warehouse.build(dbt_vars([D], 30))  # the training plan
    first = score_build(dbt_warehouse, ["2024-03-30", "2024-03-29"], dbt_warehouse.home / "run1")
    assert FULL_PARSE in first.stdout  # a new home: nothing to reuse yet
    assert parse_cache_path(vars_for_scoring(dbt_state.SCORING_CUTOFFS_TABLE, 30)).is_file()
    assert days_in(dbt_warehouse, "intermediate.int_cutoffs_scoring") == ["2024-03-29", "2024-03-30"]
    assert {"2024-03-29", "2024-03-30"} <= set(days_in(dbt_warehouse, "marts.customer_features"))
    assert days_in(dbt_warehouse, "intermediate.int_cutoffs_planned") == [D]  # left alone

    # another date, a new run dir: the same vars, so dbt starts from the saved parse
    second = score_build(dbt_warehouse, [D], dbt_warehouse.home / "run2")
    assert FULL_PARSE not in second.stdout
    assert days_in(dbt_warehouse, "intermediate.int_cutoffs_scoring") == [D]
    # other vars (another horizon) are another parse
    with warehouse.connect(dbt_warehouse.path) as con:
        table = dbt_state.request_cutoffs(con, [D])
    third = run_dbt(SELECT, vars_for_scoring(table, 60), target_path=dbt_warehouse.home / "run3")
    assert FULL_PARSE in third.stdout


def test_request_and_vars_refuse_what_dbt_could_not_read(dbt_warehouse):
    with warehouse.connect(dbt_warehouse.path) as con:
        with pytest.raises(ValueError):
            dbt_state.request_cutoffs(con, [])
        with pytest.raises(ValueError):
            dbt_state.request_cutoffs(con, ["2024/03/01"])
    with pytest.raises(ValueError, match="schema.table"):
        vars_for_scoring("ltv_state.x; drop table raw.users", 30)


def test_the_plan_keeps_its_half_life_and_a_scoring_build_with_it_writes_the_training_rows(
        dbt_warehouse, write_raw_tables):
    """The models learn decayed_revenue with the training build's half-life; the scoring
    partitions read it from the plan (defs/scoring), so D's features are the ones the training
    build wrote for D, and dbt_state's record of them holds until inputs, half-life or rows
    change."""
    write(dbt_warehouse, write_raw_tables)
    dbt_warehouse.build(dbt_vars([D], 30, scoring_date=D, decay_half_life_days=7))
    trained = features(dbt_warehouse)
    with warehouse.connect(dbt_warehouse.path) as con:
        plan = marts.read_plan(con)
        dbt_state.record_cutoffs(con, [D], "inputs-a", plan.decay_half_life_days)
        assert dbt_state.current_cutoffs(con, [D, "2024-03-30"], "inputs-a", 7) == [D]
        assert dbt_state.current_cutoffs(con, [D], "inputs-b", 7) == []
        assert dbt_state.current_cutoffs(con, [D], "inputs-a", 90) == []
    assert plan.decay_half_life_days == 7
    assert (trained["decayed_revenue"] > 0).any()

    score_build(dbt_warehouse, [D], dbt_warehouse.home / "half1", decay_half_life_days=plan.decay_half_life_days)
    pd.testing.assert_frame_equal(features(dbt_warehouse), trained)
    score_build(dbt_warehouse, [D], dbt_warehouse.home / "half2")  # the default half-life, 90 days
    other = features(dbt_warehouse)
    assert not np.allclose(other["decayed_revenue"], trained["decayed_revenue"])
    pd.testing.assert_frame_equal(other.drop(columns="decayed_revenue"), trained.drop(columns="decayed_revenue"))

    # a row gone from one of the marts (a failed or sampled rebuild of D): the record no longer holds
    with warehouse.connect(dbt_warehouse.path) as con:
        assert dbt_state.current_cutoffs(con, [D], "inputs-a", 7) == [D]
        con.execute(f"delete from marts.customer_btyd_summary where cutoff_date = date '{D}' and user_id = "
                    f"(select min(user_id) from marts.customer_btyd_summary where cutoff_date = date '{D}')")
        assert dbt_state.current_cutoffs(con, [D], "inputs-a", 7) == []


def test_the_marts_data_tests_read_only_the_dates_being_built(dbt_warehouse, write_raw_tables):
    """Each build tests the rows it writes (macros/cutoffs.sql, get_where_subquery): a bad row
    at a date built earlier does not fail the next date's build, and a test of that date finds
    it. Before, every daily build re-tested every date ever scored."""
    write(dbt_warehouse, write_raw_tables)
    dbt_warehouse.build(dbt_vars([D], 30))
    earlier, later = "2024-03-29", "2024-03-30"
    score_build(dbt_warehouse, [earlier], dbt_warehouse.home / "only1")
    with warehouse.connect(dbt_warehouse.path) as con:  # a duplicate user at the earlier date
        con.execute(f"insert into marts.customer_features select * from marts.customer_features "
                    f"where cutoff_date = date '{earlier}' limit 1")

    score_build(dbt_warehouse, [later], dbt_warehouse.home / "only2")  # passes: reads only `later`
    assert days_in(dbt_warehouse, "intermediate.int_cutoffs_scoring") == [later]

    with warehouse.connect(dbt_warehouse.path) as con:
        table = dbt_state.request_cutoffs(con, [earlier])
    found = run_dbt(["test", "--select", "customer_features", "--exclude-resource-type", "unit_test"],
                    vars_for_scoring(table, 30), target_path=dbt_warehouse.home / "only3", check=False)
    assert found.returncode != 0
    failed = [line for line in found.stdout.splitlines() if "FAIL" in line and "customer_features" in line]
    assert any("unique_combination_customer_features_user_id__cutoff_date" in line for line in failed), found.stdout[-3000:]
