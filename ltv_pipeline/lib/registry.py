"""A file-based model registry: the one place that knows where models live on disk.

Layout under root (the caller passes LTV_HOME/models):
    <name>/v<N>/model.pkl        the pickled model object
    <name>/v<N>/manifest.json    family, params, training cutoffs, feature service, data
                                 fingerprint, metrics, artifact sha256, created_at
    <name>/.lock                 fcntl lock serializing registrations of <name>
    <name>/.last_version         the highest version ever issued: numbers are never reused,
                                 even if a version directory is deleted by hand
    champion.json                the champion pointer, with the stack of earlier champions
    champion_history.jsonl       one line per promotion or rollback
Versions increase per name (v1, v2, ...). A version is written into a temporary directory and
renamed into place with os.replace under the name's lock, so a crash leaves a stray .tmp-*
directory (never listed, removed by the next registration) and never a half-written version.
Callers ask the registry for "latest" or the champion; nothing else looks for the newest file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ltv_pipeline.lib import files
from ltv_pipeline.lib.files import fsync_dir as _fsync_dir
from ltv_pipeline.lib.jsonable import to_jsonable

MODEL_FILE, MANIFEST_FILE = "model.pkl", "manifest.json"
CHAMPION_FILE, HISTORY_FILE = "champion.json", "champion_history.jsonl"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_VERSION_DIR = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: name, version number, its directory and manifest."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}/v{self.version}"

    @property
    def family(self) -> str:
        return self.manifest["family"]

    def load(self) -> Any:
        """Unpickle the artifact after checking it against the manifest's sha256."""
        data = (self.path / MODEL_FILE).read_bytes()
        if hashlib.sha256(data).hexdigest() != self.manifest["artifact_sha256"]:
            raise ValueError(f"model artifact {self.path / MODEL_FILE} does not match the sha256 in its "
                             "manifest: the file was changed or damaged after registration")
        return pickle.loads(data)


def fingerprint_frame(df: pd.DataFrame) -> str:
    """sha256 of a frame's column names, dtypes and row contents in order (index ignored)."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(np.ascontiguousarray(pd.util.hash_pandas_object(df, index=False).to_numpy()).tobytes())
    return h.hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    # Its temporary file is .tmp-<name>-*: register's clean-up of .tmp-* removes a crash's.
    files.write_bytes_atomic(path, data, sync_dir=True)


class ModelRegistry:
    """Versioned models by name, and one champion pointer with its history."""

    fingerprint_frame = staticmethod(fingerprint_frame)

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _lock(self, lock_path: Path) -> Iterator[None]:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _dir(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"model name {name!r} must be letters, digits, '_', '.' or '-' "
                             "and not start with '.' or '-'")
        return self.root / name

    def register(self, model_obj: Any, family: str, name: str, params: dict[str, Any],
                 training_cutoffs: list[str], feature_service: str | None,
                 data_fingerprint: str, metrics: dict[str, Any]) -> ModelVersion:
        """Store model_obj as the next version of name; returns it (e.g. ref "tweedie/v3")."""
        base = self._dir(name)
        data = pickle.dumps(model_obj, protocol=pickle.HIGHEST_PROTOCOL)  # fails before any write
        with self._lock(base / ".lock"):
            for stale in base.glob(".tmp-*"):  # left by a crashed writer: we hold the lock
                if stale.is_dir():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
            counter = base / ".last_version"
            last = int(counter.read_text()) if counter.is_file() else 0
            version = max([last, *(v.version for v in self.list_versions(name))]) + 1
            manifest = to_jsonable({
                "name": name, "version": version, "ref": f"{name}/v{version}", "family": family,
                "params": params, "training_cutoffs": list(training_cutoffs),
                "feature_service": feature_service, "data_fingerprint": data_fingerprint,
                "metrics": metrics, "artifact": MODEL_FILE,
                "artifact_sha256": hashlib.sha256(data).hexdigest(), "artifact_bytes": len(data),
                "model_class": f"{type(model_obj).__module__}.{type(model_obj).__qualname__}",
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            })
            tmp = base / f".tmp-v{version}-{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                _write_file(tmp / MODEL_FILE, data)
                _write_file(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2).encode())
                _fsync_dir(tmp)
                os.replace(tmp, base / f"v{version}")
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _fsync_dir(base)
            _atomic_write(counter, str(version).encode())
        return ModelVersion(name, version, base / f"v{version}", manifest)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Complete versions of name, oldest first ([] for an unknown name)."""
        base, out = self._dir(name), []
        for p in base.iterdir() if base.is_dir() else []:
            m = _VERSION_DIR.match(p.name)
            if m and (p / MANIFEST_FILE).is_file():
                out.append(ModelVersion(name, int(m.group(1)), p,
                                        json.loads((p / MANIFEST_FILE).read_text())))
        return sorted(out, key=lambda v: v.version)

    def version(self, name: str, version: int | str | None = None) -> ModelVersion:
        """A version's metadata: the latest when version is None; accepts 3, "3" or "v3"."""
        versions = self.list_versions(name)
        if not versions:
            raise LookupError(f"no model named {name!r} in the registry at {self.root}; "
                              f"registered: {self.names()}")
        if version is None:
            return versions[-1]
        n = int(str(version).removeprefix(f"{name}/").removeprefix("v"))
        for v in versions:
            if v.version == n:
                return v
        raise LookupError(f"{name!r} has no version {version!r}; it has "
                          f"{[f'v{v.version}' for v in versions]}")

    def load(self, name: str, version: int | str | None = None) -> Any:
        """The model object of name at version (the latest when None)."""
        return self.version(name, version).load()

    # The champion: a pointer file whose "stack" holds the earlier champions for rollback.
    def _pointer(self) -> dict[str, Any] | None:
        path = self.root / CHAMPION_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def _move_champion(self, entry: dict[str, Any], stack: list[dict[str, Any]]) -> None:
        entry = to_jsonable({**entry, "at": datetime.now(UTC).isoformat(timespec="seconds")})
        _atomic_write(self.root / CHAMPION_FILE,
                      json.dumps({**entry, "stack": stack}, indent=2).encode())
        with open(self.root / HISTORY_FILE, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def set_champion(self, name: str, version: int | str, reason: str,
                     metrics: dict[str, Any]) -> ModelVersion:
        """Make name/version the champion (it must exist) and log why."""
        mv = self.version(name, version)
        with self._lock(self.root / ".champion.lock"):
            old = self._pointer()
            stack = [*(old["stack"] if old else []),
                     {"name": mv.name, "version": mv.version, "metrics": metrics}]
            self._move_champion({"action": "promote", "name": mv.name, "version": mv.version,
                                 "ref": mv.ref, "previous": old["ref"] if old else None,
                                 "reason": reason, "metrics": metrics}, stack)
        return mv

    def champion(self) -> ModelVersion | None:
        """The current champion's version (None before any promotion)."""
        ptr = self._pointer()
        return self.version(ptr["name"], ptr["version"]) if ptr else None

    def champion_record(self) -> dict[str, Any] | None:
        """The pointer itself: ref, reason, metrics, when, and the stack of champions."""
        return self._pointer()

    def champion_history(self) -> list[dict[str, Any]]:
        path = self.root / HISTORY_FILE
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
            if path.is_file() else []

    def rollback(self, reason: str = "rollback") -> ModelVersion:
        """Move the pointer back to the champion before the current one and log it."""
        with self._lock(self.root / ".champion.lock"):
            old = self._pointer()
            if not old or len(old["stack"]) < 2:
                raise LookupError("no earlier champion to roll back to: "
                                  f"{'no champion yet' if not old else 'only ' + old['ref']}")
            stack = old["stack"][:-1]
            mv = self.version(stack[-1]["name"], stack[-1]["version"])
            self._move_champion({"action": "rollback", "name": mv.name, "version": mv.version,
                                 "ref": mv.ref, "previous": old["ref"], "reason": reason,
                                 "metrics": stack[-1]["metrics"]}, stack)
        return mv
