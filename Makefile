# dask-resample: two commands do everything on a fresh machine.
#   make demo   create .venv, install, build a mosaic from built-in synthetic data
#   make test   install the test extras, lint and type-check, and run the whole suite

# Python >= 3.12: the first candidate that runs and is new enough. Each one is run, not just
# looked up: a pyenv shim such as python3.12 is on PATH but fails when no pyenv version selects
# it. Override with `make PYTHON=/path/to/python3.12 ...`.
PYTHON_CANDIDATES := python3.12 python3.13 python3.14 \
	$${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 python3
PY_MIN := import sys; sys.version_info >= (3, 12) or sys.exit(1)
PY_XY  := import sys; print("%d.%d" % sys.version_info[:2])
PYTHON ?= $(shell for p in $(PYTHON_CANDIDATES); do \
	exe=$$("$$p" -c '$(PY_MIN); print(sys.executable)' 2>/dev/null) && [ -n "$$exe" ] && { echo "$$exe"; break; }; \
	done)
PYTHON := $(PYTHON)

VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# an environment with the core dependencies only (no jwst/stdatamodels): what `pip install dask-resample` gives
CORE_VENV := .venv-core
CORE_TESTS := tests/test_plain_fits.py tests/test_core_install.py tests/test_layers.py
DEMO_DIR ?= demo_output

.PHONY: demo test test-core lint install install-test benchmark clean check-python FORCE

check-python:
	$(if $(PYTHON),,$(error no Python >= 3.12 found (tried python3.12, python3.13, python3.14, pyenv's 3.12+, python3): install one or run make PYTHON=/path/to/python3.12))
	$(if $(shell "$(PYTHON)" -c '$(PY_MIN)' 2>/dev/null && echo ok),,$(error PYTHON=$(PYTHON) does not run as a Python >= 3.12))

# <venv>/.python holds the X.Y of the Python the venv was made with. It is checked at every make:
# a venv whose python no longer runs, or is not of $(PYTHON)'s X.Y (a .venv left from Python
# 3.11, say), is made anew, and the stamp's new time reinstalls the package into it.
define venv-for-python
@want=$$("$(PYTHON)" -c '$(PY_XY)'); have=$$($(@D)/bin/python -c '$(PY_XY)' 2>/dev/null); \
if [ "$$have" != "$$want" ]; then \
	if [ -e $(@D) ]; then echo "$(@D): Python $${have:-that does not run}, not $$want: making it anew with $(PYTHON)"; fi; \
	rm -rf $(@D) && "$(PYTHON)" -m venv $(@D) && $(@D)/bin/python -m pip install --quiet --upgrade pip && echo "$$want" > $@; \
elif [ "$$(cat $@ 2>/dev/null)" != "$$want" ]; then echo "$$want" > $@; fi
endef

$(VENV)/.python: FORCE | check-python
	$(venv-for-python)

$(VENV)/.installed: pyproject.toml $(VENV)/.python
	$(PIP) install --quiet -e ".[jwst,fast]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.python
	$(PIP) install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/dask-resample demo --output-dir $(DEMO_DIR)

# ruff (lint and format) and mypy, configured in pyproject.toml (the versions pinned in the test extra)
lint: install-test
	$(BIN)/ruff check dask_resample tests benchmarks deploy
	$(BIN)/ruff format --check dask_resample tests benchmarks deploy
	$(BIN)/mypy dask_resample

test: install-test lint
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(MAKE) test-core

$(CORE_VENV)/.python: FORCE | check-python
	$(venv-for-python)

$(CORE_VENV)/.installed: pyproject.toml $(CORE_VENV)/.python
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
	rm -rf $(DEMO_DIR) .pytest_cache .hypothesis .mypy_cache .ruff_cache
