"""Resources shared by every domain."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from ltv_pipeline.lib import marts, warehouse
from ltv_pipeline.lib.registry import ModelRegistry


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

    def training_plan(self) -> marts.BuiltPlan | None:
        """The plan of the last training build (intermediate.int_cutoffs_planned), None before
        the first one."""
        with self.connect(read_only=True) as con:
            try:
                return marts.read_plan(con)
            except Exception:  # no training build yet
                return None


class ModelRegistryResource(dg.ConfigurableResource):
    """The model registry under LTV_HOME/models: models move between assets through it."""

    ltv_home: str = Field(description="LTV_HOME; the registry is LTV_HOME/models")

    def get(self) -> ModelRegistry:
        return ModelRegistry(Path(self.ltv_home) / "models")


def shared_resources() -> dict[str, object]:
    home = dg.EnvVar("LTV_HOME")
    return {
        "warehouse_db": WarehouseResource(ltv_home=home),
        "model_registry": ModelRegistryResource(ltv_home=home),
    }
