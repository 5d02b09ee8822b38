# landlink: two commands on a fresh Debian machine.
#   make demo   installs what is missing, starts a local PostGIS, loads the sample city,
#               runs the analyses and serves the API and map on http://127.0.0.1:8000
#   make test   does its own set-up and runs the whole suite against a real PostGIS
SHELL := /bin/bash
# The venv's interpreter: Debian's own /usr/bin/python3 where it is 3.11 or newer (the one
# python3-venv below is for; a one-row `landlink import` started 0.1-0.2 s sooner on it than on
# a python3 built from source as a shared library without --enable-optimizations,
# docs/BENCHMARKS.md), else the python3 on PATH. `make PYTHON=...` chooses another.
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
LANDLINK := $(BIN)/landlink
DEB_PACKAGES := postgresql-15 postgresql-15-postgis-3 gdal-bin python3-venv chromium nodejs npm \
  poppler-utils fonts-wqy-microhei libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed

.PHONY: demo test deps web venv db migrate load analyse serve lint bench clean-db help

help:
	@echo "make demo   - install, start PostGIS, load the sample city, analyse, serve on :8000"
	@echo "make test   - install, start PostGIS, run the whole test suite"
	@echo "make lint   - ruff"
	@echo "make bench  - benchmarks (see docs/BENCHMARKS.md)"

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  case $$p in nodejs|npm|chromium) command -v $${p%js} >/dev/null && continue;; esac; \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@# the project's own bytecode, as pip compiles a wheel's: where PYTHONDONTWRITEBYTECODE is
	@# set (containers, CI), every command would otherwise compile app/ and gis/ (0.08 s)
	$(BIN)/python -m compileall -q app gis
	@touch $(STAMP)

venv: $(STAMP)

# The web pages' JavaScript from npm (MapLibre GL JS and ECharts for the map page, Swagger UI
# and ReDoc for /docs and /redoc; playwright-core for the e2e tests), copied into
# app/static/vendor/ (git-ignored): no page loads anything from a CDN.
WEB_VENDOR := app/static/vendor
WEB_STAMP := $(WEB_VENDOR)/.vendored
$(WEB_STAMP): package.json package-lock.json
	SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(WEB_VENDOR)
	cp node_modules/maplibre-gl/dist/maplibre-gl.js node_modules/maplibre-gl/dist/maplibre-gl.css \
	  node_modules/echarts/dist/echarts.min.js \
	  node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
	  $(WEB_VENDOR)/
	cp node_modules/swagger-ui-dist/favicon-32x32.png $(WEB_VENDOR)/favicon.png
	@# ReDoc's menu shows a logo from cdn.redoc.ly: an empty image instead (it hides itself)
	sed 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:,#' \
	  node_modules/redoc/bundles/redoc.standalone.js > $(WEB_VENDOR)/redoc.standalone.js
	@touch $@

web: deps $(WEB_STAMP)

db: deps venv
	@if [ -z "$$DATABASE_URL" ]; then $(LANDLINK) db up; fi

migrate: db
	$(LANDLINK) migrate

load: migrate
	$(LANDLINK) import-dir sample_shapefiles

# The sample city is a survey dated by its reference_date (sample_shapefiles/planted.json):
# the three-lands detection judges deadlines as of that date, so the planted cases show as planted.
SAMPLE_AS_OF = $(shell sed -n 's/.*"reference_date": *"\([0-9-]*\)".*/\1/p' sample_shapefiles/planted.json)
analyse: load
	@$(LANDLINK) analyse-all $(if $(SAMPLE_AS_OF),--as-of $(SAMPLE_AS_OF))

serve:
	$(LANDLINK) serve --host 127.0.0.1 --port 8000

demo: analyse web
	@echo "serving landlink on http://127.0.0.1:8000  (API docs: /docs, OGC API: /ogc)"
	$(LANDLINK) serve --host 127.0.0.1 --port 8000

# The suite on TEST_WORKERS processes (pytest-xdist; each has its own test databases), a whole
# test file to one process (its module fixtures are built once), the slowest files first
# (tests/conftest.py orders them). TEST_WORKERS=0 runs it in this process alone.
TEST_WORKERS ?= 2
test: db web
	$(BIN)/ruff check app gis tests bench migrations
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 \
	  $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

lint: venv
	$(BIN)/ruff check app gis tests bench migrations
	$(BIN)/ruff format --check app gis tests bench migrations

bench: migrate
	$(BIN)/python bench/import.py
	$(BIN)/python bench/plan.py

clean-db:
	-$(LANDLINK) db down
	rm -rf "$$(readlink -f .pgdata)" .pgdata  # .pgdata may link into /var/lib/postgresql
