PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint schema

# A virtualenv with the pinned dependencies (constraints.txt), rebuilt when they change.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Serve GraphQL on http://127.0.0.1:8000/graphql over an embedded PostgreSQL with demo news
# (set DATABASE_URL to use your own database instead).
run: $(STAMP)
	$(BIN)/newsgraph serve --demo

# Every check: lint, format, types, then the test suite (which also checks the schema contract).
test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Re-export schema/schema.graphql after changing the GraphQL types.
schema: $(STAMP)
	$(BIN)/newsgraph export-schema --output schema/schema.graphql
