# Every target sets up what it needs, idempotently, from a clean clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
# the suite mostly waits on chains and brokers: several workers share the 2 cores well
TEST_WORKERS ?= 3
NODE_STAMP := node_modules/.installed

.PHONY: deps test lint demo contracts verifier bench chromium screenshots clean

$(PY_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c requirements.lock -e '.[test]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser tests (Playwright drives the system browser; nothing is downloaded by it)
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

deps: $(PY_STAMP) $(NODE_STAMP)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint chromium
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

demo: deps
	$(PY) -m blockproof.cli demo

contracts: $(NODE_STAMP)
	node contracts/compile.mjs

# the verifiers' JavaScript (pinned npm packages) bundled into web/static/verify.js and the standalone
# web/static/blockproof-verifier.html; both are committed, tests/e2e/test_verifier.py checks they match a rebuild
verifier: $(NODE_STAMP)
	node web/verifier/build.mjs

bench: deps
	$(PY) bench/run_all.py

# refresh the README's screenshots from the browser test
screenshots: deps chromium
	BLOCKPROOF_SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest -q tests/e2e/test_web_browser.py tests/e2e/test_verify_page.py

clean:
	rm -rf var .pytest_cache
