# The two README commands, and a few helpers. Every target prepares the machine first
# (scripts/setup.sh: Python environment, Docker engine, test host image, Kubernetes tooling
# when needed; idempotent).
INVENTORY ?= inventories/sandbox
# The Helm CLI built by scripts/controlplane/build.sh serves the Helm delivery engine.
export PATH := $(shell scripts/controlplane/build.sh --print-env | sed -n 's/^BIN_DIR=//p'):$(PATH)

LAKEHOUSE := .venv/bin/python -m lakehouse_cli

.PHONY: up verify status test down artifacts setup provision

## Bring the lakehouse up on the sandbox (local systemd hosts), print its endpoints, verify it end to end.
up: setup
	$(LAKEHOUSE) up -i $(INVENTORY)
	$(LAKEHOUSE) verify -i $(INVENTORY)

## Check every published endpoint: health, anonymous and default-credential refusal, a round trip.
verify: setup
	$(LAKEHOUSE) verify -i $(INVENTORY)

## The table of services, hosts, deliveries, endpoints and health.
status: setup
	$(LAKEHOUSE) status -i $(INVENTORY)

## Run every test tier this machine can run: on two workers, the real tiers (Molecule, end to end,
## the real node) one after another on one, every other tier beside them (tests/conftest.py).
TEST_WORKERS ?= 2
test: setup artifacts
	.venv/bin/pytest -n $(TEST_WORKERS) --no-loadscope-reorder

## Remove the sandbox hosts (the secret store and the artifact cache are kept).
down: setup
	$(LAKEHOUSE) down -i $(INVENTORY)

## Provision an environment with OpenTofu and write its inventory (make provision INVENTORY=inventories/local).
provision: setup
	scripts/tofu/build.sh
	$(LAKEHOUSE) provision -i $(INVENTORY)

## Fill the controller's artifact cache (fetch or build, verify every checksum).
artifacts: setup
	scripts/fill_artifacts.sh $(INVENTORY)

# `make test` prepares everything; the other targets what the inventory's hosts need (a
# metal-only inventory builds no Kubernetes tooling).
# For `make test` the Kubernetes tooling builds in the background while the first tiers run.
SETUP_INVENTORY := $(if $(filter test,$(MAKECMDGOALS)),,$(INVENTORY))
SETUP_KUBERNETES_IN_BACKGROUND := $(if $(filter test,$(MAKECMDGOALS)),1,)
setup:
	@SETUP_INVENTORY=$(SETUP_INVENTORY) SETUP_KUBERNETES_IN_BACKGROUND=$(SETUP_KUBERNETES_IN_BACKGROUND) scripts/setup.sh
