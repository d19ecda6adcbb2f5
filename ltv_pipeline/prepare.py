"""Build-time preparation run by `make install`: parse the dbt project so that dagster-dbt
finds target/manifest.json at import time (PITFALLS.md: prepare_if_dev only runs under
`dagster dev`). Safe to run again; the CLI and tests call ensure_manifest() too."""

from __future__ import annotations

from ltv_pipeline.lib.dbt_project import ensure_manifest

if __name__ == "__main__":
    print(f"dbt manifest ready: {ensure_manifest(force=True)}")
