# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= kept-data

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.server: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.server

## run: install kept with the server and run `kept serve` on the embedded store
run: $(VENV)/.server
	$(BIN)/kept serve --data $(DATA)

## test: install everything the tests need, then lint, type-check and run all tests
test: $(VENV)/.dev lint typecheck pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy resolves modules by folder name; the package maps folders onto `kept.*`, so it
# checks a tree of links laid out the way the wheel is.
typecheck: $(VENV)/.dev
	rm -rf build/typecheck && mkdir -p build/typecheck/kept
	ln -s $(CURDIR)/sdk/* build/typecheck/kept/
	for d in ingest analytics dashboards; do ln -s $(CURDIR)/$$d build/typecheck/kept/$$d; done
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p kept

pytest: $(VENV)/.dev
	$(BIN)/pytest

## bench: print intake throughput and SDK enqueue latency on this machine
bench: $(VENV)/.dev
	$(BIN)/python benchmarks/intake.py
	$(BIN)/python benchmarks/sdk_enqueue.py

clean:
	rm -rf $(VENV) build dist *.egg-info
