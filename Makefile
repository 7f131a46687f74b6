# Two entry points: `make run` serves the example graphs, `make test` runs every check and test.
# Both install what they need into .venv first.

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: run test lint bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

run: $(BIN)/.installed
	$(BIN)/stead run --config examples/langgraph.json

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

# The second pass runs the API suite and the LangGraph SDK's own integration suite again on the
# production runtime: PostgreSQL + Redis.
test: lint
	$(BIN)/python -m pytest
	STEAD_TEST_DATABASE=postgres $(BIN)/python -m pytest tests/integration tests/sdk_suite \
		--ignore=tests/integration/test_postgres.py

bench: $(BIN)/.installed
	$(BIN)/python bench/latency.py
