# dask-resample: two commands do everything on a fresh machine.
#   make demo   create .venv, install, build a mosaic from built-in synthetic data
#   make test   install the test extras and run the whole suite

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# an environment with the core dependencies only (no jwst/stdatamodels): what `pip install dask-resample` gives
CORE_VENV := .venv-core
CORE_TESTS := tests/test_plain_fits.py tests/test_core_install.py tests/test_layers.py
DEMO_DIR ?= demo_output

.PHONY: demo test test-core install install-test benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[jwst]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/dask-resample demo --output-dir $(DEMO_DIR)

test: install-test
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(MAKE) test-core

$(CORE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CORE_VENV)/bin/python -m pip install --quiet -e . pytest pytest-timeout
	touch $@

# the core tests again, where jwst cannot be imported
test-core: $(CORE_VENV)/.installed
	! $(CORE_VENV)/bin/python -c "import jwst" 2>/dev/null
	! $(CORE_VENV)/bin/python -c "import stdatamodels" 2>/dev/null
	$(CORE_VENV)/bin/python -m pytest -q -p no:cacheprovider -m core $(CORE_TESTS)

benchmark: install-test
	$(BIN)/python benchmarks/bench_vs_jwst.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .hypothesis
