"""A trained home shared by the privacy and concurrency e2e tests: built ONCE per session
(`ltv demo` on a 1,500-user synthetic log as of 2025-06-30, horizon 90: the full pipeline, the
scoring partition of that date and its online store), copied for each module that changes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from privacy_e2e import AS_OF, ltv


@pytest.fixture(scope="session")
def trained_home_template(tmp_path_factory) -> Path:
    from ltv_pipeline.lib import generator

    source = tmp_path_factory.mktemp("privacy_log")
    generator.write(generator.generate(n_users=1500, seed=5), source)
    home = tmp_path_factory.mktemp("trained_template") / "home"
    ltv(home, "demo", "--source", str(source), "--as-of", AS_OF, "--horizon-days", "90", check=True)
    (home / "source").symlink_to(source)  # where its data came from, for reload tests
    return home


@pytest.fixture(scope="module")
def trained_home(trained_home_template, tmp_path_factory) -> Path:
    """A module's own copy of the trained home (LTV_HOME paths are resolved at run time)."""
    home = tmp_path_factory.mktemp("trained") / "home"
    shutil.copytree(trained_home_template, home, symlinks=True)
    return home
