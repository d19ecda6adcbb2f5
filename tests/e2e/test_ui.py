"""`ltv ui` serves the Dagster UI on loopback and stops with all its children."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LTV = str(Path(sys.executable).parent / "ltv")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait_until_up(port: int, proc: subprocess.Popen, seconds: int = 180) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, "ltv ui exited early"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"UI not up on port {port} after {seconds} s")


def test_ui_lists_assets_on_loopback_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {**os.environ, "LTV_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    proc = subprocess.Popen([LTV, "ui", "--port", str(port)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(port, proc)
        nodes = graphql(port, "{ assetNodes { assetKey { path } groupName } }")["data"]["assetNodes"]
        ingest = {n["assetKey"]["path"][0] for n in nodes if n["groupName"] == "ingest"}
        assert ingest == {"raw_transactions", "raw_users", "raw_events", "fx_rates"}
        # bound to loopback only: the port is not served on another local address
        with socket.socket() as s:
            s.settimeout(1)
            other = socket.gethostbyname(socket.gethostname())
            if not other.startswith("127."):
                assert s.connect_ex((other, port)) != 0
    finally:
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C does: ltv stops dagster's process group
        proc.wait(timeout=60)
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-af", f"dagster.* -p {port}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"processes left behind: {leftovers.stdout}"
