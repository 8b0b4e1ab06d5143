# The two commands a new user types are `make demo` and `make test`; both build the
# virtual environment from the lock on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
UV_VERSION := 0.13.9
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
TEST_WORKERS ?= 2  # test processes (pytest-xdist), one Spark driver each; tests/conftest.py schedules by file

export PYSPARK_PYTHON := $(abspath $(BIN)/python)
export PYSPARK_DRIVER_PYTHON := $(abspath $(BIN)/python)

.PHONY: help java chromium venv demo test lint format bench lock clean docs dist

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

java:
	@scripts/check_java.sh

chromium:  # Debian's chromium and a CJK font for the report test, installed when missing
	@scripts/ensure_chromium.sh

$(STAMP): requirements.lock pyproject.toml simulator/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "ERROR: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@echo ">> creating $(VENV) and installing the locked dependencies (first run takes a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e . -e simulator
	@touch $@

venv: java $(STAMP)  ## create the virtual environment from requirements.lock

demo: venv  ## run the nightly DAG through Airflow on the embedded default (local Spark, var/)
	@$(BIN)/medlake-sim demo

test: venv chromium  ## run the whole test suite on real Spark, Delta, Airflow and Chromium
	@$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: venv  ## ruff and mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

format: venv
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

bench: venv  ## table-layer, simulator, throughput, night, rebuild, pipeline, governance, gold and query-service benchmarks; write bench/RESULTS.md
	@$(BIN)/python -m bench.table_io
	@$(BIN)/python -m bench.generator
	@$(BIN)/python -m bench.throughput
	@$(BIN)/python -m bench.night
	@$(BIN)/python -m bench.rebuild
	@$(BIN)/python -m bench.pipeline
	@$(BIN)/python -m bench.governance
	@$(BIN)/python -m bench.gold
	@$(BIN)/python -m bench.boundary

lock:  ## re-resolve requirements.lock from pyproject.toml (needs uv)
	uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --excludes requirements/excludes.txt \
	  --generate-hashes --no-emit-package setuptools -o requirements.lock

dist: venv  ## the wheel, and its .zip copy for a cluster's executors (docs/cluster.md)
	@rm -rf dist && $(BIN)/uv build --offline --wheel --out-dir dist .
	@for w in dist/*.whl; do cp "$$w" "$${w%.whl}.zip"; done
	@ls dist

clean:  ## remove generated data (var/) but keep the environment
	rm -rf var/

docs: venv  ## regenerate docs/sources.md, docs/data-dictionary.md and docs/quality-rules.md
	@$(BIN)/python -m medlake_simulator.docs > docs/sources.md
	@$(BIN)/python -m medlake.dictionary > docs/data-dictionary.md
	@$(BIN)/python -m medlake.silver.rulebook > docs/quality-rules.md
