# The README's two commands. Each creates .venv if missing and installs only when
# pyproject.toml or constraints.txt changed since the last install. constraints.txt holds the
# exact torch / torchvision pair this repository is tested with (pyproject.toml states minimums).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# pip compiles every installed file on one core (53 of the 121 seconds a fresh install took here);
# compileall afterwards does it on every core (25 s). A few third-party files that are not meant to
# compile make compileall exit 1, as pip ignores them.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile -c constraints.txt
COMPILE := $(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true

# Where PYTHONDONTWRITEBYTECODE is set (as on the machines this is tested on), Python caches no
# bytecode: each process compiles the package again and pytest rewrites every test module again
# in each xdist worker. Unset, the first process writes the caches and the others read them:
# collecting the tests took 3.9-5.3 s instead of 6.6-8.1 s per worker.
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
	$(COMPILE)
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[test,pdf,ray]'
	$(COMPILE)
	touch $@ $(VENV)/.installed
