# The two commands a fresh machine needs: `make up` runs the product, `make test` passes the tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: venv tools letter-font up down status test test-unit bench simulate rebuild lint schema readme clean

# Debian tools some tests drive: docker-compose (compose config), promtool and prometheus (rules,
# dashboards), headless Chromium and its driver (the web pages), poppler's pdftoppm, pdffonts and
# pdftotext (the PDF letter).
TOOLS    := docker-compose promtool prometheus chromium chromedriver pdftoppm pdffonts pdftotext
PACKAGES := docker-compose prometheus chromium chromium-driver poppler-utils
# The PDF letter's font: a serif metric-compatible with Times New Roman, with the Vietnamese letters
# (Liberation Serif 2.x; Debian 12 ships it as fonts-liberation2, later releases as fonts-liberation).
FONT_CHECK := $(PY) -c "from services.deadline.letters.render import letter_font; letter_font()" 2>/dev/null

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.lock
	touch $@

up: venv
	@$(MAKE) -s letter-font || echo "warning: no font for the PDF letters; they answer 503 until one is installed"
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

# Installs the PDF letter's font when it can (root and apt); otherwise stops naming the package.
letter-font: venv
	@$(FONT_CHECK) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq >/dev/null; \
	    pkg=fonts-liberation2; apt-cache show $$pkg >/dev/null 2>&1 || pkg=fonts-liberation; \
	    echo "installing the Debian package $$pkg (the PDF letter's font)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkg >/dev/null && $(FONT_CHECK); \
	  else false; fi; } || { echo "no font for the PDF letter: install Debian's fonts-liberation2 (or fonts-croscore)"; exit 1; }

test: venv tools letter-font lint
	$(PY) -m pytest -q

test-unit: venv
	$(PY) -m pytest -q tests/unit

# BENCHES="bench.freshness bench.e2e": only these, merged into the day's results
bench: venv
	$(PY) -m bench.run $(BENCHES)

# A simulated province through its own pipeline, every figure checked (ARGS="--seed 3 --weeks 8")
simulate: venv
	$(PY) -m simulator $(ARGS)

# After a rule changes: both projections rebuilt from the log into their next generation, then the
# running services switch to them (ADR 0020); against `make up`'s stack when there is one
rebuild: venv
	@set -a; if [ -f .stack/stack.env ]; then . ./.stack/stack.env; fi; set +a; \
	  $(PY) -m services.deadline.rebuild && $(PY) -m services.metrics.rebuild

# ruff, then mypy on the packages pyproject.toml's [tool.mypy] names (strict on shared/domain/)
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

schema: venv
	$(PY) -m shared.events > docs/schema/events.schema.json

clean: down
	rm -rf .stack

readme: venv
	$(PY) -m deploy.readme_settings
