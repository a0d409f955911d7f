# lake_pipelines — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv is bootstrapped from PyPI into ./.tools when it is not on PATH.
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PYTHON ?= python3
export DAGSTER_HOME := $(CURDIR)/.dagster
export LAKE_HOME ?= $(CURDIR)/.lake
DEMO_START ?= 2026-11-01
DEMO_END ?= 2026-11-07
DEMO_DAYS ?= 7

.PHONY: help install demo dev test test-chaos lint format bench bench-quick clean fuzz

help:
	@echo "make demo   install, generate 7 days of sample data, materialize every asset, print a summary"
	@echo "make dev    Dagster web UI + daemon on http://127.0.0.1:3000 over the demo instance"
	@echo "make test   the whole test suite"
	@echo "make test-chaos  the lake through injected S3 faults (20 % and 50 %), ~15 min"
	@echo "make lint   ruff check + format check + mypy (make test runs it first)"
	@echo "make fuzz   hostile-input fuzzing: 500 examples per test, files across the 8 MiB block"
	@echo "make bench  benchmarks vs DuckDB/Polars/pyarrow/DataFusion -> benchmarks/RESULTS.md (~30 min)"
	@echo "make bench-quick  the same at small sizes, for development"

$(UV):
	@echo "uv not found: installing it into .tools from PyPI"
	$(PYTHON) -m venv .tools && .tools/bin/pip install --quiet uv

install: $(UV)
	$(UV) sync --frozen

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(UV) run --frozen python -m lake_pipelines.sample_data --store $(LAKE_HOME) --start $(DEMO_START) --days $(DEMO_DAYS)
	@$(UV) run --frozen python -m lake_pipelines.runs  # fail runs an earlier killed process left STARTED
	@echo "materializing every asset for $(DEMO_START)...$(DEMO_END) (log: .dagster/demo.log)"
	@$(UV) run --frozen dagster asset materialize -m lake_pipelines.definitions --select '*' \
		--partition-range $(DEMO_START)...$(DEMO_END) > $(DAGSTER_HOME)/demo.log 2>&1 \
		|| { tail -n 60 $(DAGSTER_HOME)/demo.log; exit 1; }
	$(UV) run --frozen lake-pipelines summary

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(UV) run --frozen dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: install test-deps lint
	$(UV) run --frozen pytest

# Every layer through the tests' fault proxy in front of moto (lake_pipelines_tests/test_chaos.py).
test-chaos: install
	$(UV) run --frozen pytest -m chaos lake_pipelines_tests/test_chaos.py

lint: install
	$(UV) run --frozen ruff check lake_pipelines lake_pipelines_tests benchmarks
	$(UV) run --frozen ruff format --check lake_pipelines lake_pipelines_tests benchmarks
	$(UV) run --frozen mypy

format: install
	$(UV) run --frozen ruff format lake_pipelines lake_pipelines_tests benchmarks
	$(UV) run --frozen ruff check --fix lake_pipelines lake_pipelines_tests benchmarks

# The suite runs 20 examples per fuzz test; this runs 500, and files that straddle the 8 MiB
# read block. Hypothesis' statistics say how many examples ran, all of which passed if it exits 0.
fuzz: install
	LAKE_FUZZ_EXAMPLES=$${LAKE_FUZZ_EXAMPLES:-500} LAKE_FUZZ_BIG=1 $(UV) run --frozen pytest -p no:cacheprovider \
		lake_pipelines_tests/lake/ingest/test_fuzz.py --hypothesis-show-statistics -q

# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--tasks 1,3 --reps 5".
bench: install
	$(UV) run --frozen python -m benchmarks --scale full $(BENCH_ARGS)

bench-quick: install
	$(UV) run --frozen python -m benchmarks --scale quick $(BENCH_ARGS)

clean:
	rm -rf .lake .dagster

# System packages some tests start: headless Chromium (web-UI test) and Debian's PostgreSQL
# server (catalog tests). Each script is a no-op when the package is already there.
.PHONY: test-deps
test-deps:
	.ci/install-chromium
	.ci/install-postgresql
