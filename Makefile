# Tascade: `make run` tries it on a bare machine (SQLite, no Redis); `make test` runs the
# suite on the local PostgreSQL. Both set up the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PGURL ?= postgres://postgres@127.0.0.1:5432/tascade
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv dev lint format schema bench bench-pages bench-metrics bench-paths demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install --quiet -e .

dev: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"

run: venv
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

test: dev
	@createdb -h 127.0.0.1 -U postgres tascade 2>/dev/null || true
	TASCADE_DATABASE_URL=$(PGURL) $(BIN)/pytest

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: dev
	$(BIN)/python manage.py spectacular --validate --file docs/openapi.yaml

bench: dev
	TASCADE_DATABASE_URL=$(PGURL) $(BIN)/python benchmarks/core.py
	$(BIN)/python benchmarks/mcp_tools.py

bench-pages: dev
	TASCADE_DATABASE_URL=$(PGURL) $(BIN)/python benchmarks/pages.py

bench-metrics: dev
	TASCADE_DATABASE_URL=$(PGURL) $(BIN)/python benchmarks/metrics.py

bench-paths: dev
	TASCADE_DATABASE_URL=$(PGURL) $(BIN)/python benchmarks/paths.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

demo: venv
	$(BIN)/python -m tascade_worker.demo
