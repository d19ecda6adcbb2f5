"""Resources shared by every domain."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from ltv_pipeline.lib import warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file under LTV_HOME. Open connections in a with-block only: an open
    connection makes the dbt subprocess fail to lock the file."""

    ltv_home: str = Field(description="LTV_HOME; the warehouse is LTV_HOME/warehouse.duckdb")

    @property
    def path(self) -> Path:
        return Path(self.ltv_home) / "warehouse.duckdb"

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(self.path, read_only=read_only) as con:
            yield con


def shared_resources() -> dict[str, object]:
    return {"warehouse_db": WarehouseResource(ltv_home=dg.EnvVar("LTV_HOME"))}
