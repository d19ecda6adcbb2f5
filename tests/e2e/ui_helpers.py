"""Helpers of the UI e2e tests: start `ltv ui` on a free loopback port in its own process
group, wait for it and its code location, query its GraphQL API, stop the whole group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

LTV = str(Path(sys.executable).parent / "ltv")
LOCATION = "ltv_pipeline"  # workspace.yaml's location_name
REPO_PATH = f"__repository__@{LOCATION}"  # a Definitions object is the repository __repository__


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
    with urllib.request.urlopen(req, timeout=30) as resp:
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


LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def wait_for_location(port: int, proc: subprocess.Popen, seconds: int = 300) -> None:
    """Until the code location has loaded (the server answers before it has): fail with the
    load error when the definitions do not import."""
    deadline = time.time() + seconds
    entries: list = []
    while time.time() < deadline:
        assert proc.poll() is None, "ltv ui exited early"
        entries = graphql(port, LOCATION_STATUS)["data"]["workspaceOrError"]["locationEntries"]
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry and entry["loadStatus"] == "LOADED":
            loaded = entry["locationOrLoadError"] or {}
            assert loaded.get("__typename") == "RepositoryLocation", f"location failed to load: {loaded}"
            return
        time.sleep(2)
    raise AssertionError(f"code location {LOCATION} not loaded after {seconds} s: {entries}")


def start_ui(home: Path, port: int, log: Path | None = None) -> subprocess.Popen:
    """`ltv ui --port PORT` on LTV_HOME=home, in its own session; `ltv ui` puts dagster dev in
    a process group of its own and stops that group on SIGINT. Output goes to `log` (a pipe
    nobody reads would fill up and stall the server)."""
    env = {**os.environ, "LTV_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    try:
        return subprocess.Popen([LTV, "ui", "--port", str(port)], env=env, start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                                text=True)
    finally:
        if log:
            out.close()


def stop_ui(proc: subprocess.Popen, port: int) -> str:
    """SIGINT to `ltv ui` (what Ctrl-C does: it stops dagster's process group), SIGKILL to its
    own group if it does not exit; then the process groups of anything still serving this port
    (dagster dev and its children, started by this test). Returns what was left behind after
    the SIGINT, "" when nothing was."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGINT)
    try:  # ltv ui gives dagster dev 30 s to stop, then kills it: allow for a loaded machine
        proc.wait(timeout=150)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    time.sleep(1)
    leftovers = _serving(port)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            group = os.getpgid(pid)
            if group != os.getpgid(0):  # never the test runner's own group
                os.killpg(group, signal.SIGKILL)
    return "\n".join(f"{pid} {cmd}" for pid, cmd in leftovers.items())


def _serving(port: int) -> dict[int, str]:
    found = subprocess.run(["pgrep", "-af", f"dagster.* -p {port}( |$)"], capture_output=True, text=True)
    rows = (line.split(" ", 1) for line in found.stdout.splitlines() if line.strip())
    return {int(pid): cmd for pid, cmd in rows}


@contextlib.contextmanager
def running_ui(home: Path, log: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """The UI on a free port with its code location loaded; stopped (whole group) on exit."""
    port = free_port()
    proc = start_ui(home, port, log)
    try:
        wait_until_up(port, proc)
        wait_for_location(port, proc)
        yield port, proc
    finally:
        stop_ui(proc, port)
