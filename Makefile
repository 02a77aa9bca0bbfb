# The two commands: `make demo` and `make test`. Each creates .venv when missing and installs what it needs.
# torch is pinned to the CPU build here (the package itself asks for a range: see pyproject.toml).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0

.PHONY: demo test lint typecheck unit docs verl docs-check bench clean

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

test: $(VENV)/.test-installed lint typecheck unit docs verl

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check banditlib adapters tests benchmarks examples tools
	$(VENV)/bin/ruff format --check banditlib adapters tests benchmarks examples tools

typecheck: $(VENV)/.test-installed
	$(VENV)/bin/mypy banditlib

unit: $(VENV)/.test-installed
	$(PY) -m pytest -q

docs: $(VENV)/.test-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $$(mktemp -d)

# verl in a venv of its own (part of `make test`): verl 0.9.1 pins transformers < 5.11, while TRL in .venv needs a
# newer one. verl and TransferQueue go in without their dependency lists (ray[default], wandb, tensorboard, the
# vLLM/SGLang/FSDP extras); VERL_DEPS is what verl.protocol and verl's V1 trainer modules import, pinned as tested.
# The tests run with BANDITLIB_REQUIRE_VERL=1, so a verl that does not import fails them instead of skipping.
# After removing or downgrading a pin: rm -rf .venv-verl.
VERL_VENV  := .venv-verl
VERL_PY    := $(VERL_VENV)/bin/python
VERL_PKGS  := verl==0.9.1 TransferQueue==0.1.11
VERL_DEPS  := $(TORCH) tensordict==0.10.0 transformers==5.10.4 ray==2.58.0 hydra-core==1.3.8 omegaconf==2.3.1 \
              codetiming==1.4.0 pyzmq==27.3.0 msgspec==0.23.0 psutil==7.2.2 prometheus_client==0.26.0 pillow==13.0.0 \
              datasets==5.2.0 cachetools==8.0.2 fastapi==0.165.0 uvicorn==0.54.0 torchdata==0.11.0 peft==0.21.2 \
              aiohttp==3.14.5 'scipy>=1.10' 'safetensors>=0.4.4,<1' 'pytest>=8'
VERL_TESTS := tests/adapters/test_verl_real.py tests/adapters/test_verl_openrlhf.py \
              banditlib/adapters/verl.py banditlib/adapters/_verl_sampler.py

$(VERL_VENV)/.installed: pyproject.toml
	test -x $(VERL_PY) || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_PY) -m pip install --quiet --no-compile $(VERL_DEPS)
	$(VERL_PY) -m pip install --quiet --no-compile --no-deps $(VERL_PKGS)
	$(VERL_PY) -m pip install --quiet --no-deps -e .
	touch $@

verl: $(VERL_VENV)/.installed
	BANDITLIB_REQUIRE_VERL=1 RAY_USAGE_STATS_ENABLED=0 $(VERL_PY) -m pytest -q -p no:cacheprovider $(VERL_TESTS)

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
	rm -rf $(VENV) $(VERL_VENV) demo-results site build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
