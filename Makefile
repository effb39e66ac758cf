# BooChat: `make run` serves the app on SQLite, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run serve test install migrate check bench system-packages clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_admin
	BOOCHAT_BIND=$(HOST):$(PORT) $(BIN)/gunicorn --config python:boochat.gunicorn_conf boochat.asgi:application

# Production: every setting from the environment (README), WORKERS uvicorn workers under gunicorn.
serve: migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	BOOCHAT_BIND=$(HOST):$(PORT) BOOCHAT_WORKERS=$(WORKERS) $(BIN)/gunicorn --config python:boochat.gunicorn_conf boochat.asgi:application

test: install system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian packages the tests use: Chromium for the browser tests (Playwright's own browser download
# cannot work offline), nginx for the reverse-proxy test. RUNLEVEL=1: the nginx service is not started.
CHROMIUM ?= /usr/bin/chromium
NGINX ?= /usr/sbin/nginx
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages: $(CHROMIUM) $(NGINX)
$(CHROMIUM) $(NGINX) &:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq chromium chromium-driver nginx-light

# Every benchmark, a summary table, and bench/results/latest.json. STREAMS="500" for a shorter run;
# RAMP=1 starts the concurrent streams over one second instead of all at the same moment. The app runs
# with as many uvicorn workers as `make serve` (one per core); BENCH_WORKERS=1 gives figures per worker.
# The streams benchmark reports the medians of ROUNDS rounds.
STREAMS ?= 100 500 1000
RAMP ?= 0
ROUNDS ?= 3
BENCH_WORKERS ?= $(WORKERS)
bench: install
	BOOCHAT_BENCH_WORKERS=$(BENCH_WORKERS) $(BIN)/python bench/run_all.py --streams $(STREAMS) --ramp $(RAMP) --rounds $(ROUNDS)

# The README's pictures (docs/screenshots/), taken by the browser suite from the fake hosts.
screenshots: install system-packages
	BOOCHAT_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/e2e/test_screenshots.py -q -p no:randomly

check: install
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/mypy
	$(BIN)/ruff check boochat providers settings_app tools tests bench

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .hypothesis
