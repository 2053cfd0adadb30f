# make run: set up and serve the shop with its sandbox on http://127.0.0.1:5000
# make test: set up everything the tests need and run them all
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run instance-config test fuzz bench lint format chromium postgresql wrk translations clean

$(VENV)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# A random secret key and console password, made once (the shop refuses the default key), and
# the sandbox named as the exchanger; an older file that named none gets that line added.
instance-config: $(VENV)/.runtime
	$(BIN)/python scripts/make_instance_config.py instance/config.py

# Message catalogues are compiled here, never committed as binaries.
translations: $(VENV)/.runtime
	$(BIN)/pybabel compile --statistics -d translations

# Starting the shop never migrates: init-db (Alembic's upgrade) runs first, as a deploy would.
run: $(VENV)/.runtime instance-config translations
	$(BIN)/flask --app app init-db
	$(BIN)/flask --app app run --host 127.0.0.1 --port 5000

# A Debian package, installed when missing and we are root; otherwise the command to run.
define debian_package
	@if ! command -v $(1) >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); \
		else \
			echo "$(1) is missing: run 'sudo apt-get install -y $(1)', then 'make $(2)' again."; \
			exit 1; \
		fi; \
	fi
endef

# Debian's Chromium for the browser tests; Playwright's own download needs the internet.
chromium:
	$(call debian_package,chromium,test)

# Debian's PostgreSQL server programs: the tests start their own server in a temporary folder
# (tests/postgres.py), so the package's own service is never needed.
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
		else \
			echo "postgresql is missing: run 'sudo apt-get install -y postgresql', then 'make test' again."; \
			exit 1; \
		fi; \
	fi

# axe-core from npm (package-lock.json pins it), injected by the browser tests; never a CDN.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

test: $(VENV)/.dev chromium postgresql translations node_modules/.package-lock.json
	$(BIN)/pytest

# The order-status state machine with fresh seeds and many more examples (minutes, not seconds).
fuzz: $(VENV)/.dev translations
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/test_state_machine.py

# wrk from Debian drives the load in bench/.
wrk:
	$(call debian_package,wrk,bench)

# Every benchmark: a few minutes each, bench.growth about 25 (1,000 vs 1,000,000 orders on both
# engines, most of it building the large shops); the figures go into bench/README.md by hand.
bench: $(VENV)/.dev translations wrk postgresql
	$(BIN)/python -m bench.ipn
	$(BIN)/python -m bench.flood
	$(BIN)/python -m bench.pages
	$(BIN)/python -m bench.reconcile
	$(BIN)/python -m bench.checkout
	$(BIN)/python -m bench.chaos --orders 1000
	$(BIN)/python -m bench.growth
	$(BIN)/python -m bench.dashboard
	$(BIN)/python -m bench.webhooks

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-results
