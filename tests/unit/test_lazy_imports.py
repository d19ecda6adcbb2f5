"""Loading the Dagster definitions does not import the heavy libraries only assets use
(lib/lazy.py): every `ltv` command, run worker and test process pays for what it imports."""

import subprocess
import sys

import pytest

from ltv_pipeline.lib.lazy import lazy, load

HEAVY = ("feast", "great_expectations", "matplotlib")


def test_definitions_load_without_feast_gx_or_matplotlib():
    code = ("import sys, ltv_pipeline.definitions as d; "
            "assert len(d.defs.resolve_asset_graph().get_all_asset_keys()) > 10; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_module_imports_on_first_attribute_and_runs_hook_once():
    calls = []
    mod = lazy("json", calls.append)
    assert calls == []
    assert mod.dumps({"a": 1}) == '{"a": 1}'
    assert mod.loads("[2]") == [2]
    import json

    assert calls == [json]


def test_lazy_module_hook_runs_before_first_use():
    seen = []
    mod = lazy("textwrap", lambda m: seen.append(m.dedent("  x")))
    assert mod.indent("y", "> ") == "> y"
    assert seen == ["x"]


def test_load_returns_the_real_module_and_runs_the_hook_once():
    import json

    calls = []
    mod = lazy("json", calls.append)
    assert load(mod) is json and calls == [json]
    assert load(mod) is json and calls == [json]
    assert load(json) is json  # an already real module passes through
    with pytest.raises(TypeError, match="module or a lazy"):
        load("json")
