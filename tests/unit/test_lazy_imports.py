"""Loading the Dagster definitions does not import the heavy libraries only assets use
(lib/lazy.py): every `ltv` command, run worker and test process pays for what it imports."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib.lazy import lazy, load

HEAVY = ("feast", "great_expectations", "matplotlib", "lifetimes", "lightgbm")


def test_definitions_load_without_feast_gx_matplotlib_lifetimes_or_lightgbm():
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


def test_btyd_fits_pickled_here_load_where_lifetimes_was_never_imported(tmp_path):
    # lib/btyd imports lifetimes on the first fit; a registry's pickled fit names its fitter
    # class by import path (lifetimes' own, or lib/btyd_pareto's), so loading it imports that.
    from ltv_pipeline.lib import btyd

    rng = np.random.default_rng(0)
    t = rng.integers(30, 365, 400).astype(float)
    f = rng.poisson(t / 120).astype(float)
    r = np.where(f > 0, np.floor(t * rng.uniform(0.2, 1.0, 400)), 0.0)
    summary = pd.DataFrame({"user_id": [f"u{i}" for i in range(400)], "frequency": f,
                            "recency": r, "T": t, "monetary_value": np.where(f > 0, 20.0 + f, 0.0)})
    fits = {m: btyd.fit_btyd(summary, m) for m in ("bgnbd", "pareto")}
    assert not any(fit.fallback for fit in fits.values())
    spend = btyd.fit_gamma_gamma(summary)
    expected = {m: btyd.predict(fit, spend, summary, 90)["predicted_value"].to_numpy()
                for m, fit in fits.items()}
    (tmp_path / "fits.pkl").write_bytes(pickle.dumps((fits, spend, summary)))
    code = (f"import json, pickle, sys; from ltv_pipeline.lib import btyd; "
            f"assert 'lifetimes' not in sys.modules; "
            f"fits, spend, s = pickle.loads(open({str(tmp_path / 'fits.pkl')!r}, 'rb').read()); "
            f"print(json.dumps({{m: btyd.predict(f, spend, s, 90)['predicted_value'].tolist() "
            f"for m, f in fits.items()}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert sorted(got) == ["bgnbd", "pareto"]
    for m, values in got.items():
        np.testing.assert_allclose(values, expected[m], rtol=1e-12)
        assert np.asarray(values).sum() > 0


def test_prefetch_imports_in_a_thread_runs_hooks_once_and_ignores_failures():
    # a fresh interpreter: the modules must not be imported before the prefetch
    code = ("import sys, threading; from ltv_pipeline.lib.lazy import lazy, load, prefetch; "
            "calls = []; mod = lazy('email.mime.text', calls.append); "
            "assert 'email.mime.text' not in sys.modules and 'csv' not in sys.modules; "
            "t = prefetch(mod, 'csv', 'no_such_module_ltv'); "
            "racers = [threading.Thread(target=load, args=(mod,)) for _ in range(4)]; "
            "[r.start() for r in racers]; t.join(30); [r.join(30) for r in racers]; "
            "assert not t.is_alive() and t.daemon; "
            "print(len(calls), 'email.mime.text' in sys.modules, 'csv' in sys.modules, "
            "load(mod) is sys.modules['email.mime.text'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "True", "True", "True"]
