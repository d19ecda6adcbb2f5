"""`ltv ui` serves the Dagster UI on loopback and stops with all its children."""

from __future__ import annotations

import socket

from ui_helpers import free_port, graphql, start_ui, stop_ui, wait_until_up


def test_ui_lists_assets_on_loopback_and_stops_cleanly(tmp_path):
    port = free_port()
    proc = start_ui(tmp_path / "home", port, tmp_path / "ui.log")
    leftovers = None
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
        leftovers = stop_ui(proc, port)  # SIGINT, what Ctrl-C does: ltv stops dagster's group
    assert leftovers == "", f"processes left behind: {leftovers}"
