"""Shared fixtures: every test that writes gets its own LTV_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def ltv_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty LTV_HOME (and DAGSTER_HOME inside it) for one test."""
    home = tmp_path / "ltv_home"
    monkeypatch.setenv("LTV_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("LTV_BASE_CURRENCY", raising=False)
    from ltv_pipeline import settings

    settings.ensure_home()
    return home


def _write_raw_tables(warehouse_path: Path, **frames) -> None:
    """Replace raw.<table> with each given DataFrame (transactions=, users=, events=,
    fx_rates=), filling missing contract columns with nulls and the lineage columns; the
    connection is closed on return, so dbt can lock the file."""
    import pandas as pd

    from ltv_pipeline.lib import warehouse
    from ltv_pipeline.lib.schema import CONTRACTS

    with warehouse.connect(warehouse_path) as con:
        warehouse.ensure_schemas(con)
        for table, frame in frames.items():
            cols = [*CONTRACTS[table].columns, *warehouse.LINEAGE_COLUMNS]
            df = pd.DataFrame(frame).copy()
            df["_batch_id"] = df.get("_batch_id", "test-batch")
            df["_row"] = range(1, len(df) + 1)
            for c in cols:
                if c not in df.columns:
                    df[c] = None
            con.execute(f"delete from raw.{table}")
            con.register("_incoming", df[cols])
            con.execute(f"insert into raw.{table} by name select * from _incoming")
            con.unregister("_incoming")


@pytest.fixture(scope="session")
def write_raw_tables():
    """write_raw_tables(warehouse_path, transactions=df, users=df, ...): fill raw tables
    directly (for dbt and transform tests that do not run the ingest asset)."""
    return _write_raw_tables
