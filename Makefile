# README's two commands, `make demo` and `make test`, do all the setup on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LTV    := $(VENV)/bin/ltv
UV_VERSION := 0.13.9
export LTV_HOME ?= $(CURDIR)/.ltv

.PHONY: install demo test test-fast ui bench clean lock

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	$(PY) -m ltv_pipeline.prepare
	touch $@

demo: install
	$(LTV) demo

test: install
	$(PY) -m pytest -q

ui: install
	$(LTV) ui

bench: install
	$(PY) -m bench.run

# Re-pin every transitive version after editing pyproject.toml's dependencies.
lock:
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .ltv dbt_project/target dbt_project/logs
