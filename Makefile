# tapedeck: `make run` starts the workstation, `make test` runs every check.
# Each target creates or reuses .venv and installs what it needs; all are idempotent.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# The benchmarks also need the `bench` extra (their references); run and test do not.
BENCH_STAMP := $(VENV)/.installed-bench-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# The engine's hot path, compiled to C extensions with mypyc (core/native.py says how and
# why): rebuilt when one of them changes; TAPEDECK_NATIVE=0 keeps everything pure Python.
NATIVE_MODULES := core/model.py core/clock.py core/bus.py core/market.py core/bar_path.py \
	core/portfolio.py core/orders.py core/order_checks.py core/risk.py core/brokers/paper.py \
	core/sim_desk.py core/backtest.py core/metrics.py core/strategies/runner.py \
	core/strategies/series.py
NATIVE_STAMP := $(VENV)/.native

.PHONY: run test lint native bench screenshot clean help

help:
	@echo "make run    start the workstation on the bundled replay"
	@echo "make test   ruff, mypy and the test suite"
	@echo "make lint   ruff and mypy only"
	@echo "make native compile the engine's hot modules (TAPEDECK_NATIVE=0: remove them)"
	@echo "make bench  run the benchmarks (bench/[!_]*.py), one JSON line each (installs the bench extra)"
	@echo "make screenshot  save docs/workstation.svg from the app"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tapedeck needs Python 3.11 or newer (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

$(NATIVE_STAMP): $(STAMP) $(NATIVE_MODULES)
	@if [ "$$TAPEDECK_NATIVE" = 0 ]; then \
		$(BIN)/python -m core.native remove; echo "TAPEDECK_NATIVE=0: the engine runs as pure Python"; \
	else \
		echo "compiling the engine's hot modules (mypyc, about a minute)"; \
		$(BIN)/python -m core.native build $(NATIVE_MODULES) > $(VENV)/native-build.log 2>&1 \
		|| { $(BIN)/python -m core.native remove; \
		     echo "warning: compiling failed (see $(VENV)/native-build.log): the engine runs as pure Python, slower"; }; \
	fi
	@touch $@

native:
	@rm -f $(NATIVE_STAMP)
	@$(MAKE) --no-print-directory $(NATIVE_STAMP)

run: $(NATIVE_STAMP)
	$(BIN)/tapedeck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint $(NATIVE_STAMP)
	$(BIN)/python -m pytest -q

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
	@rm -f $(VENV)/.installed-bench-*
	@touch $@

bench: $(BENCH_STAMP) $(NATIVE_STAMP)
	@for script in bench/[!_]*.py; do $(BIN)/python $$script || exit 1; done

screenshot: $(STAMP)
	$(BIN)/python docs/make_screenshot.py docs/workstation.svg

clean:
	-test -x $(BIN)/python && $(BIN)/python -m core.native remove
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
