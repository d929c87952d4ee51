# tapedeck: `make run` starts the workstation, `make test` runs every check.
# Each target creates or reuses .venv and installs what it needs; all are idempotent.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# The benchmarks also need the `bench` extra (their references); run and test do not.
BENCH_STAMP := $(VENV)/.installed-bench-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint bench screenshot clean help

help:
	@echo "make run    start the workstation on the bundled replay"
	@echo "make test   ruff, mypy and the test suite"
	@echo "make lint   ruff and mypy only"
	@echo "make bench  run the benchmarks (bench/[!_]*.py), one JSON line each (installs the bench extra)"
	@echo "make screenshot  save docs/workstation.svg from the app"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tapedeck needs Python 3.11 or newer (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(BIN)/tapedeck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
	@rm -f $(VENV)/.installed-bench-*
	@touch $@

bench: $(BENCH_STAMP)
	@for script in bench/[!_]*.py; do $(BIN)/python $$script || exit 1; done

screenshot: $(STAMP)
	$(BIN)/python docs/make_screenshot.py docs/workstation.svg

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
