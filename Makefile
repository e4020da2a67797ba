# kiteline: `make run` serves the demo, `make test` runs every test. Each target creates
# .venv on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8787

.PHONY: run test lint format typecheck bench stress clean

$(STAMP): pyproject.toml client/pyproject.toml proofs/pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The server depends on the two small distributions beside it in this repository.
	$(BIN)/python -m pip install --quiet -e ./proofs -e ./client -e '.[dev]'
	# pycanon (an independent k-anonymity check for the tests) pins an older
	# typing_extensions than anyio needs; its own code runs fine with the newer one.
	$(BIN)/python -m pip install --quiet --no-deps 'pycanon>=1.3'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/kiteline demo --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/kiteline policy test

lint: $(STAMP)
	$(BIN)/ruff check gateway policies connectors audit tests bench
	$(BIN)/ruff format --check gateway policies connectors audit tests bench
	$(BIN)/mypy gateway policies connectors audit

format: $(STAMP)
	$(BIN)/ruff format gateway policies connectors audit tests bench
	$(BIN)/ruff check --fix gateway policies connectors audit tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .kiteline-demo .pytest_cache .mypy_cache .ruff_cache

# Kill a real server 500 times under concurrent reads and check the audit log each time.
stress: $(STAMP)
	$(BIN)/python -m tests.gateway.audit_crash --kills 500
