# The two commands a fresh machine needs: `make up` runs the product, `make test` passes the tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: venv tools up down status test test-unit bench simulate lint schema readme clean

# Debian tools some tests drive: docker-compose (compose config), promtool and prometheus (rules,
# dashboards), headless Chromium and its driver (the web pages).
TOOLS    := docker-compose promtool prometheus chromium chromedriver
PACKAGES := docker-compose prometheus chromium chromium-driver

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

# Installs the Debian tools the tests need when it can (root and apt); otherwise stops at once naming them.
tools:
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages for the tests:$$missing"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PACKAGES) >/dev/null \
	      || { echo "could not install: $(PACKAGES)"; exit 1; }; \
	  else \
	    echo "missing tools:$$missing; install the Debian packages: $(PACKAGES)"; exit 1; \
	  fi; \
	fi

test: venv tools
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
