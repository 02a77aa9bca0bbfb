# The two commands: `make demo` and `make test`. Each creates .venv when missing and installs what it needs.
# torch is pinned to the CPU build here (the package itself asks for a range: see pyproject.toml).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0

.PHONY: demo test lint typecheck unit docs docs-check bench clean

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
	$(VENV)/bin/ruff check banditlib adapters tests benchmarks examples tools

typecheck: $(VENV)/.test-installed
	$(VENV)/bin/mypy banditlib

unit: $(VENV)/.test-installed
	$(PY) -m pytest -q

docs: $(VENV)/.test-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $$(mktemp -d)

# Not part of `make test`: builds the site afresh, loads every page in headless Chromium (Debian's chromium and
# chromium-driver, installed when missing) and fails on console errors, failed or off-site requests, unrendered
# maths, missing API entries, broken images and links; one screenshot per page goes to docs-check/.
# Extra options: make docs-check DOCS_CHECK_ARGS='--site-dir site --timeout 60'
docs-check: $(VENV)/.test-installed
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else \
	    echo "docs-check: needs Chromium; as root run: apt-get install -y chromium chromium-driver" >&2; exit 1; fi; \
	  echo "docs-check: installing chromium and chromium-driver with apt-get"; \
	  { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
	    || { echo "docs-check: apt-get failed; run: sudo apt-get install -y chromium chromium-driver" >&2; exit 1; }; \
	fi
	$(PIP) install --quiet 'selenium>=4.20,<5'
	$(PY) tools/docs_check.py $(DOCS_CHECK_ARGS)

bench: $(VENV)/.test-installed
	$(PY) benchmarks/bench_linear.py

clean:
	rm -rf $(VENV) demo-results site build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
