# riskmap: `make run` sets everything up and serves http://127.0.0.1:8000 ; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RISKMAP := $(BIN)/riskmap
TODAY  := $(shell date +%F)
HOST   ?= 127.0.0.1
PORT   ?= 8000
SAMPLE := var/sample

.PHONY: install run data ingest serve test postgres chromium npm lint format bench scale clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# the sample city ends today: it is rebuilt once a day (same seed: same ids and places)
data: install
	@if [ ! -f $(SAMPLE)/.built-$(TODAY) ]; then \
		rm -rf $(SAMPLE) && $(RISKMAP) sample --out $(SAMPLE) && touch $(SAMPLE)/.built-$(TODAY); \
	else echo "sample city of $(TODAY) is in $(SAMPLE)"; fi

ingest: data
	$(RISKMAP) ingest communities $(SAMPLE)/communities.geojson
	$(RISKMAP) ingest units $(SAMPLE)/subdistricts.geojson
	$(RISKMAP) ingest units $(SAMPLE)/districts.geojson
	$(RISKMAP) ingest cases $(SAMPLE)/cases.csv

serve: install
	$(RISKMAP) serve --host $(HOST) --port $(PORT)

run: ingest serve

# the PostGIS tests need a PostgreSQL server: installed from Debian's packages and started here;
# the map's browser test needs Debian's Chromium (installed here too), the MapLibre browser
# test the maplibre-gl npm package (into var/npm)
test: install postgres chromium npm
	$(BIN)/python -m pytest

postgres:
	bash .ci/postgres

chromium:
	bash .ci/chromium

npm:
	bash .ci/npm

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	mkdir -p .mypy-tree/riskmap && ln -sf ../../src/riskmap/__init__.py .mypy-tree/riskmap/__init__.py
	for d in geo api tiles data; do ln -sfn ../../$$d .mypy-tree/riskmap/$$d; done
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# BENCH_ARGS="--scale --postgis" adds the scale city and the PostGIS comparison;
# bench.tiles: vector-tile latency cold and cached at z8, z11, z14, in process and over HTTP
# against tipg; bench.http: GET /v1/status over HTTP against a FastAPI + PostGIS reference
# (BENCH_ARGS also takes --workers N, --duration S, --write-readme); .ci/bench installs wrk
bench: install
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	bash .ci/bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.tiles --http $(BENCH_ARGS)
	$(BIN)/python -m bench.http $(BENCH_ARGS)

clean:
	rm -rf var $(VENV) .pytest_cache .mypy_cache .mypy-tree .ruff_cache
