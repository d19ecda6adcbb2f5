"""lib/files: the one atomic-write primitive and the writers built on it (files.write_json,
evaluation inputs.write_json, erasure's rewrite, the registry's counter and champion pointer)."""

import json
import os
import stat
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.defs.evaluation import inputs
from ltv_pipeline.lib import erasure, files, registry


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_bytes_atomic_writes_creates_parents_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "a" / "b" / "x.bin"
    assert files.write_bytes_atomic(target, b"\x00new") == target
    assert target.read_bytes() == b"\x00new"
    assert _mode(target) == 0o600
    files.write_bytes_atomic(target, b"again", mode=0o644)
    assert target.read_bytes() == b"again" and _mode(target) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="half way"):
        with files.replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("half way")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch):
    target = tmp_path / "x.json"
    target.write_text("old")

    def refuse(src, dst):
        raise OSError("rename refused")

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OSError, match="rename refused"):
        files.write_text_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_temporary_files_are_named_for_the_registry_clean_up(tmp_path: Path):
    seen: list[str] = []
    with files.replacing(tmp_path / ".last_version") as tmp:
        seen.append(tmp.name)
        tmp.write_text("1")
    # ModelRegistry.register removes base.glob(".tmp-*") left by a crashed writer.
    assert seen[0].startswith(f"{files.TMP_PREFIX}.last_version-") and seen[0].endswith(".tmp")
    assert (tmp_path / ".last_version").read_text() == "1"


def test_write_json_keeps_its_format(tmp_path: Path):
    path = files.write_json({"b": [1, 2.5], "a": {"z": "é"}}, tmp_path / "x.json")
    assert path.read_bytes() == b'{\n  "a": {\n    "z": "\\u00e9"\n  },\n  "b": [\n    1,\n    2.5\n  ]\n}'


def test_write_frame_writes_csv_and_parquet_readable_by_other_tools(tmp_path: Path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    csv = files.write_frame(frame, tmp_path / "out.csv")
    assert csv.read_text() == "a,b\n1,x\n2,y\n" and _mode(csv) == 0o644
    pq = files.write_frame(frame, tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(pq), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.parquet"]


def test_evaluation_write_json_stays_compact_and_jsonable(tmp_path: Path):
    path = tmp_path / "evaluation" / "backtest.json"
    inputs.write_json(path, {"b": np.float64(1.25), "a": [np.int64(3), date(2020, 1, 2)]})
    assert path.read_bytes() == b'{"b": 1.25, "a": [3, "2020-01-02"]}'


def test_erasure_rewrite_keeps_the_files_permissions(tmp_path: Path):
    path = tmp_path / "result.json"
    path.write_text("old")
    os.chmod(path, 0o640)
    erasure._atomic_text(json.dumps({"q": [1]}, indent=2), path)
    assert path.read_text() == '{\n  "q": [\n    1\n  ]\n}' and _mode(path) == 0o640


def test_registry_pointer_and_counter_go_through_the_primitive(tmp_path: Path, monkeypatch):
    written: list[str] = []
    real = files.write_bytes_atomic

    def spy(path, data, **kw):
        written.append(Path(path).name)
        assert kw.get("sync_dir") is True  # the registry fsyncs the directory after renaming
        return real(path, data, **kw)

    monkeypatch.setattr(files, "write_bytes_atomic", spy)
    reg = registry.ModelRegistry(tmp_path)
    mv = reg.register({"m": 1}, "gbm", "tweedie", {}, [], None, "fp", {})
    reg.set_champion(mv.name, mv.version, "test", {})
    assert written == [".last_version", registry.CHAMPION_FILE]
    assert (tmp_path / "tweedie" / ".last_version").read_text() == "1"
    assert json.loads((tmp_path / registry.CHAMPION_FILE).read_text())["ref"] == "tweedie/v1"
