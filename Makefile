# tickwire: `make run` runs the whole pipeline, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run status test bench lint check clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tickwire needs Python >= 3.11 (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

run: $(STAMP) ## run the pipeline on the embedded default (or the servers your env vars name) until Ctrl-C
	$(BIN)/tickwire run

status: $(STAMP) ## live table of prices and P&L (the Redis of a running `make run`, or REDIS_URL)
	$(BIN)/tickwire status

test: $(STAMP) ## run the whole test suite (starts its own broker, Redis and Alpaca feed)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) ## benchmark the pipeline against the direct design on the embedded stack (bench/results/)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

check: lint test

clean:
	rm -rf $(VENV) .tickwire .pytest_cache
