# The README's two commands. Each creates .venv if missing and installs only when
# pyproject.toml or constraints.txt changed since the last install. constraints.txt holds the
# exact torch / torchvision pair this repository is tested with (pyproject.toml states minimums).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# --no-compile: Python compiles what is imported when it is first imported; compiling every file of
# torch's 5 GB at install time took 53 of 121 seconds
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile -c constraints.txt

.PHONY: demo test

demo: $(VENV)/.installed
	$(BIN)/unlearn-audit demo

# -n auto: one pytest-xdist worker per core (at most 4), one torch thread each (tests/conftest.py);
# loadgroup: the tests of one xdist_group (the Ray tests share one cluster) run on one worker
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n auto --dist loadgroup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[pdf]'
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[test,pdf,ray]'
	touch $@ $(VENV)/.installed
