# The two commands a fresh machine needs: `make up` runs the product, `make test` passes the tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: venv up down status test test-unit bench simulate lint schema readme clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.lock
	touch $@

up: venv
	$(PY) -m deploy.local.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m deploy.local.stack down; else echo "nothing to stop"; fi

status: venv
	$(PY) -m deploy.local.stack status

test: venv
	$(PY) -m pytest -q

test-unit: venv
	$(PY) -m pytest -q tests/unit

bench: venv
	$(PY) -m bench.run

# A simulated province through its own pipeline, every figure checked (ARGS="--seed 3 --weeks 8")
simulate: venv
	$(PY) -m simulator $(ARGS)

lint: venv
	$(VENV)/bin/ruff check .

schema: venv
	$(PY) -m shared.events > docs/schema/events.schema.json

clean: down
	rm -rf .stack

readme: venv
	$(PY) -m deploy.readme_settings
