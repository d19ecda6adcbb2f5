"""dbt tests: each module gets its own LTV_HOME and dbt target dir, fills raw tables
directly, runs `dbt build` as a subprocess and reads the marts back (connections are always
closed before dbt runs: DuckDB allows one writer process per file)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ltv_pipeline import settings
from ltv_pipeline.lib import warehouse
from ltv_pipeline.lib.dbt_project import run_dbt


class DbtWarehouse:
    def __init__(self, home: Path):
        self.home = home
        self.target = home / "dbt_target"

    @property
    def path(self) -> Path:
        return self.home / "warehouse.duckdb"

    def build(self, vars: Mapping[str, Any] | None, *extra: str, check: bool = True):
        # A target dir per LTV_HOME: partial parsing works between builds with the same
        # vars, and the repo's target/manifest.json (read by dagster-dbt) is left alone.
        return run_dbt(["build", *extra], vars=vars, target_path=self.target, check=check)

    def query(self, sql: str) -> pd.DataFrame:
        with warehouse.connect(self.path, read_only=True) as con:
            return con.execute(sql).df()


@pytest.fixture(scope="module")
def dbt_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtWarehouse]:
    home = tmp_path_factory.mktemp("ltv_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTV_HOME", str(home))
        mp.delenv("DAGSTER_HOME", raising=False)
        settings.ensure_home()
        yield DbtWarehouse(home)
