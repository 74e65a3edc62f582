# orderbridge developer commands. Everything installs into .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup test lint format demo up schema openapi bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements-dev.txt layers/orderbridge/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

## make test: lint, template checks and the whole test suite (what CI runs)
test: setup lint
	$(BIN)/pytest -n 2 --dist loadfile -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make demo: bring the system up locally and send every sample in events/ through it
demo: setup
	$(BIN)/orderbridge-local demo

## make up: keep the local system running and print its endpoints
up: setup
	$(BIN)/orderbridge-local up

## make bench: every benchmark (about 2 minutes); tables printed, JSON in bench/results/
bench: setup
	$(BIN)/python bench/run_all.py

## make schema: regenerate the JSON Schema of queue events from the model
schema: setup
	$(BIN)/python -m orderbridge.models.schema > schemas/order-event.schema.json

## make openapi: regenerate the intake's OpenAPI document from its routes and models
openapi: setup
	$(BIN)/python -m orderbridge.intake.openapi functions/intake/app.py > openapi/intake.openapi.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
