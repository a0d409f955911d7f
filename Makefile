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
DEV_PORT ?= 3000

.PHONY: help install demo dev test test-chaos test-e2e lint format bench bench-deps bench-quick clean fuzz cluster cluster-down test-cluster bench-cluster

help:
	@echo "make demo   install, generate 7 days of sample data, materialize every asset, print a summary"
	@echo "make dev    Dagster web UI + daemon on http://127.0.0.1:3000 over the demo instance (dg dev)"
	@echo "make test   the whole test suite"
	@echo "make cluster       the distributed profile on this machine: Redis, PostgreSQL, S3 (moto),"
	@echo "                   LAKE_CELERY_WORKERS Celery workers, daemon, web UI (settings: .cluster/cluster.env)"
	@echo "make cluster-down  stop exactly what make cluster started"
	@echo "make test-cluster  30-day backfill on the cluster vs the embedded run, and a killed worker"
	@echo "make test-chaos  the lake through injected S3 faults (20 % and 50 %), ~15 min"
	@echo "make test-e2e  every README command, the web UI, every calendar by the CLI, every store end to end, ~7 min"
	@echo "make lint   ruff check + format check + mypy (make test runs it first)"
	@echo "make fuzz   hostile-input fuzzing: 500 examples per test, files across the 8 MiB block"
	@echo "make bench  benchmarks vs DuckDB/Polars/pyarrow/DataFusion -> benchmarks/RESULTS.md (~30 min)"
	@echo "make bench-quick  the same at small sizes, for development"
	@echo "make bench-cluster  30-day backfill: embedded vs 1 vs 2 Celery workers (wall, peak RSS)"

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
	@echo "materializing every asset for $(DEMO_START)...$(DEMO_END), one run per dataset calendar (log: .dagster/demo.log)"
	@$(UV) run --frozen python -m lake_pipelines.backfill --start $(DEMO_START) --end $(DEMO_END) \
		> $(DAGSTER_HOME)/demo.log 2>&1 || { tail -n 60 $(DAGSTER_HOME)/demo.log; exit 1; }
	$(UV) run --frozen lake-pipelines summary

# `dg dev` (`dagster dev` is superseded by it), started from DAGSTER_HOME: Dagster warns about a
# dagster.yaml in the folder it starts in (this repository's template) unless that is DAGSTER_HOME.
dev: install $(DAGSTER_HOME)/dagster.yaml
	cd $(DAGSTER_HOME) && $(UV) run --frozen --project $(CURDIR) dg dev -w $(CURDIR)/workspace.yaml -h 127.0.0.1 -p $(DEV_PORT)

test: install test-deps lint
	$(UV) run --frozen pytest

# The distributed profile (README, "Scaling out"). CLUSTER_UI_PORT=3100 pins the web UI's port.
CLUSTER_DIR ?= $(CURDIR)/.cluster
cluster: install test-deps
	$(UV) run --frozen python -m lake_pipelines.cluster up --run-dir $(CLUSTER_DIR) \
		$(if $(CLUSTER_UI_PORT),--ui-port $(CLUSTER_UI_PORT))

cluster-down: install
	$(UV) run --frozen python -m lake_pipelines.cluster down --run-dir $(CLUSTER_DIR)

# Starts its own cluster (in a temporary directory) and stops it at the end.
test-cluster: install test-deps
	$(UV) run --frozen pytest -m cluster lake_pipelines_tests/test_cluster.py

# Every layer through the tests' fault proxy in front of moto (lake_pipelines_tests/test_chaos.py).
test-chaos: install
	$(UV) run --frozen pytest -m chaos

# Whole-process user journeys (~7 min): every fenced README command on a demo lake, the web UI
# in Chromium, every calendar and hourly/local-day dataset through the Dagster CLI, and every
# layer over local disk, S3 (moto), GCS and Azure (their emulators).
test-e2e: install test-deps
	$(UV) run --frozen pytest -m e2e

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
bench: install bench-deps
	$(UV) run --frozen python -m benchmarks --scale full $(BENCH_ARGS)

# Task 10's peers (daft, dlt) in an environment of their own: daft needs an older pyarrow than
# the lake's, so the `bench` group is resolved apart from `dev` (pyproject: conflicts).
bench-deps: $(UV)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/.venv-bench $(UV) sync --frozen --only-group bench

# 30 days of events: embedded vs the local cluster with 1 and 2 workers (~20 min; not a test).
bench-cluster: install test-deps
	$(UV) run --frozen python -m benchmarks.cluster_bench $(BENCH_ARGS)

bench-quick: install bench-deps
	$(UV) run --frozen python -m benchmarks --scale quick $(BENCH_ARGS)

clean:
	rm -rf .lake .dagster

# System packages some tests start: headless Chromium (web-UI test), Debian's PostgreSQL
# server (catalog tests, the cluster), Prometheus, promtool and the Pushgateway (metrics tests),
# Azurite (npm, into .tools/azurite with the machine's Node.js; the Azure Blob tests) and Redis
# (the cluster's broker). Each script is a no-op when the package is already there.
.PHONY: test-deps
test-deps:
	.ci/install-chromium
	.ci/install-postgresql
	.ci/install-prometheus
	.ci/install-azurite
	.ci/install-redis
