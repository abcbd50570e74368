# Every target creates the virtual environment itself: a fresh clone needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install check docs demo test test-unit test-integration test-e2e test-package lint format bench bench-scaling loadtest chaos clean sam sam-build

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local,loadtest,dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with every extra (local stack, load tests, dev tools)

check: lint docs ## what CI runs: ruff, ruff format --check, mypy (the tests too), cfn-lint, the docs build (--strict), then `make test`
	$(MAKE) --no-print-directory test

docs: $(STAMP) ## build the docs site (mkdocs-material) into site/, failing on any warning
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

demo: $(STAMP) ## the main job: the demo pipeline on the embedded emulator (no Docker, no AWS)
	$(BIN)/salesstream demo

# `make test` downloads nothing beyond `make install`: the packaging tests (marker `package`) run
# under `make test-package`. Each tier runs on TEST_WORKERS pytest-xdist workers (most tests wait
# on the emulator, a window boundary or a subprocess, so two workers overlap those waits); tests
# are handed out as workers free up (worksteal), so one slow module does not hold up the rest.
# The e2e tier hands out whole files (loadfile): its files share one stack per module and run
# their tests in order. It runs verbosely: each test is named as it starts and as it ends.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist worksteal
XDIST_E2E := -n $(TEST_WORKERS) --dist loadfile
test: $(STAMP) ## the suite: unit and integration, then e2e (each test named as it runs), on 2 workers; no downloads
	$(BIN)/python -m pytest $(XDIST) -m "not e2e and not package" --durations=15; tiers=$$?; \
	$(BIN)/python -m pytest $(XDIST_E2E) -v -m "e2e and not package" --durations=10; e2e=$$?; \
	exit $$(( tiers != 0 ? tiers : e2e ))

test-unit: $(STAMP) ## pure logic only, no sockets
	$(BIN)/python -m pytest $(XDIST) -m unit

test-integration: $(STAMP) ## through real boto3 clients against the embedded moto server
	$(BIN)/python -m pytest $(XDIST) -m integration

test-e2e: $(STAMP) ## the whole pipeline through the CLI (each test named as it runs)
	$(BIN)/python -m pytest $(XDIST_E2E) -v -m "e2e and not package" --durations=10

test-package: $(STAMP) ## the Lambda packages and the wheel in fresh venvs: downloads aws-sam-cli (~340 MB, into .venv-sam) and wheels from PyPI
	$(BIN)/python -m pytest -v -m package

lint: $(STAMP) ## ruff (with security rules), mypy and cfn-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint deploy/template.yaml

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## the benchmarks; figures printed and written to reports/bench.json
	$(BIN)/python -m load_tests.bench

bench-scaling: $(STAMP) ## the pipeline's CPU per million events at 5k-20k events/s and 4-24 shards (10 min quiet, an hour loaded); reports/bench_scaling.json, docs/images/scaling.png
	$(BIN)/python -m load_tests.bench_scaling

loadtest: $(STAMP) ## 20,000 events/s for 60 s through the pipeline; report in reports/loadtest-<run id>/
	$(BIN)/salesstream loadtest

chaos: $(STAMP) ## the standard fault profile at full size (100,000 orders) next to a clean run of the same size; reports/chaos*
	$(BIN)/salesstream loadtest --faults none --out reports/chaos-clean
	$(BIN)/salesstream loadtest --faults standard --out reports/chaos-faults
	$(BIN)/python -m load_tests.faultrun compare reports/chaos-clean/report.json reports/chaos-faults/report.json --out reports/chaos.json

# aws-sam-cli pins its own boto3, cfn-lint and click: it gets a virtual environment of its own.
SAM := .venv-sam/bin/sam
$(SAM):
	$(PYTHON) -m venv .venv-sam
	.venv-sam/bin/python -m pip install --quiet --disable-pip-version-check 'aws-sam-cli>=1.120,<2'

sam: $(SAM) ## install the AWS SAM CLI (from PyPI) in .venv-sam

sam-build: $(STAMP) $(SAM) ## sam build: each function's package (its modules, arm64 wheels) in deploy/.aws-sam
	cd deploy && SAM_CLI_TELEMETRY=0 ../$(SAM) build

clean: ## remove the virtual environment, caches and local state
	rm -rf $(VENV) .venv-sam deploy/.aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis var reports
