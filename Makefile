# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= kept-data
# A real Kafka broker (Apache Kafka 4, KRaft, from Maven Central) for the Kafka tests:
# see deploy/kafka-local.
KAFKA_LIBS := .tools/kafka/libs
# promtool (and prometheus) from Debian's package for the deploy tests: see deploy/tools.
PROMTOOL := .tools/prometheus/promtool

.PHONY: run test lint imports typecheck pytest bench clean browser kafka-up kafka-down clickhouse-up clickhouse-down

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.server: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,test-export]'
	touch $@ $(VENV)/.server

## run: install kept with the server and run `kept serve` on the embedded store
run: $(VENV)/.server
	$(BIN)/kept serve --data $(DATA)

## test: install everything the tests need, then lint, type-check and run all tests
test: $(VENV)/.dev $(KAFKA_LIBS) browser lint imports typecheck pytest

$(KAFKA_LIBS):
	bash deploy/kafka-local/kafka.sh install

$(PROMTOOL):
	bash deploy/tools/install-prometheus.sh

## kafka-up / kafka-down: a local Kafka 4 broker on 127.0.0.1:9092; `make kafka-up NODES=3`:
## a 3-node cluster on 127.0.0.1:9092,9093,9094 (replication factor 3, min.insync.replicas=2)
NODES ?= 1
kafka-up: $(KAFKA_LIBS)
	bash deploy/kafka-local/kafka.sh start --nodes $(NODES)

# Stops the single node and the cluster, whichever runs.
kafka-down:
	bash deploy/kafka-local/kafka.sh stop
	bash deploy/kafka-local/kafka.sh stop --nodes 3

# A real ClickHouse server from the chdb-core wheel (deploy/clickhouse-local); the tests
# start their own on free ports.
CLICKHOUSE_DATA ?= .tools/clickhouse-data

## clickhouse-up / clickhouse-down: ClickHouse on 127.0.0.1:18123 (KEPT_DSN=http://default:@127.0.0.1:18123)
clickhouse-up: $(VENV)/.server
	@mkdir -p $(CLICKHOUSE_DATA)
	@nohup $(BIN)/python deploy/clickhouse-local/clickhouse.py --data $(CLICKHOUSE_DATA) \
		> $(CLICKHOUSE_DATA)/server.log 2>&1 & echo $$! > $(CLICKHOUSE_DATA)/server.pid
	@for i in $$(seq 1 60); do \
		if curl -sf http://127.0.0.1:18123/ping > /dev/null; then \
			echo "ClickHouse on http://127.0.0.1:18123"; exit 0; fi; sleep 1; done; \
		echo "ClickHouse did not start: see $(CLICKHOUSE_DATA)/server.log"; exit 1

clickhouse-down:
	@if [ -f $(CLICKHOUSE_DATA)/server.pid ]; then \
		kill $$(cat $(CLICKHOUSE_DATA)/server.pid) && rm $(CLICKHOUSE_DATA)/server.pid; fi

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads its source roots and packages (the tests included) from pyproject.toml.
typecheck: $(VENV)/.dev
	$(BIN)/mypy

## imports: the layering contracts of README "Architecture" (import-linter)
imports: $(VENV)/.dev
	$(BIN)/lint-imports

# The dashboard's browser test drives Debian's Chromium; apt runs only when it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; fi

# Two passes: everything on the embedded store, then the tests that touch a store (marked
# `store` by tests/conftest.py) again on a real ClickHouse server over http://, which the
# fixtures start. The server-only tests (`clickhouse_server`) ran in the first pass already.
pytest: $(VENV)/.dev $(KAFKA_LIBS) $(PROMTOOL) browser
	$(BIN)/pytest
	KEPT_TEST_STORE=clickhouse $(BIN)/pytest -m "store and not clickhouse_server"

# The SDKs that benchmarks/sdk_peers.py compares kept's call with (benchmark-only).
$(VENV)/.bench-peers: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[bench-peers]'
	touch $@

## bench: print throughput, latency and memory figures on this machine (takes a while)
bench: $(VENV)/.dev $(VENV)/.bench-peers $(KAFKA_LIBS)
	$(BIN)/python benchmarks/intake.py
	$(BIN)/python benchmarks/otlp.py
	$(BIN)/python benchmarks/attacks.py
	$(BIN)/python benchmarks/sdk_enqueue.py
	$(BIN)/python benchmarks/sdk_peers.py
	$(BIN)/python benchmarks/sdk_busy_app.py
	$(BIN)/python benchmarks/dashboard.py
	$(BIN)/python benchmarks/kafka.py
	$(BIN)/python benchmarks/analytics.py
	$(BIN)/python benchmarks/alerts.py
	$(BIN)/python benchmarks/export.py

clean:
	rm -rf $(VENV) build dist *.egg-info
