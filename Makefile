# The README's two commands. Each creates .venv if missing and installs only when
# pyproject.toml or constraints.txt changed since the last install. constraints.txt holds the
# exact torch / torchvision pair this repository is tested with (pyproject.toml states minimums).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# --no-compile: pip would compile every installed file on one core, and compileall on both cores
# took 22 s, for the 6.1 GB of torch, Ray, SymPy and the rest. Python compiles a module the first
# time it is imported instead (about 4,100 of the venv's files in a whole test run: 12.8 s of CPU)
# and, with RUN below, caches it for every later process. A fresh clone's `time make test`:
# 5m52 with lazy compiling, against 6m04-6m12 with compileall.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile -c constraints.txt

# Where PYTHONDONTWRITEBYTECODE is set (as on the machines this is tested on), Python caches no
# bytecode: each process compiles the package (and torch) again and pytest rewrites every test
# module again in each xdist worker. Unset, the first process writes the caches and the others
# read them: collecting the tests took 3.9-5.3 s instead of 6.6-8.1 s per worker.
RUN := env -u PYTHONDONTWRITEBYTECODE

.PHONY: demo test

demo: $(VENV)/.installed
	$(RUN) $(BIN)/unlearn-audit demo

# -n auto: one pytest-xdist worker per core (at most 4), one torch thread each (tests/conftest.py);
# loadgroup: the tests of one xdist_group (the Ray tests share one cluster) run on one worker
test: $(VENV)/.installed-test
	$(RUN) $(BIN)/python -m pytest -n auto --dist loadgroup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[pdf]'
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[test,pdf,ray]'
	touch $@ $(VENV)/.installed
