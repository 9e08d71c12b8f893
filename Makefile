# The two commands: `make demo` and `make test`. Both create/update .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Reinstall when the build's inputs change (the C timer cores are compiled at install).
BUILD_INPUTS := pyproject.toml setup.py src/meterhub/_speedups.c
STAMP_HASH := $(shell cat $(BUILD_INPUTS) 2>/dev/null | cksum | cut -d' ' -f1)
DEV_STAMP  := $(VENV)/.dev-$(STAMP_HASH)
DEMO_STAMP := $(VENV)/.demo-$(STAMP_HASH)

.PHONY: demo test lint typecheck dist-check unit bench system-deps clean

$(BIN)/python:
	sh scripts/bootstrap-venv.sh $(PYTHON) $(VENV)

$(DEMO_STAMP): $(BUILD_INPUTS) | $(BIN)/python
	$(BIN)/pip install -q -e '.[cli]'
	touch $@

$(DEV_STAMP): $(BUILD_INPUTS) | $(BIN)/python
	$(BIN)/pip install -q -e '.[all,test]'
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/meterhub demo --duration 20 --dir ./meterhub-demo

system-deps:
	sh scripts/install-system-deps.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# The sdist, the wheel built from it, installed into a clean venv and smoke-tested there.
dist-check: $(DEV_STAMP)
	$(BIN)/python scripts/check_dist.py

unit: $(DEV_STAMP)
	$(BIN)/pytest -q

test: system-deps lint typecheck dist-check unit

bench: $(DEV_STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache meterhub-demo build dist
