# tailcast: `make run` serves the stack on embedded defaults, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# LiteLLM (its real-router test) reads its bundled cost map instead of fetching it
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install browser run test lint typecheck contracts pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,litellm]'
	touch $(STAMP)

install: $(STAMP) browser

# Headless Chromium for the offline /docs test (Debian package; installed only as root).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y --no-install-recommends chromium \
	      || { apt-get update && apt-get install -y --no-install-recommends chromium; }; \
	  else echo "chromium missing: run 'make install' as root (the /docs test needs it)"; fi; \
	fi

run: install
	$(BIN)/tailcast run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

# Two workers, each test file on one worker (module fixtures stay shared): ~15 min idle.
pytest: install
	$(BIN)/pytest -n 2 --dist loadfile

test: lint typecheck contracts pytest

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .tailcast .mypy_cache .ruff_cache .pytest_cache
