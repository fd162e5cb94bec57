# The README's two commands. Each creates .venv if missing and installs only when
# pyproject.toml or constraints.txt changed since the last install. constraints.txt holds the
# exact torch / torchvision pair this repository is tested with (pyproject.toml states minimums).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# uv installs what pip would, from pip's own indexes, in a third of the time: it unpacks the
# 5.8 GB of wheels (torch's CUDA build and its NVIDIA libraries) in parallel. A fresh venv here:
# pip 55.7 s, uv 15.8-20.6 s, the same `pip freeze`. uv reads no pip configuration, so it gets
# pip's index URLs, links and constraint files (where a machine keeps its wheels: this one takes
# torch from its own disk), and, like pip, the best version across all of them. Its cache lives
# in .venv (hard links, no second copy), and goes with it. uv is pinned to the version tested
# here. Like pip --no-compile, it compiles no bytecode ahead: compileall took 22 s on both cores
# for the 6.1 GB of torch, Ray, SymPy and the rest, while Python compiles a module the first
# time it is imported (about 4,100 of the venv's files in a whole test run: 12.8 s of CPU) and,
# with RUN below, caches it for every later process.
# (pip lists environment settings first, which win, as in pip; one each of index-url and cert.)
PIP_SETTINGS = $(shell $(PYTHON) -m pip config list 2>/dev/null \
	| sed -nE "s/^[^.]*\.(index-url|extra-index-url|find-links|constraint|cert)='(.*)'$$/\1 \2/p" \
	| awk '{for (i = 2; i <= NF; i++) if (!seen[$$1 ($$1 == "index-url" || $$1 == "cert" ? "" : $$i)]++) \
		printf "--%s %s ", $$1, $$i}')
INSTALL = $(BIN)/python -m pip install --quiet 'uv==0.13.9' && $(BIN)/uv pip install --quiet \
	--python $(BIN)/python --cache-dir $(VENV)/.uv-cache --index-strategy unsafe-best-match \
	$(PIP_SETTINGS) -c constraints.txt

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
	$(INSTALL) -e '.[pdf]'
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(INSTALL) -e '.[test,pdf,ray]'
	touch $@ $(VENV)/.installed
