"""Shared fixtures: every test that writes gets its own LTV_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def ltv_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty LTV_HOME (and DAGSTER_HOME inside it) for one test."""
    home = tmp_path / "ltv_home"
    monkeypatch.setenv("LTV_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    from ltv_pipeline import settings

    settings.ensure_home()
    return home
