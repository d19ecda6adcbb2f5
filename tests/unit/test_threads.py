"""LightGBM's threads follow the machine (or LTV_THREADS), and OpenMP's spin-wait is short
unless the user configured OpenMP (ltv_pipeline/__init__.py)."""

import json
import os
import subprocess
import sys

import pytest

from ltv_pipeline import settings
from ltv_pipeline.lib.errors import InputError


def _fresh(code: str, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "LTV_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_threads_default_to_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.delenv("LTV_THREADS", raising=False)
    assert settings.compute_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("LTV_THREADS", "3")
    assert settings.compute_threads() == 3


@pytest.mark.parametrize("bad", ["0", "two", "-1", "1.5"])
def test_bad_thread_count_is_an_input_error_naming_the_variable(monkeypatch, bad):
    monkeypatch.setenv("LTV_THREADS", bad)
    with pytest.raises(InputError, match="LTV_THREADS"):
        settings.compute_threads()


CODE = ("import json, os; from ltv_pipeline.lib import gbm; "
        "print(json.dumps({'spin': os.environ.get('GOMP_SPINCOUNT'), "
        "'threads': gbm.BASE_PARAMS['num_threads']}))")


def test_a_fresh_process_gets_a_short_spin_and_the_configured_threads():
    got = _fresh(CODE, LTV_THREADS="3")
    assert got == {"spin": "1000", "threads": 3}


@pytest.mark.parametrize("env, spin", [({"GOMP_SPINCOUNT": "50"}, "50"),
                                       ({"OMP_WAIT_POLICY": "ACTIVE"}, None)])
def test_the_users_own_openmp_settings_win(env, spin):
    assert _fresh(CODE, **env)["spin"] == spin
