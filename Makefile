# Everything a developer runs. Only Python 3.11 and make are needed; the virtualenv is .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
PORT ?= 8000
# Only this machine by default: HOST=0.0.0.0 opens the web server to the network.
HOST ?= 127.0.0.1
FLEET_SIZE ?= 20
LONDON_FLEET_SIZE ?= 3
# Drinks per machine and hour, on average over the day: what seed-demo's week and the live fleets sell.
DEMO_SALES_PER_HOUR ?= 2
SIMULATOR ?= 1
PYTEST_ARGS ?=

# honcho assigns its own PORT to every process, so the web port travels as WEB_PORT.
export WEB_PORT = $(PORT)
export WEB_HOST = $(HOST)
export FLEET_SIZE LONDON_FLEET_SIZE DEMO_SALES_PER_HOUR

.PHONY: install run run-prod run-web run-worker run-beat run-fleet test lint format init-db seed-demo bench clean \
	messages compilemessages

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	@$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

init-db: install
	$(BIN)/python manage.py init-db

seed-demo: init-db
	$(BIN)/python manage.py seed-demo

## make run: everything on the embedded default (SQLite, no servers), or on PostgreSQL/Redis when
## DATABASE_URL/REDIS_URL are set, with a week of demo sales behind the dashboard (seed-demo) and the
## live fleets of Shanghai and London. SIMULATOR=0 leaves out the simulated fleets.
run: seed-demo
	@echo "coffeeshop: http://127.0.0.1:$(PORT)/admin/  (admin@example.com / Admin123!), listening on $(HOST)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile start web worker beat $(if $(filter 1,$(SIMULATOR)),fleet fleet-london,)

## make run-prod: the production shape on this machine (README, "Deployment"): gunicorn (WEB_WORKERS) on
## PORT, daphne for /ws/ on WS_PORT, celery (WORKER_CONCURRENCY) and beat; PostgreSQL and Redis required.
WEB_WORKERS ?= 2
WORKER_CONCURRENCY ?= 2
WS_PORT ?= 8001
# Where browsers reach daphne: admin pages served by gunicorn open their live socket there.
LIVE_WS_ORIGIN ?= ws://$(HOST):$(WS_PORT)
run-prod: install
	@$(BIN)/python -m coffeeshop.preflight
	rm -rf .data/prometheus && mkdir -p .data/prometheus
	DJANGO_ENV=production $(BIN)/python manage.py init-db
	DJANGO_ENV=production $(BIN)/python manage.py collectstatic --noinput -v 0
	DJANGO_ENV=production PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/.data/prometheus WEB_WORKERS=$(WEB_WORKERS) \
		WORKER_CONCURRENCY=$(WORKER_CONCURRENCY) WS_PORT=$(WS_PORT) LIVE_WS_ORIGIN=$(LIVE_WS_ORIGIN) \
		PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(BIN)/honcho -f Procfile.prod start

run-web: install
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

run-worker: install
	$(BIN)/celery -A coffeeshop worker --loglevel INFO --concurrency 2

run-beat: install
	$(BIN)/celery -A coffeeshop beat --loglevel INFO --scheduler coffeeshop.beat:Scheduler

run-fleet: install
	$(BIN)/python manage.py simulate-fleet --devices $(FLEET_SIZE) --sales-per-hour $(DEMO_SALES_PER_HOUR) \
		--base-url http://127.0.0.1:$(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## make messages: collect every gettext string of our code and templates into the Chinese catalogue
## (new ones with an empty msgstr, changed ones fuzzy); translate them there, then make compilemessages.
## No line numbers, so a diff shows only strings that changed. (README, "Translations".)
MESSAGES_IGNORE := .venv bench tests node_modules docs .data locale
messages: install
	$(BIN)/python manage.py makemessages --locale zh_Hans --no-location --no-obsolete \
		$(foreach dir,$(MESSAGES_IGNORE),--ignore $(dir))

compilemessages: install
	$(BIN)/python manage.py compilemessages --locale zh_Hans --ignore .venv --ignore .data

bench: install
	$(BIN)/python bench/heartbeat.py

clean:
	rm -rf $(VENV) .data
