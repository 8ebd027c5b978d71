# Golden Key Hall — the two commands are `make up` (run the product) and `make test` (run the tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := queue concierge parking feedback
STAMP := $(VENV)/.installed
PY_SOURCES := $(wildcard shared/src services tests bench deploy)

.PHONY: all venv tools stack up down status lint format typecheck test test-unit test-integration test-e2e schemas dashboards bench clean

all: venv

$(STAMP): constraints.txt requirements-dev.txt shared/pyproject.toml $(foreach s,$(SERVICES),services/$(s)/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -r requirements-dev.txt
	$(BIN)/pip install -q -c constraints.txt --config-settings editable_mode=compat \
		-e shared $(foreach s,$(SERVICES),-e services/$(s))
	touch $@

venv: $(STAMP)

tools:
	@deploy/native/tools.sh

# Kafka's jars (Maven) and FerretDB (Go) are fetched and built once, cached outside the repo.
stack: venv tools
	$(BIN)/python deploy/native/devstack.py build

up: stack
	$(BIN)/python deploy/native/devstack.py up --services

down:
	@test -x $(BIN)/python && $(BIN)/python deploy/native/devstack.py down || python3 deploy/native/devstack.py down

status:
	@python3 deploy/native/devstack.py status

lint: venv
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)

typecheck: venv
	$(BIN)/mypy

# One pytest run shares one throwaway Kafka + FerretDB between all tests (see tests/conftest.py).
test: stack lint
	$(BIN)/pytest tests services

test-unit: venv
	$(BIN)/pytest tests/unit services

test-integration: stack
	$(BIN)/pytest tests/integration

test-e2e: stack
	$(BIN)/pytest tests/e2e

schemas: venv
	$(BIN)/python -m goldenkey.contracts export-schemas docs/events

dashboards: venv
	$(BIN)/python deploy/grafana/dashboards.py

bench: stack
	$(BIN)/python bench/run.py

clean: down
	rm -rf $(VENV) .devstack .pytest_cache .mypy_cache .ruff_cache
