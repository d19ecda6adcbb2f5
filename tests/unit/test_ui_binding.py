"""`ltv ui` binds the Dagster UI to 127.0.0.1 unless another address is asked for explicitly.
(tests/e2e/test_ui.py serves it for real; on hosts whose name resolves to 127.0.0.1 its
other-address probe cannot tell, so the address handed to `dagster dev` is checked here.)"""

from __future__ import annotations

import pytest

from ltv_pipeline import commands_local
from ltv_pipeline.cli import build_parser


class FakeProc:
    pid = -1

    def wait(self, timeout=None):
        return 0


@pytest.mark.parametrize("extra, host", [([], "127.0.0.1"), (["--host", "0.0.0.0"], "0.0.0.0")])
def test_ui_hands_dagster_dev_loopback_by_default(extra, host, ltv_home, monkeypatch):
    seen = []
    monkeypatch.setattr(commands_local.subprocess, "Popen", lambda cmd, **kw: seen.append(cmd) or FakeProc())
    monkeypatch.setattr(commands_local.signal, "signal", lambda *a: None)
    assert commands_local.ui(build_parser().parse_args(["ui", *extra])) == 0
    cmd = seen[0]
    assert cmd[cmd.index("-h") + 1] == host
