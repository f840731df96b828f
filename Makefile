# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every dependency, pinned with hashes: `make lock` writes both files from pyproject.toml.
LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev-lock.txt

.PHONY: demo test lint typecheck unit audit lock system-deps install install-dev bench clean

demo: install
	$(BIN)/access-reporter demo

test: install-dev audit lint typecheck unit

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy reporter

unit:
	$(BIN)/pytest

# Known vulnerabilities in any locked package fail the build. AUDIT_FLAGS=--strict also fails
# when a package cannot be looked up (no route to the vulnerability service).
audit:
	$(BIN)/pip-audit --requirement $(DEV_LOCK) --require-hashes --disable-pip --progress-spinner off $(AUDIT_FLAGS)

# Re-resolve after a change to pyproject.toml; `make lock UPGRADE=--upgrade` moves every pin
# to its newest release (then `make test`, which audits the new pins).
LOCK_FLAGS := --python-version 3.11 --universal --generate-hashes --quiet $(UPGRADE)
lock: install-dev
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o $(DEV_LOCK)
	$(BIN)/uv pip compile pyproject.toml -c $(DEV_LOCK) $(LOCK_FLAGS) -o $(LOCK)

system-deps:
	@PY=$(PY) scripts/system-deps.sh

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: system-deps $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check

install-dev: system-deps $(BIN)/python
	@PY=$(PY) scripts/system-deps.sh --test
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check

# The render benchmark in a venv of its own, so that it can run on another interpreter than the
# development venv: `make bench BENCH_PY=/usr/bin/python3.11 BENCH_ARGS=--skip-ratios`. The
# interpreter's build changes the figures (README, Performance). The venv is made afresh each
# time, so the figures are always BENCH_PY's, not those of the last interpreter it was made with.
BENCH_PY ?= $(PY)
BENCH_VENV := .venv-bench
BENCH_ARGS ?=
bench: system-deps
	rm -rf $(BENCH_VENV)
	$(BENCH_PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(BENCH_VENV)/bin/python -m benchmarks.render $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) reports build *.egg-info .mypy_cache .pytest_cache .ruff_cache
