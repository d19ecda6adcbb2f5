"""Hostile values (quotes, semicolons, comment markers, path traversal, control characters) in
ids, dates, identifiers and paths are refused or stay data: they never become SQL."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from ltv_pipeline.cli import build_parser, main
from ltv_pipeline.lib import erasure, marts
from ltv_pipeline.lib.dbt_vars import dbt_vars

DROP = "x'; drop table raw.transactions; --"
HOSTILE_DATES = ["2025-01-01'; drop table raw.users; --", "2025-01-01 or 1=1", "../../etc/passwd", "' or ''='"]


def make_raw(path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw")
        con.execute("create table raw.transactions (user_id varchar, amount double)")
        con.execute("insert into raw.transactions values (?, 1), ('b', 2)", [DROP])
        con.execute('create table raw."odd""name; drop" (user_id varchar)')
        con.execute('insert into raw."odd""name; drop" values (?)', [DROP])


@pytest.mark.parametrize("text", HOSTILE_DATES)
def test_hostile_dates_are_refused_by_the_cli_and_the_sql_helpers(text, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["score", "--from", text, "--to", "2025-01-02"])
    assert exit_.value.code == 2 and "Traceback" not in capsys.readouterr().err
    with pytest.raises(ValueError):
        marts.in_list([text])
    with pytest.raises(ValueError):
        dbt_vars([text], 90)


def test_an_id_that_looks_like_sql_is_erased_as_data_and_drops_nothing(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    make_raw(db)
    removed = erasure.erase_warehouse(db, [DROP])
    assert removed == {"raw.transactions": {DROP: 1}, 'raw.odd"name; drop': {DROP: 1}}
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select user_id from raw.transactions").fetchall() == [("b",)]
    assert erasure.erase_warehouse(db, ["' or 1=1 --"]) == {}


def test_forget_cli_refuses_control_characters_and_keeps_tables_with_a_hostile_id(ltv_home, capsys):
    make_raw(ltv_home / "warehouse.duckdb")
    assert main(["forget", "a\nb; drop table raw.transactions"]) == 2
    assert "control characters" in capsys.readouterr().err
    assert main(["forget", "' or ''='"]) == 0
    with duckdb.connect(str(ltv_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.transactions").fetchone()[0] == 2


def test_score_user_with_a_path_as_id_exits_cleanly_without_a_model(ltv_home, capsys):
    assert main(["score-user", "../../etc/passwd"]) == 2
    err = capsys.readouterr().err
    assert "no champion" in err and "Traceback" not in err


def test_out_paths_are_resolved_and_must_name_a_table_file(tmp_path):
    parser = build_parser()
    base = ["predict", "--transactions", __file__, "--cutoff", "2025-01-01", "--horizon-days", "9"]
    args = parser.parse_args([*base, "--out", str(tmp_path / "a" / ".." / "x'; drop;.csv")])
    assert args.out == tmp_path / "x'; drop;.csv" and ".." not in args.out.parts
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([*base, "--out", str(tmp_path / "../../etc/passwd")])
    assert exit_.value.code == 2


def test_quarantined_ids_are_normalised_before_matching_the_erasure_list():
    from ltv_pipeline.lib.privacy import normalized_ids

    ids = pd.Series([" 12.0 ", "x'; --", None], dtype="string")
    assert normalized_ids(ids).tolist()[:2] == ["12", "x'; --"]
