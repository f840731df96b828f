# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit system-deps install install-dev clean

demo: install
	$(BIN)/access-reporter demo

test: install-dev lint typecheck unit

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy reporter

unit:
	$(BIN)/pytest

system-deps:
	@PY=$(PY) scripts/system-deps.sh

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: system-deps $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-dev: system-deps $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

clean:
	rm -rf $(VENV) reports build *.egg-info .mypy_cache .pytest_cache .ruff_cache
