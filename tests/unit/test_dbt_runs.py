"""Each Dagster run's dbt target dir lives under LTV_HOME/dbt/runs; only the newest are kept."""

import os

from ltv_pipeline.lib.dbt_project import run_target


def test_run_target_keeps_the_newest_run_dirs_and_the_current_one(tmp_path):
    runs = tmp_path / "dbt" / "runs"
    for i in range(5):
        (runs / f"run{i}").mkdir(parents=True)
        (runs / f"run{i}" / "manifest.json").write_text("{}")
        os.utime(runs / f"run{i}", (1_000_000 + i, 1_000_000 + i))  # run0 oldest
    os.utime(runs / "run1", (2_000_000, 2_000_000))  # touched last: among the newest
    target = run_target(tmp_path, "run0", keep=2)
    assert target == runs / "run0"
    # run0 is the current run (kept whatever its age); of the others the two newest stay
    assert sorted(p.name for p in runs.iterdir()) == ["run0", "run1", "run4"]
    assert run_target(tmp_path, "new", keep=10) == runs / "new"
    assert sorted(p.name for p in runs.iterdir()) == ["run0", "run1", "run4"]
