"""dbt's DuckDB connection has a memory limit (dbt_project/profiles.yml): without one DuckDB
takes up to 80% of the machine's RAM (a 30-date scoring backfill at 1M users peaked at 20.5 GB)."""

from ltv_pipeline.lib.dbt_project import run_dbt


def _limit_seen_by_dbt(target) -> str:
    return run_dbt(["show", "--inline", "select current_setting('memory_limit') as memory_limit",
                    "--output", "json", "--log-format", "text"], target_path=target).stdout


def test_dbt_runs_duckdb_with_the_default_or_the_configured_memory_limit(dbt_warehouse, monkeypatch):
    import duckdb

    with duckdb.connect() as ref:  # the default: half the machine's RAM, as DuckDB sizes it
        half = ref.execute("set memory_limit = '50%'; select current_setting('memory_limit')").fetchone()[0]
    monkeypatch.delenv("LTV_DUCKDB_MEMORY_LIMIT", raising=False)
    assert f'"memory_limit": "{half}"' in _limit_seen_by_dbt(dbt_warehouse.target)
    monkeypatch.setenv("LTV_DUCKDB_MEMORY_LIMIT", "2GB")
    assert '"memory_limit": "1.8 GiB"' in _limit_seen_by_dbt(dbt_warehouse.target)
