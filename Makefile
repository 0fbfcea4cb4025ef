# The two commands of the README: `make run` and `make test`.
# .python-version says 3.12; pyenv's python3 resolves it in this folder.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

WORKERS ?= 3

.PHONY: run serve test install install-dev install-bench lint typecheck pytest browser-deps load-test restart-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the requirements change.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: requirements.txt requirements-dev.txt requirements-bench.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-bench: $(VENV)/.installed-bench

# A demo password made once per checkout (never committed), so logins stay the same.
.demo-password:
	@$(BIN)/python -c "import secrets; print(secrets.token_urlsafe(12))" > $@

run: install .demo-password
	$(BIN)/python manage.py migrate --no-input
	DEMO_PASSWORD="$$(cat .demo-password)" $(BIN)/python manage.py seed_demo --if-empty
	@echo ""
	@echo "Relocation is at http://$(HOST):$(PORT)/  (log in with a demo login above)"
	@echo ""
	@# The background worker (roster imports) runs beside the server and stops with it.
	$(BIN)/python manage.py db_worker --no-reload --verbosity 0 & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production serving: gunicorn + whitenoise with DEBUG off, and the background worker. Needs SECRET_KEY,
# DATABASE_URL (PostgreSQL) and ALLOWED_HOSTS in the environment; see docs/deploy.md.
serve: install
	@test -n "$$SECRET_KEY" || { echo "Set SECRET_KEY (and DATABASE_URL, ALLOWED_HOSTS): see docs/deploy.md"; exit 1; }
	DEBUG=false $(BIN)/python manage.py check --deploy --fail-level WARNING
	DEBUG=false $(BIN)/python manage.py collectstatic --no-input --verbosity 0
	DEBUG=false $(BIN)/python manage.py migrate --no-input
	DEBUG=false $(BIN)/python manage.py db_worker --no-reload & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  DEBUG=false $(BIN)/gunicorn relocation.wsgi --bind $(HOST):$(PORT) --workers $(WORKERS) \
	  --access-logfile - --forwarded-allow-ips "$${FORWARDED_ALLOW_IPS:-127.0.0.1}"

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

# Debian's Chromium for the browser tests (Playwright cannot download its own here).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: install Debian's chromium package to run the browser tests."; fi; \
	fi

test: lint typecheck browser-deps pytest

# Issue #7's checks, outside the test suite (minutes each; they start and stop their own
# PostgreSQL and gunicorn on loopback): see docs/load-and-faults.md. LOAD_ARGS passes options.
load-test: install-bench
	bench/load_test.sh $(LOAD_ARGS)

restart-check: install-dev
	$(BIN)/python bench/pg_restart_check.py $(LOAD_ARGS)

clean:
	rm -rf $(VENV) .demo-password staticfiles
