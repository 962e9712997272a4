# VMGate call-rating pipeline. Every target uses the project's own venv in .venv, created on
# first use from PyPI; nothing is installed outside this folder.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev
# pytest-xdist workers for `make test` and `make integration` (CI has 2 cores; the integration
# tests mostly wait on Kafka, raters and timeouts). The workers share one Kafka broker
# (tests/support/kafka_broker.py). WORKERS=0 runs everything in one process.
WORKERS ?= 2

.PHONY: help demo test lint types unit integration kafka kafka-stop clean browser

help:
	@echo "make demo        build a synthetic network, rate it into ./demo-data and report"
	@echo "make test        install dev tools, run ruff, mypy and every test (starts its own Kafka)"
	@echo "make unit        unit tests only (no broker, no Java, no HTTP endpoint; seconds)"
	@echo "make integration the tests with a real Kafka broker and ClickHouse engine paths"
	@echo "make kafka       start a local Kafka broker (prints its bootstrap address)"
	@echo "make kafka-stop  stop it"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/vmgate-rating demo --dir demo-data

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(DEV)
	$(BIN)/mypy

unit: $(DEV)
	$(BIN)/pytest -q -m "not integration"

integration: $(DEV)
	$(BIN)/pytest -q -m integration -n $(WORKERS)

# A real headless browser for the printable statement's test: Debian's chromium, installed
# where we are root with apt (as CI runs); elsewhere that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
	       >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
	       >/dev/null; }; }; } || echo "no chromium here: the printable-page browser test is skipped"

test: lint types browser
	$(BIN)/pytest tests -q -n $(WORKERS)

kafka:
	deploy/local/kafka start

kafka-stop:
	deploy/local/kafka stop

clean:
	rm -rf $(VENV) demo-data .mypy_cache .ruff_cache .pytest_cache

.PHONY: bench bench-quick

bench: $(DEV)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' && $(BIN)/python -m benchmarks.run --full

bench-quick: $(DEV)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' && $(BIN)/python -m benchmarks.run --quick

.PHONY: bench-file

# Done-when check of issues 5 and 17: `rate` on a fresh 600,000-CDR file (1% malformed) vs the
# sensible per-row rater (checked equal to it row for row) and vs its floor, back to back.
bench-file: $(DEV)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' && $(BIN)/python -m benchmarks.offline_file --cdrs 600000 --rounds 2
