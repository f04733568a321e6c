# The two commands (see README): `make run` and `make test`. Both need only Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
HOST ?= 127.0.0.1
PORT ?= 8000
# The suite runs on every core (pytest-xdist): about 7 minutes instead of 11 on two.
PYTEST_WORKERS ?= auto

.PHONY: run test test-at install install-dev install-bench lint lock system-packages bench loadtest messages clean

$(VENV)/.runtime: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock
	$(PIP) install -r requirements-dev.lock
	touch $@

# The benchmarks need the runtime and a local SMTP server only (half the install time of the test tools).
$(VENV)/.bench: $(VENV)/.runtime requirements-dev.lock
	$(PIP) install -c requirements-dev.lock aiosmtpd
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev
install-bench: $(VENV)/.bench

## Set up and start the service on the embedded default, with demo data.
run: install
	@echo "setting up the demo database (a minute the first time)..."
	@LOG_LEVEL=$${LOG_LEVEL:-WARNING} $(PY) manage.py migrate --noinput -v 0
	@LOG_LEVEL=$${LOG_LEVEL:-WARNING} $(PY) manage.py seed_demo -v 0
	@$(PY) manage.py rundemo --host $(HOST) --port $(PORT)

## Install everything and run the whole test suite (lint first): on the embedded default, then the
## tests that need PostgreSQL on a throwaway server of their own (tests/with_postgres.py).
test: install-dev system-packages
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
	$(PY) -m tests.with_postgres

## The whole suite at a faked moment (libfaketime), e.g. make test-at MOMENT='2027-01-31 23:50:00 +08:00';
## without MOMENT, the one CI picks today from scripts/faked_moments.txt.
test-at: install-dev system-packages
	@moment="$${MOMENT:-$$(sh scripts/faked_moment.sh)}"; echo "faked moment: $$moment"; \
	faketime "$$moment" $(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

system-packages:
	@sh scripts/ensure_system_packages.sh

lint: install-dev
	$(VENV)/bin/ruff check .

## Recompute the lock files from pyproject.toml (needs the registry).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip -q install .
	.lockvenv/bin/pip freeze --exclude instrumentshare > requirements.lock
	.lockvenv/bin/pip -q install '.[test]'
	.lockvenv/bin/pip freeze --exclude instrumentshare > requirements-dev.lock
	rm -rf .lockvenv

messages: install
	$(PY) manage.py makemessages -l zh_Hans --ignore '.venv/*' --ignore 'var/*'
	$(PY) manage.py compilemessages -l zh_Hans --ignore ".venv/*"

clean:
	rm -rf $(VENV) var

## Benchmarks at city scale on PostgreSQL + Redis (README, "Performance"): builds the city in the
## database `bench`, runs every benchmark, prints the table, writes var/bench/<time>.json.
## `make bench BENCH_ARGS=--quick` is the CI scale (300 instruments, 3 months).
bench: install-bench
	$(PY) -m tests.benchmarks $(BENCH_ARGS)

## Five minutes of mixed traffic against gunicorn + a worker on PostgreSQL + Redis (LOAD_SECONDS to change).
loadtest: install-bench
	$(PY) -m tests.benchmarks.loadtest --seconds $${LOAD_SECONDS:-300} --clients 8
