"""Model registry: versions, manifests, champion pointer and rollback, crash-safe and concurrent writes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib.registry import ModelRegistry, fingerprint_frame


def _register(reg: ModelRegistry, obj, name: str = "tweedie", **kw):
    args = {"family": "gbm", "params": {"learning_rate": 0.05}, "training_cutoffs": ["2024-01-31"],
            "feature_service": "ltv_model_v1", "data_fingerprint": "abc", "metrics": {"gini": 0.4}}
    return reg.register(obj, name=name, **{**args, **kw})


def test_versions_increase_and_load_latest_or_specific(tmp_path: Path):
    reg = ModelRegistry(tmp_path / "models")
    refs = [_register(reg, {"n": i}).ref for i in range(3)]
    assert refs == ["tweedie/v1", "tweedie/v2", "tweedie/v3"]
    assert _register(reg, {"n": 0}, name="l2").ref == "l2/v1"  # versions are per name
    assert reg.load("tweedie") == {"n": 2}
    assert reg.load("tweedie", 1) == {"n": 0}
    assert reg.load("tweedie", "v2") == {"n": 1}
    assert [v.version for v in reg.list_versions("tweedie")] == [1, 2, 3]
    assert reg.list_versions("unknown") == []
    assert reg.names() == ["l2", "tweedie"]
    with pytest.raises(LookupError, match="no version"):
        reg.load("tweedie", 9)
    with pytest.raises(LookupError, match="no model named"):
        reg.load("unknown")


def test_version_numbers_are_never_reused(tmp_path: Path):
    reg = ModelRegistry(tmp_path)
    for i in range(3):
        _register(reg, i)
    shutil.rmtree(tmp_path / "tweedie" / "v3")  # deleted by hand: "tweedie/v3" keeps its meaning
    assert _register(reg, "new").ref == "tweedie/v4"
    assert [v.version for v in reg.list_versions("tweedie")] == [1, 2, 4]


def test_manifest_records_what_was_registered(tmp_path: Path):
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, [1, 2, 3], params={"alpha": np.float64(0.9), "bad": float("nan")},
                   training_cutoffs=["2024-01-31", "2024-04-30"], metrics={"mae": np.float32(1.5)})
    on_disk = json.loads((tmp_path / "tweedie" / "v1" / "manifest.json").read_text())
    assert on_disk == mv.manifest
    assert on_disk["family"] == "gbm" and on_disk["feature_service"] == "ltv_model_v1"
    assert on_disk["training_cutoffs"] == ["2024-01-31", "2024-04-30"]
    assert on_disk["params"] == {"alpha": 0.9, "bad": None}  # strict JSON: NaN becomes null
    assert on_disk["metrics"] == {"mae": 1.5}
    assert on_disk["data_fingerprint"] == "abc" and on_disk["model_class"] == "builtins.list"
    assert len(on_disk["artifact_sha256"]) == 64 and on_disk["created_at"]
    assert (tmp_path / "tweedie" / "v1" / "model.pkl").is_file()


def test_load_refuses_a_damaged_artifact(tmp_path: Path):
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, {"weights": list(range(100))})
    (mv.path / "model.pkl").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="sha256"):
        reg.load("tweedie")


def test_invalid_names_are_refused(tmp_path: Path):
    reg = ModelRegistry(tmp_path)
    for bad in ("../escape", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="model name"):
            _register(reg, 1, name=bad)


def test_champion_set_and_rollback_keep_a_history(tmp_path: Path):
    reg = ModelRegistry(tmp_path)
    assert reg.champion() is None
    for _ in range(3):
        _register(reg, "m")
    _register(reg, "x", name="two_part")
    reg.set_champion("tweedie", 1, "first", {"gini": 0.3})
    reg.set_champion("tweedie", "v2", "better gini", {"gini": 0.35})
    reg.set_champion("two_part", 1, "beats tweedie", {"gini": 0.4})
    assert reg.champion().ref == "two_part/v1"
    assert reg.champion_record()["reason"] == "beats tweedie"

    back = reg.rollback("two_part drifts")
    assert back.ref == "tweedie/v2" and reg.champion().ref == "tweedie/v2"
    assert reg.rollback("again").ref == "tweedie/v1"  # a stack: no flip-flop between two
    with pytest.raises(LookupError, match="no earlier champion"):
        reg.rollback()

    history = reg.champion_history()
    assert [(h["action"], h["ref"]) for h in history] == [
        ("promote", "tweedie/v1"), ("promote", "tweedie/v2"), ("promote", "two_part/v1"),
        ("rollback", "tweedie/v2"), ("rollback", "tweedie/v1")]
    assert history[3]["previous"] == "two_part/v1" and history[3]["reason"] == "two_part drifts"
    assert history[3]["metrics"] == {"gini": 0.35}  # the restored champion's promotion metrics
    assert json.loads((tmp_path / "champion.json").read_text())["ref"] == "tweedie/v1"
    with pytest.raises(LookupError):
        reg.set_champion("tweedie", 7, "no such version", {})


def test_rollback_without_champion_fails(tmp_path: Path):
    with pytest.raises(LookupError, match="no champion yet"):
        ModelRegistry(tmp_path).rollback()


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def test_failed_registration_leaves_no_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    reg = ModelRegistry(tmp_path)
    _register(reg, "ok")
    with pytest.raises(TypeError):
        _register(reg, _Unpicklable())
    # A failure after the artifact is written (disk full while writing the manifest).
    import ltv_pipeline.lib.registry as registry_module

    real = registry_module._write_file

    def failing(path, data):
        if path.name == "manifest.json":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(registry_module, "_write_file", failing)
    with pytest.raises(OSError, match="No space"):
        _register(reg, "half")
    assert [v.ref for v in reg.list_versions("tweedie")] == ["tweedie/v1"]
    assert sorted(p.name for p in (tmp_path / "tweedie").iterdir()) == [".last_version", ".lock", "v1"]


def test_crash_mid_write_leaves_no_partial_version(tmp_path: Path):
    # The writer process dies (os._exit: no cleanup) after writing its files, before the rename.
    script = textwrap.dedent(f"""
        import os
        from ltv_pipeline.lib import registry
        def crash(src, dst):
            os._exit(3)
        registry.os.replace = crash
        registry.ModelRegistry({str(tmp_path)!r}).register(
            {{"big": list(range(1000))}}, "gbm", "tweedie", {{}}, [], None, "fp", {{}})
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    stray = list((tmp_path / "tweedie").glob(".tmp-*"))
    assert stray and (stray[0] / "model.pkl").is_file()  # the crash really left files behind
    reg = ModelRegistry(tmp_path)
    assert reg.list_versions("tweedie") == []
    with pytest.raises(LookupError):
        reg.load("tweedie")
    assert _register(reg, "next").ref == "tweedie/v1"
    assert not list((tmp_path / "tweedie").glob(".tmp-*"))  # cleaned under the lock


def _register_many(root: str, worker: int, n: int) -> list[str]:
    reg = ModelRegistry(root)
    return [reg.register({"worker": worker, "i": i}, "gbm", "tweedie", {}, [], None, "fp",
                         {}).ref for i in range(n)]


def test_concurrent_registration_gives_distinct_versions(tmp_path: Path):
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_register_many, str(tmp_path), w, 15) for w in range(2)]
        refs = [r for f in futures for r in f.result()]
    assert sorted(refs) == sorted(f"tweedie/v{i}" for i in range(1, 31))
    reg = ModelRegistry(tmp_path)
    loaded = [reg.load("tweedie", v.version) for v in reg.list_versions("tweedie")]
    assert sorted((m["worker"], m["i"]) for m in loaded) == [(w, i) for w in range(2) for i in range(15)]


def test_fingerprint_is_stable_and_content_sensitive():
    df = pd.DataFrame({"user_id": ["a", "b", "c"], "value": [1.0, 0.0, 2.5],
                       "cutoff_date": pd.to_datetime(["2024-01-31"] * 3)})
    fp = fingerprint_frame(df)
    assert fp == fingerprint_frame(df.copy()) == fingerprint_frame(df.set_axis([7, 8, 9]))
    assert len(fp) == 64
    assert fingerprint_frame(df.assign(value=[1.0, 0.0, 2.6])) != fp
    assert fingerprint_frame(df.rename(columns={"value": "v"})) != fp
    assert fingerprint_frame(df.astype({"value": "float32"})) != fp
    assert fingerprint_frame(df.iloc[::-1]) != fp  # row order is part of the content
