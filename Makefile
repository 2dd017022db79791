# nodewarden — every target installs what it needs itself.
#   make demo    run the main job on the simulated cluster
#   make test    the test suite (what CI runs): two workers, without the extended tier
#   make test-extended  the extended tier: replayed chaos findings, the default chaos seed,
#                and larger-scale duplicates of claims make test covers elsewhere
#   make bench   benchmarks; results under bench/results/
#   make lint    ruff, mypy and the import-layer contracts
#   make playground  the whole product on a simulated cluster, for you to drive
#   make soak    opt-in: the webhook at 200 alerts/s with 64 slow clients (SOAK_S, default 600 s)
#   make client-e2e  opt-in: the official Python client's own e2e tests against the simulator

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
DEB_PACKAGES := prometheus prometheus-alertmanager curl fence-agents ipmitool
PYTEST_ARGS ?=
# Two workers, a test file per worker at a time (module-scoped worlds are built once).
TEST_WORKERS ?= 2
SEEDS       ?= 20
comma       := ,
CHAOS_WORKERS ?=
CHAOS_MINIMIZE ?= 1
CHAOS_MINIMIZE_TRIES ?= 30

.PHONY: venv debs tools demo playground test test-extended bench soak lint chaos clean client-e2e

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

playground: tools
	$(BIN)/python -m harness.playground $(PLAYGROUND_ARGS)

test: tools
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not extended" $(PYTEST_ARGS)

test-extended: tools
	$(BIN)/python -m pytest -m extended $(PYTEST_ARGS)

bench: tools
	$(BIN)/python -m bench

soak: tools
	$(BIN)/python -m bench.webhook_soak

# make chaos SEEDS=20 (seeds 1..20), SEEDS=101-200 or SEEDS=7,12; CHAOS_WORKERS=2: seeded
# worlds with attacks, several at once (tests/chaos/parallel.py); CHAOS_ARGS=--no-attacks
# for benign faults only. Every seed that fails on a finding is then shrunk, one at a time, to
# a minimal schedule that fails the same way (tests/chaos/minimize.py, at most
# CHAOS_MINIMIZE_TRIES worlds of ~1.5 min each; CHAOS_MINIMIZE=0: not). MINIMIZE=19: shrink
# that seed only; REINTRODUCE=forged-report-trusted: worlds carrying that fixed bug again
# (tests/chaos/reintroduce.py; `make chaos MINIMIZE=19 REINTRODUCE=forged-report-trusted` is
# the minimizer's proof, about 30 min).
chaos: tools
	$(BIN)/python -m tests.chaos.parallel $(if $(MINIMIZE),--minimize $(MINIMIZE),--seeds $(if $(findstring -,$(SEEDS))$(findstring $(comma),$(SEEDS)),$(SEEDS),1-$(SEEDS))) $(if $(filter 1,$(CHAOS_MINIMIZE)),--minimize-failures) --minimize-tries $(CHAOS_MINIMIZE_TRIES) $(if $(REINTRODUCE),--reintroduce $(REINTRODUCE)) $(if $(CHAOS_WORKERS),--chaos-workers $(CHAOS_WORKERS)) $(CHAOS_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Opt-in, not part of make test: the official Python client's own e2e tests against a
# simulated cluster (harness/client_e2e.py; docs/sim.md says how to get the tests).
# CLIENT_E2E_ARGS='--from-git PATH/TO/python/.git' the first time, or '--tests DIR'.
client-e2e: venv
	$(BIN)/python -m harness.client_e2e $(CLIENT_E2E_ARGS)
