# Golden Key Hall — the two commands are `make up` (run the product) and `make test` (run the tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := queue concierge parking feedback
STAMP := $(VENV)/.installed
PY_SOURCES := $(wildcard shared/src services demo tests bench deploy)
# Kafka's command-line tools, as `make up` writes them (docs/devstack.md), and the broker they ask.
KAFKA_BIN := .devstack/bin
BOOTSTRAP ?= 127.0.0.1:9092
KAFKA_TOOLS_READY = test -x $(KAFKA_BIN)/kafka-topics.sh || { echo "no Kafka tools yet: make up writes them to $(KAFKA_BIN)/" >&2; exit 1; }

.PHONY: all help venv tools stack up down demo compose-demo status topics lag tail lint format typecheck test test-unit test-integration test-e2e test-faults schemas dashboards bench clean

all: venv ## the same as make venv

help: ## list the targets, one line each
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-z][a-z0-9-]*:.*## / { printf "  make %-17s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(STAMP): constraints.txt requirements-dev.txt shared/pyproject.toml demo/pyproject.toml $(foreach s,$(SERVICES),services/$(s)/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -r requirements-dev.txt
	$(BIN)/pip install -q -c constraints.txt --config-settings editable_mode=compat \
		-e shared $(foreach s,$(SERVICES),-e services/$(s)) -e demo
	touch $@

venv: $(STAMP) ## create .venv with the pinned dependencies and every package, editable

tools: ## install Debian's prometheus and docker-compose when missing; check for Java and Maven
	@deploy/native/tools.sh

# Kafka's jars and our mongo-java-server launcher are fetched and built once with Maven, cached
# outside the repo (docs/devstack.md).
stack: venv tools ## fetch Kafka's jars and build the mongo-java-server launcher (once, cached)
	$(BIN)/python deploy/native/devstack.py build

up: stack ## run the product: Kafka, mongo-java-server (H2 file), Prometheus and the four services
	$(BIN)/python deploy/native/devstack.py up --services

demo: stack ## play a simulated hall day, live, and write its report (VISITORS= SPEED= SEED= DAY=)
	$(BIN)/python -m goldenkey.demo $(if $(VISITORS),--visitors $(VISITORS)) $(if $(SPEED),--speed $(SPEED)) \
		$(if $(SEED),--seed $(SEED)) $(if $(DAY),--day $(DAY))

# Docker users: the compose stack's services restarted on one simulated clock, and the `demo`
# profile's simulator playing a day against them while Grafana (http://127.0.0.1:3000) watches.
compose-demo: venv ## with Docker: a day played against the compose stack (VISITORS= SPEED= SEED= DAY=)
	docker compose --profile demo build
	mkdir -p demo-report
	eval "$$($(BIN)/python -m goldenkey.demo --print-clock --clock-lead 120 $(if $(SPEED),--speed $(SPEED)) $(if $(DAY),--day $(DAY)))" \
		&& DEMO_USER=$$(id -u):$$(id -g) VISITORS=$(VISITORS) SEED=$(SEED) docker compose --profile demo up -d \
		&& docker compose logs -f demo

down: ## stop what make up started (the data stays in .devstack/)
	@test -x $(BIN)/python && $(BIN)/python deploy/native/devstack.py down || python3 deploy/native/devstack.py down

status: ## what runs, and which database answers on 127.0.0.1:27017
	@python3 deploy/native/devstack.py status

topics: ## list the dev stack's Kafka topics
	@$(KAFKA_TOOLS_READY)
	@$(KAFKA_BIN)/kafka-topics.sh --bootstrap-server $(BOOTSTRAP) --list --exclude-internal

lag: ## every consumer group's committed offset, log end and lag, per partition
	@$(KAFKA_TOOLS_READY)
	@$(KAFKA_BIN)/kafka-consumer-groups.sh --bootstrap-server $(BOOTSTRAP) --describe --all-groups

tail: ## print TOPIC (e.g. make tail TOPIC=queue.tickets) from its beginning and follow it
	@test -n "$(TOPIC)" || { echo "usage: make tail TOPIC=queue.tickets" >&2; exit 2; }
	@$(KAFKA_TOOLS_READY)
	@$(KAFKA_BIN)/kafka-console-consumer.sh --bootstrap-server $(BOOTSTRAP) --topic $(TOPIC) --from-beginning \
		--property print.timestamp=true --property print.key=true

lint: venv ## ruff check, ruff format --check and mypy
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy

format: venv ## ruff check --fix and ruff format
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)

typecheck: venv ## mypy
	$(BIN)/mypy

# One pytest run shares one throwaway Kafka + mongo-java-server (memory backend) between all tests
# (see tests/conftest.py).
test: stack lint ## lint, type-check and every test (unit, integration, end-to-end, faults) on throwaway stacks
	$(BIN)/pytest tests services

test-unit: venv ## the unit tests (no I/O)
	$(BIN)/pytest tests/unit services

test-integration: stack ## the integration tests, over a throwaway Kafka and database
	$(BIN)/pytest tests/integration

test-e2e: stack ## the end-to-end tests: several services over a throwaway stack
	$(BIN)/pytest tests/e2e

test-faults: stack ## the fault suite: kill -9, Kafka and the database stopped, poison, under steady load
	$(BIN)/pytest tests/faults

schemas: venv ## re-export the event JSON Schemas into docs/events
	$(BIN)/python -m goldenkey.contracts export-schemas docs/events

dashboards: venv ## regenerate the Grafana dashboards from deploy/grafana/dashboards.py
	$(BIN)/python deploy/grafana/dashboards.py

bench: stack ## the benchmarks, which print figures (bench/README.md)
	$(BIN)/python bench/run.py

clean: down ## stop the stack; remove .venv, .devstack (its data too) and pytest's, mypy's and ruff's caches
	rm -rf $(VENV) .devstack .pytest_cache .mypy_cache .ruff_cache
