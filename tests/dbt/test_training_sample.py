"""The training sample (dbt's int_training_users, var train_max_users): training cutoffs and
backtest origins are built for at most that many users, chosen by the md5 of the user id; the
scoring date covers everyone; features, labels and BTYD summaries of a cutoff cover the same
customers. Same hand-made log as test_marts_on_fixture.py."""

import hashlib

from test_marts_on_fixture import D, write

from ltv_pipeline.lib.dbt_vars import dbt_vars

D0 = "2024-02-29"  # u1 (signup), u2 and u5 (first purchases 2024-02-01) are known by then
ALL_USERS = ["u1", "u2", "u3", "u4", "u5", "u6"]  # transactions, users table, events


def users_at(wh, table: str, day: str) -> set[str]:
    return set(wh.query(f"select user_id from marts.{table} where cutoff_date = date '{day}'")["user_id"])


def build(wh, cap: int) -> None:
    wh.build(dbt_vars([D0], 30, scoring_date=D, train_cutoffs=[D0], train_max_users=cap))


def test_training_cutoffs_hold_the_md5_sample_and_the_scoring_date_everyone(dbt_warehouse, write_raw_tables):
    write(dbt_warehouse, write_raw_tables)
    build(dbt_warehouse, 1000)  # cap above the users: everyone, as without a cap
    everyone_d0 = users_at(dbt_warehouse, "customer_features", D0)
    everyone_d = users_at(dbt_warehouse, "customer_features", D)
    assert everyone_d0 == {"u1", "u2", "u5"}
    assert set(dbt_warehouse.query("select user_id from intermediate.int_training_users")["user_id"]) == set(ALL_USERS)

    build(dbt_warehouse, 3)
    sample = set(sorted(ALL_USERS, key=lambda u: hashlib.md5(u.encode()).hexdigest())[:3])
    assert set(dbt_warehouse.query("select user_id from intermediate.int_training_users")["user_id"]) == sample
    assert users_at(dbt_warehouse, "customer_features", D0) == everyone_d0 & sample
    assert users_at(dbt_warehouse, "customer_labels", D0) == everyone_d0 & sample
    assert users_at(dbt_warehouse, "customer_btyd_summary", D0) <= sample
    assert users_at(dbt_warehouse, "customer_features", D) == everyone_d  # the scoring date
    assert everyone_d0 & sample != everyone_d0  # the cap did drop someone known at D0
