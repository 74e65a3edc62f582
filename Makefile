# orderbridge developer commands. Everything installs into .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# checkov runs from a venv of its own; its pin is in requirements-checkov.txt.
CHECKOV := .venv-checkov/bin/checkov

.PHONY: setup test lint format demo up schema openapi bench clean browser

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements-dev.txt layers/orderbridge/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

## make browser: Debian's chromium for the browser tests (tests/e2e); Playwright uses it, never its own download
browser:
	@if [ -x /usr/bin/chromium ]; then /usr/bin/chromium --version; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; fi

## make test: lint, template checks and the whole test suite (what CI runs)
test: setup lint
	$(BIN)/pytest -n 2 --dist loadfile -q

lint: setup $(CHECKOV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules
	$(CHECKOV) -f template.yaml --framework cloudformation --compact --quiet --skip-download

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make demo: bring the system up locally and send every sample in events/ through it
##   options: make demo ARGS="--verbose" (log lines on the terminal; else .orderbridge-local/demo.log)
demo: setup
	$(BIN)/orderbridge-local demo $(ARGS)

## make up: keep the local system running and print its endpoints; reloads the setup file when it changes
##   options: make up ARGS="--port 3001 --host 0.0.0.0 --config my-store.json --api-shape http"
##   (every option: .venv/bin/orderbridge-local up --help)
up: setup
	$(BIN)/orderbridge-local up $(ARGS)

## make bench: every benchmark (about 2 minutes); tables printed, JSON in bench/results/
bench: setup
	$(BIN)/python bench/run_all.py

## make schema: regenerate the JSON Schema of queue events from the model
schema: setup
	$(BIN)/python -m orderbridge.models.schema > schemas/order-event.schema.json

## make openapi: regenerate the intake's OpenAPI document from its routes and models
openapi: setup
	$(BIN)/python -m orderbridge.intake.openapi functions/intake/app.py > openapi/intake.openapi.json

$(CHECKOV): requirements-checkov.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet -r requirements-checkov.txt
	touch $@

clean:
	rm -rf $(VENV) .venv-checkov .pytest_cache .ruff_cache
