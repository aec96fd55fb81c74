# The two set-up commands: `make demo` (the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: venv venv-litert-torch lint format test test-slow test-all test-web demo clean

# (Re)create the virtual environment whenever requirements.txt or requirements-dev.txt changes.
# LPIPS's linear calibration weights are data files inside the lpips wheel. The package itself
# imports torchvision (which does not import beside CPU torch), so it is installed without its
# dependencies and eval/lpips.py reads the weights from it by path; it is never imported.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps lpips==0.1.4
	touch $@

venv: $(VENV)/.installed

# Optional: the litert-torch converter (export/litert_torch.py) in its own environment, because it
# needs numpy >= 2 and TensorFlow 2.15 in $(VENV) needs numpy < 2. The export runs it as a child process.
LITERT_VENV ?= .venv-litert-torch
$(LITERT_VENV)/.installed: requirements-litert-torch.txt
	test -x $(LITERT_VENV)/bin/python || $(PYTHON) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LITERT_VENV)/bin/python -m pip install -q -r requirements-litert-torch.txt
	touch $@

venv-litert-torch: $(LITERT_VENV)/.installed

# Lint, format check and type check; the rules and the mypy level are in pyproject.toml.
lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv
	$(PY) -m ruff format .

# -rs: every skipped test says why (a missing browser, Vulkan device or optional environment).
# The default suite stays under 3 minutes on 2 cores; test-slow runs the full exports, the browser,
# the GPU runs on the software Vulkan device and the training subprocesses. .ci/run runs both.
test: venv
	$(PY) -m pytest -q -rs -m "not slow and not gpu"

test-slow: venv
	$(PY) -m pytest -q -rs -m "slow and not gpu"

# The browser end-to-end test needs Debian's chromium and web_demo/node_modules; without them it
# skips and names this script. `.ci/run` installs them before the tests.
test-web: venv
	bash web_demo/setup.sh
	$(PY) -m pytest -q -m "not gpu" tests/test_web_*.py

test-all: venv
	$(PY) -m pytest -q -m "not gpu"

demo: venv
	$(PY) -m eval.demo --out runs/demo

clean:
	rm -rf runs/demo
