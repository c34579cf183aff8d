# The two commands of the README: `make demo` and `make test`. Each does all set-up first.
VENV ?= .venv
STAMP := $(VENV)/.tinywave-installed
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tinywave demo --out $(DEMO_OUT)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS) tests

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow and not distributed" $(PYTEST_ARGS) tests

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
