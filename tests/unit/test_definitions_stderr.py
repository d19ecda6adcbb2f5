"""Loading the Dagster definitions (what every `ltv` command does) writes nothing to stderr,
where `ltv` writes its progress: no BetaWarning for the backfill policy the daily assets use."""

from __future__ import annotations

import subprocess
import sys


def test_loading_the_definitions_prints_no_warnings():
    done = subprocess.run([sys.executable, "-c", "import ltv_pipeline.definitions"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
