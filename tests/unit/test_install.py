"""`make install` leaves the venv's libraries compiled to bytecode: uv installs no .pyc files by
default, and where PYTHONDONTWRITEBYTECODE is set (as on CI's machine) every process would
compile each module it imports again (the definitions load ~2x slower, dbt's start ~1.8x)."""

import importlib.util
import os

import pytest


@pytest.mark.parametrize("module", ["dagster", "dbt.cli.main", "pandas.core.frame", "lifetimes"])
def test_installed_libraries_have_current_bytecode(module):
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin and spec.cached
    assert os.path.exists(spec.cached), f"{module} has no bytecode at {spec.cached}"
    with open(spec.cached, "rb") as f:
        header = f.read(16)
    source = os.stat(spec.origin)
    # the header Python checks before using the file: magic, flags, source mtime and size
    assert header[:4] == importlib.util.MAGIC_NUMBER
    flags = int.from_bytes(header[4:8], "little")
    if flags == 0:  # timestamp-based (the default of uv and compileall)
        assert int.from_bytes(header[8:12], "little") == int(source.st_mtime) & 0xFFFFFFFF
        assert int.from_bytes(header[12:16], "little") == source.st_size & 0xFFFFFFFF
