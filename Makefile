# Lockstep: `make run` sets up and serves the app; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
API_HOST ?= 127.0.0.1
API_PORT ?= 8700
DEMO_TENANTS ?= 5000
DEMO_SEED    ?= 1
PLAN   ?= plan/90-day-plan.yaml

.PHONY: run api setup install install-dev migrate test lint format bench bench-full clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The audit log's MAC key (docs/security.md): kept in a file outside the database, made on first run.
AUDIT_KEY_FILE ?= $(CURDIR)/data/audit.key
setup run: export LOCKSTEP_AUDIT_KEY_FILE ?= $(AUDIT_KEY_FILE)

## Migrate, sync the plan, load demo data when the database has no tenants, close ended weeks.
setup: install
	mkdir -p data
	@test -n "$$LOCKSTEP_AUDIT_KEY" || test -s "$$LOCKSTEP_AUDIT_KEY_FILE" || { \
		(umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_hex(32))" > "$$LOCKSTEP_AUDIT_KEY_FILE") \
		&& echo "made the audit key $$LOCKSTEP_AUDIT_KEY_FILE (keep a copy away from the database)"; }
	$(BIN)/python -m lockstep db upgrade
	$(BIN)/python -m lockstep plan sync $(PLAN)
	$(BIN)/python -m lockstep demo --if-empty --tenants $(DEMO_TENANTS) --seed $(DEMO_SEED)
	$(BIN)/python -m lockstep snapshot backfill

## Share links are built on LOCKSTEP_PUBLIC_URL; unset, it follows PORT (PORT=8601 make run).
run: setup
	LOCKSTEP_PUBLIC_URL="$${LOCKSTEP_PUBLIC_URL:-http://127.0.0.1:$(PORT)}" $(BIN)/streamlit run serve.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

## The HTTP API (README, "The ingest API") on the same database as `make run`: migrate, then serve.
api: install
	mkdir -p data
	$(BIN)/python -m lockstep db upgrade
	$(BIN)/python -m lockstep api --host $(API_HOST) --port $(API_PORT)

lint: install-dev
	$(BIN)/ruff check .

format: install-dev
	$(BIN)/ruff format lockstep pages tests benchmarks app.py migrations

test: install-dev lint
	$(BIN)/python -m pytest -q -n 2

## Benchmarks (figures in benchmarks/README.md): 100,000 tenants / 2M events; bench-full: 1,000,000 / 20M.
## Two datasets: benchmarks/datasets.py (demo generator) and benchmarks/zipf.py (Zipf-sized books, CSV import).
bench: install-dev
	$(BIN)/python -m benchmarks.datasets --size 100k
	$(BIN)/python -m benchmarks.zipf --size 100k
	$(BIN)/python -m benchmarks.ingest --rows 1000000 --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
	$(BIN)/python -m benchmarks.snapshots --size 100k
	$(BIN)/python -m benchmarks.memory --size 100k --backend both
	$(BIN)/python -m benchmarks.naive --size 100k
	$(BIN)/python -m benchmarks.duckdb_ref --size 100k
	$(BIN)/python -m benchmarks.queries --size 100k --dataset both
	$(BIN)/python -m benchmarks.pages --size 100k
	$(BIN)/python -m benchmarks.small_import --size 100k
	$(BIN)/python -m benchmarks.api_ingest --size 100k
	$(BIN)/python -m benchmarks.ingest_weekly --backend sqlite --tenants 20000 --base-events 200000 --weekly-events 30000 --workdir benchmarks/out/weekly_small

bench-full: install-dev
	$(BIN)/python -m benchmarks.datasets --size 1m
	$(BIN)/python -m benchmarks.zipf --size 1m
	$(BIN)/python -m benchmarks.snapshots --size 1m
	$(BIN)/python -m benchmarks.memory --size 1m --backend both
	$(BIN)/python -m benchmarks.duckdb_ref --size 1m
	$(BIN)/python -m benchmarks.queries --size 1m --dataset both
	$(BIN)/python -m benchmarks.pages --size 1m
	$(BIN)/python -m benchmarks.small_import --size 1m
	$(BIN)/python -m benchmarks.ingest_weekly --backend sqlite
	$(BIN)/python -m benchmarks.ingest_weekly --backend postgresql

clean:
	rm -rf $(VENV) data/lockstep.db data/lockstep.db-*
