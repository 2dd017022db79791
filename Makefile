# nodewarden — every target installs what it needs itself.
#   make demo    run the main job on the simulated cluster
#   make test    the whole test suite (what CI runs)
#   make bench   benchmarks; results under bench/results/
#   make lint    ruff, mypy and the import-layer contracts
#   make soak    opt-in: the webhook at 200 alerts/s with 64 slow clients (SOAK_S, default 600 s)

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
DEB_PACKAGES := prometheus prometheus-alertmanager curl
PYTEST_ARGS ?=
SEEDS       ?= 20

.PHONY: venv debs tools demo test bench soak lint chaos clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

# Debian packages used by the tests and the demo; installed when missing.
debs:
	@./scripts/ensure-tools $(DEB_PACKAGES)

tools: venv debs

demo: tools
	$(BIN)/python -m harness.demo

test: tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: tools
	$(BIN)/python -m bench

soak: tools
	$(BIN)/python -m bench.webhook_soak

chaos: tools
	$(BIN)/python -m pytest tests/chaos --chaos-seeds=$(SEEDS) $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
