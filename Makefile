# kiteline: `make run` serves the demo, `make test` runs every test. Each target creates
# .venv on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8787

.PHONY: run test lint format typecheck bench stress crash-drill clean docs wrk chromium java shell-tools

RUN_STAMP := $(VENV)/.installed-run

$(BIN)/python:
	@echo "creating $(VENV) ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What running needs: the server and its demo extra, nothing of the dev toolchain.
# The server depends on the two small distributions beside it in this repository
# (proofs/: the audit log's proof checks; client/: the partners' client).
LOCAL_DISTS := -e ./proofs -e ./client

$(RUN_STAMP): pyproject.toml client/pyproject.toml proofs/pyproject.toml | $(BIN)/python
	@echo "installing kiteline with its demo extra into $(VENV) (the first time takes a minute or two) ..."
	$(BIN)/python -m pip install --progress-bar on $(LOCAL_DISTS) -e '.[demo]'
	@touch $(RUN_STAMP)

$(STAMP): pyproject.toml client/pyproject.toml proofs/pyproject.toml | $(BIN)/python
	@echo "installing kiteline with its dev extra into $(VENV) (the first time takes a minute or two) ..."
	$(BIN)/python -m pip install --quiet $(LOCAL_DISTS) -e '.[dev]'
	# pycanon (an independent k-anonymity check for the tests) pins an older
	# typing_extensions than anyio needs; its own code runs fine with the newer one.
	$(BIN)/python -m pip install --quiet --no-deps 'pycanon>=1.3'
	@touch $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/kiteline demo --port $(PORT)

# The Spark tests and `kiteline demo --store spark` run a local Spark Connect server,
# which needs a Java 17 runtime.
java:
	@command -v java >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq openjdk-17-jre-headless; }

# The demo prints curl and jq commands, and a test runs them as printed.
shell-tools:
	@{ command -v curl && command -v jq; } >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq curl jq; }

# The console's browser tests drive Debian's chromium through Playwright, which never
# downloads a browser of its own: install the system one (and a font with Chinese
# glyphs, for the demo's Chinese data) when either is missing.
chromium:
	@{ command -v chromium && fc-list :lang=zh | grep -q .; } >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq chromium fonts-wqy-microhei; }

# Two workers, one per core; a test file stays on one worker, since module-scoped
# servers and browsers must not outlive their own file's tests.
TEST_WORKERS ?= 2

test: $(STAMP) chromium java shell-tools
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
	$(BIN)/kiteline policy test

lint: $(STAMP)
	$(BIN)/ruff check gateway policies connectors audit tests bench client proofs
	$(BIN)/ruff format --check gateway policies connectors audit tests bench client proofs
	$(BIN)/mypy gateway policies connectors audit client/src proofs/src

format: $(STAMP)
	$(BIN)/ruff format gateway policies connectors audit tests bench client proofs
	$(BIN)/ruff check --fix gateway policies connectors audit tests bench client proofs

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# bench/many_gateways.py drives the gateways with Debian's wrk.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq wrk; }

bench: $(STAMP) wrk
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .kiteline-demo .pytest_cache .mypy_cache .ruff_cache site

# A bounded loopback load test (at most 60 s per state database): mixed reads, grant
# requests and audit searches at 16 and 64 concurrent, every answer checked against
# the audit log; on SQLite, then on the test PostgreSQL.
PG_URL ?= $(or $(KITELINE_TEST_PG_URL),postgresql://postgres@127.0.0.1:5432/test)
stress: $(STAMP)
	$(BIN)/python -m bench.stress
	$(BIN)/python -m bench.stress --state '$(PG_URL)'

# Kill a real server 500 times under concurrent reads and check the audit log each time.
crash-drill: $(STAMP)
	$(BIN)/python -m tests.gateway.audit_crash --kills 500
