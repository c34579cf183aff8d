# The commands of the README: `make demo`, `make app` and `make test`. Each does all set-up first.
VENV ?= .venv
STAMP := $(VENV)/.tinywave-installed
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=
APP_ARGS ?=

.PHONY: setup demo app assets test test-fast lint bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tinywave demo --out $(DEMO_OUT)

# the local web app on the demo's models (teacher and student side by side); `make demo` first
app: $(STAMP)
	$(VENV)/bin/tinywave app --demo $(DEMO_OUT) $(APP_ARGS)

# rebuild the shipped demo teacher (assets/demo) with its provenance: ~1.3 h on 2 cores, resumable
assets: $(STAMP)
	$(VENV)/bin/tinywave demo-assets --out assets/demo --work assets_work

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS) tests

# ruff with the rules in pyproject.toml ([tool.ruff]); CI runs it before the tests
lint: $(STAMP)
	$(VENV)/bin/ruff check .

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow and not distributed" $(PYTEST_ARGS) tests

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
