# The two commands: `make demo` and `make test`. Each creates .venv when missing and installs what it needs.
# torch is pinned to the CPU build here (the package itself asks for a range: see pyproject.toml).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0

.PHONY: demo test lint typecheck unit docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e '.[envs]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e '.[envs,docs,dev,triton,trl]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(VENV)/bin/banditlib demo --out demo-results

test: $(VENV)/.test-installed lint typecheck unit docs

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check banditlib adapters tests benchmarks examples

typecheck: $(VENV)/.test-installed
	$(VENV)/bin/mypy banditlib adapters

unit: $(VENV)/.test-installed
	$(PY) -m pytest -q

docs: $(VENV)/.test-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $$(mktemp -d)

bench: $(VENV)/.test-installed
	$(PY) benchmarks/bench_linear.py

clean:
	rm -rf $(VENV) demo-results site build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
