"""Argument checks that need the data: `ltv demo --as-of` before the first transaction exits
2 with a message naming the option, the date and the data's first date, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LTV = str(Path(sys.executable).parent / "ltv")


def test_demo_as_of_before_the_data_exits_2_naming_the_dates(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | {"LTV_HOME": str(tmp_path / "home")}
    proc = subprocess.run([LTV, "demo", "--as-of", "1996-12-31"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("ltv demo: ")]
    # CDNOW runs from 1997-01-01 to 1998-06-30
    assert "--as-of" in line and "1996-12-31" in line and "1997-01-01" in line, line
    assert "Traceback" not in proc.stderr and "Stack Trace" not in proc.stderr
    assert proc.stdout == ""
