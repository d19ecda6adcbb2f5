"""Heavy libraries imported on first use (no Dagster imports).

Loading the Dagster definitions imports every asset module; importing feast and
great_expectations eagerly cost about 7.5 s of the 15 s that took (python -X importtime), paid
by every `ltv` command, every run worker and every test process. Modules that need them only
inside functions bind a LazyModule instead: `gx = lazy("great_expectations")` and the first
attribute access (gx.ExpectationSuite) imports the module; `load(gx)` imports it without
touching an attribute (to run its on_import hook first) and returns the real module.
`prefetch(...)` imports some in a background thread, for a step that waits on a subprocess
(dbt) before the code that needs them runs.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any


class LazyModule:
    """A module imported on the first attribute access; `on_import(module)` runs once then."""

    def __init__(self, name: str, on_import: Callable[[ModuleType], None] | None = None) -> None:
        self._name = name
        self._on_import = on_import
        self._module: ModuleType | None = None
        self._lock = threading.Lock()  # prefetch may load it in another thread

    def _load(self) -> ModuleType:
        if self._module is None:
            with self._lock:
                if self._module is None:
                    module = importlib.import_module(self._name)
                    if self._on_import is not None:
                        self._on_import(module)
                    self._module = module
        return self._module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy(name: str, on_import: Callable[[ModuleType], None] | None = None) -> Any:
    """The module `name`, imported when first used (typed Any: attributes are the module's)."""
    return LazyModule(name, on_import)


def load(module: Any) -> ModuleType:
    """The real module behind a lazy() proxy, imported now (its on_import hook runs once);
    a module that is already real is returned as it is."""
    if isinstance(module, LazyModule):
        return module._load()
    if isinstance(module, ModuleType):
        return module
    raise TypeError(f"lazy.load expects a module or a lazy() proxy, got {type(module).__name__}")


def prefetch(*modules: Any) -> threading.Thread:
    """Import `modules` (lazy() proxies or module names) in a daemon thread and return it. The
    imports hold the GIL but not the caller while it waits on a subprocess: a scoring step
    imports Great Expectations, lifetimes and matplotlib while dbt builds its dates. A module
    that fails to import here is left alone: its first real use raises the error."""
    def run() -> None:
        for module in modules:
            try:
                load(module) if isinstance(module, LazyModule) else importlib.import_module(module)
            except Exception:  # noqa: BLE001 - the real use reports it
                pass

    thread = threading.Thread(target=run, name="ltv-prefetch", daemon=True)
    thread.start()
    return thread
