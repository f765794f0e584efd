# tickwire: `make run` runs the whole pipeline, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run status test broker-runtime test-tools bench soak lint check clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tickwire needs Python >= 3.11 (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# Debian packages installed with apt when we are root and they are missing; otherwise say what is missing.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
define apt_need
	@missing=""; for pair in $(1); do cmd=$${pair%%=*}; pkg=$${pair#*=}; \
		command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing (apt)..."; { apt-get update -qq >/dev/null 2>&1 || true; }; \
			$(APT_INSTALL)$$missing >/dev/null 2>&1 || echo "apt-get could not install$$missing$(2)"; \
		else echo "not installed:$$missing (install them as root with apt-get)$(2)"; fi; fi
endef

# The embedded Kafka broker runs on Java 17 from jars Maven fetches once (deploy/embedded/broker_libs.py).
broker-runtime:
	$(call apt_need,java=openjdk-17-jre-headless mvn=maven,: the embedded Kafka broker needs them)

run: $(STAMP) broker-runtime ## run the pipeline on the embedded default (or the servers your env vars name) until Ctrl-C
	$(BIN)/tickwire run

status: $(STAMP) ## live table of prices and P&L (the Redis of a running `make run`, or REDIS_URL)
	$(BIN)/tickwire status

# The gates first (seconds), then the tests: a failing gate fails the target.
test: $(STAMP) broker-runtime test-tools ## lint, type-check and layer-check, then run the whole test suite (own broker, Redis, feed)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Tests validate docker-compose.yml with Debian's docker-compose and use Debian's kcat on the broker; without
# them (not root, no apt) those tests skip and say why.
test-tools:
	$(call apt_need,docker-compose=docker-compose kcat=kcat,: the tests that use them will skip)

bench: $(STAMP) broker-runtime ## benchmark the pipeline against the direct design on the embedded stack (bench/results/)
	$(BIN)/python -m bench $(BENCH_ARGS)

# A smoke day (about 7 minutes in all): make soak BENCH_ARGS="--day-quotes 450000 --day-minutes 5
#   --soak-report-every 60 --set TICKWIRE_MUTE_AFTER_SECONDS=15 --set TICKWIRE_REDIS_STREAM_MAXLEN=1000 --out /tmp/soak"
# One rate instead of a day (the former soak): make bench BENCH_ARGS="--soak 3600 --soak-rate 1000"
soak: $(STAMP) broker-runtime ## a trading day on the embedded stack (23.4 M quotes in 90 min: bursts, fills, feed faults), then its checks (bench/results/soak.md)
	$(BIN)/python -m bench --day $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

check: lint test

clean:
	rm -rf $(VENV) .tickwire .pytest_cache
