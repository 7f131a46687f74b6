# Two entry points: `make run` serves the example graphs, `make test` runs every check and test.
# Both install what they need into .venv first: serving needs the package alone, the checks and
# tests its dev tools too.

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: run test lint bench test-services test-containers test-scale

$(BIN)/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(BIN)/.installed-serve: pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet -e .
	touch $@

# The dev install holds everything serving needs, so it marks that install done as well.
$(BIN)/.installed-dev: pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(BIN)/.installed-serve

run: $(BIN)/.installed-serve
	$(BIN)/stead run --config examples/langgraph.json

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

# The tests start their own PostgreSQL 15 and Redis; this installs them when they are missing.
test-services:
	sh scripts/install-test-services

# The second pass runs the API suite and the LangGraph SDK's own integration suite again on the
# production runtime: PostgreSQL + Redis. It skips the files that start their own PostgreSQL and
# Redis whatever the session's runtime: their first pass covered them.
OWN_RUNTIME := test_postgres test_connection_buffers test_backup test_doctor test_topology test_outages test_redis_broker_load \
	test_redis_eviction test_prepared_statements test_stateless_storage test_thread_active_runs test_assistant_cache \
	test_claim_limit test_attempt_end test_sqlite_wal
# Test files run two at a time (pytest-xdist; a file's tests in one process, sharing its
# fixtures): most of a test's time goes to waiting on the servers it starts. Tests marked `alone`
# run after them, by themselves.
PARALLEL := -n 2 --dist loadfile
test: lint test-services
	$(BIN)/python -m pytest $(PARALLEL) -m "not alone"
	$(BIN)/python -m pytest -m alone
	STEAD_TEST_DATABASE=postgres $(BIN)/python -m pytest $(PARALLEL) tests/integration tests/sdk_suite \
		$(foreach name,$(OWN_RUNTIME),--ignore=tests/integration/$(name).py)
	$(MAKE) test-scale
	$(MAKE) test-containers

# The scale tier seeds PostgreSQL with a million threads and ten million checkpoints, then checks
# the plans of the statements a live server runs (tests/scale). Its own budget: 10 minutes,
# about 2 on a 2-core machine.
test-scale: $(BIN)/.installed-dev test-services
	STEAD_TEST_SCALE=1 timeout -s INT -k 60 600 $(BIN)/python -m pytest tests/scale --timeout 540

# The container tier builds and runs the images and compose stacks on a private docker engine
# (tests/containers). Its own budget: 15 minutes, about 4 on a fresh 2-core machine; the budget
# interrupts pytest (SIGINT) so that the engine is still stopped and removed.
test-containers: $(BIN)/.installed-dev test-services
	STEAD_TEST_CONTAINERS=1 timeout -s INT -k 60 900 $(BIN)/python -m pytest tests/containers --timeout 600

# Stead (embedded, and PostgreSQL + Redis) beside the official server: the table of bench/README.md.
bench: $(BIN)/.installed-dev test-services
	$(BIN)/python bench/compare.py
