# tickwire: `make run` runs the whole pipeline, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run status test compose-validator kcat bench lint check clean

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

# The gates first (seconds), then the tests: a failing gate fails the target.
test: $(STAMP) compose-validator ## lint, type-check and layer-check, then run the whole test suite (own broker, Redis, feed)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A test validates docker-compose.yml with Debian's docker-compose: installed here when we are root with apt;
# otherwise that one test skips and says why.
compose-validator:
	@command -v docker-compose >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& echo "installing docker-compose (apt) to validate docker-compose.yml..." \
		&& { apt-get update -qq >/dev/null 2>&1 || true; } \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1; } \
		|| echo "docker-compose not installed (needs root and apt): its validation test will skip"

# kcat against the embedded broker needs the confluent-kafka wheel's librdkafka (Debian's fails its
# ApiVersionRequest): install kcat (apt, as root) and that wheel (into .venv, not the lock); then `tickwire kcat ...`.
KCAT_WHEEL ?= confluent-kafka==2.16.1
kcat: $(STAMP) ## install kcat + the librdkafka that works with the embedded broker; use it as `tickwire kcat ARGS`
	@command -v kcat >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { apt-get update -qq >/dev/null 2>&1 || true; } \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kcat >/dev/null 2>&1; } \
		|| { echo "kcat is not installed and cannot be (needs root and apt): install it yourself"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(KCAT_WHEEL)"
	@echo "ready: $(BIN)/tickwire kcat -L   (finds the broker of a running make run)"

bench: $(STAMP) ## benchmark the pipeline against the direct design on the embedded stack (bench/results/)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

check: lint test

clean:
	rm -rf $(VENV) .tickwire .pytest_cache
