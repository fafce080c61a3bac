# One command surface. `make lab` and `make test` install whatever is missing first;
# every step leaves a stamp, so a second run with nothing changed does nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
# the pinned tag lives in one place, the Python module that reports it in its errors
LIVEKIT_SERVER_VERSION := $(shell sed -n 's/^LIVEKIT_SERVER_VERSION = "\(.*\)"/\1/p' rico_lab/livekit_server.py)
LIVEKIT_SERVER := $(TOOLS)/bin/livekit-server
LIVEKIT_STAMP := $(TOOLS)/.livekit-server-$(LIVEKIT_SERVER_VERSION)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
# A livekit-server of the user's own (on PATH, or LIVEKIT_URL) makes the local build unnecessary.
NEED_LIVEKIT := $(if $(or $(LIVEKIT_URL),$(shell command -v livekit-server)),,$(LIVEKIT_STAMP))

.PHONY: help setup widgets lab test check fix clean

help:
	@echo "make lab    install what is missing, then open JupyterLab on notebooks/"
	@echo "make test   install what is missing, then run every test"
	@echo "make check  lint and format check (Python and TypeScript);  make fix  apply ruff's"
	@echo "make widgets  rebuild the voice client bundle (cd widgets && npm run dev to watch)"

# Debian packages: espeak-ng speaks for the local model, Chromium runs the browser tests
SYSTEM_PACKAGES := espeak-ng chromium
SYSTEM_STAMP := $(TOOLS)/.debian-$(subst $(eval) ,-,$(SYSTEM_PACKAGES))
# the widget module and the web page's script, built together from widgets/src/ (TypeScript,
# CSS, the worklet) and what it shares with Python: the protocol's keys, the methods' rules
BUNDLE := rico_lab/static/voice_client.js rico_lab/static/page.js rico_lab/static/player.js
WIDGET_SOURCES := $(wildcard widgets/src/*) rico_lab/protocol.json rico_lab/client_methods.json \
	widgets/build.mjs widgets/tsconfig.json

setup: $(VENV)/.installed $(NEED_LIVEKIT) $(SYSTEM_STAMP) $(BUNDLE)

widgets: $(BUNDLE)

$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[lab,test]'
	touch $@

$(LIVEKIT_STAMP):
	@command -v go >/dev/null || { echo "Go is needed to build livekit-server: install Go, or set LIVEKIT_URL"; exit 1; }
	mkdir -p $(TOOLS)/go-bin $(TOOLS)/bin
	GOBIN=$(abspath $(TOOLS)/go-bin) go install github.com/livekit/livekit-server/cmd/server@$(LIVEKIT_SERVER_VERSION)
	mv $(TOOLS)/go-bin/server $(LIVEKIT_SERVER)
	touch $@

$(SYSTEM_STAMP):
	missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi
	mkdir -p $(TOOLS) && touch $@

widgets/node_modules/.installed: widgets/package.json widgets/package-lock.json
	cd widgets && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BUNDLE) &: widgets/node_modules/.installed $(WIDGET_SOURCES)
	cd widgets && npm run --silent build

lab: setup
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) notebooks/

# the suite in two processes (one test file each at a time: a module's servers stay its own),
# then the tests of timing on their own; plain `pytest` runs everything in one process
TEST_WORKERS ?= 2
test: check
	cd widgets && npm test
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not solo"
	$(PY) -m pytest -m solo

check: setup
	$(VENV)/bin/ruff check rico_lab tests roles benchmarks
	$(VENV)/bin/ruff format --check rico_lab tests roles benchmarks
	cd widgets && npm run --silent lint

fix: setup
	$(VENV)/bin/ruff check --fix rico_lab tests roles benchmarks
	$(VENV)/bin/ruff format rico_lab tests roles benchmarks

clean:
	rm -rf $(VENV) $(TOOLS) widgets/node_modules rico_lab/static
