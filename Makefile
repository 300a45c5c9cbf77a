# The two commands the README promises:
#   make demo   deploy the stack into a local systemd container and show that it answers
#   make test   lint, unit tests, the workers' tests, ansible-test sanity, the changelog, the docs site, the
#               execution-environment metadata and every molecule scenario
SHELL := /bin/bash
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
SCENARIOS ?= dev_server stack postgresql production cluster
# The collection checks' tools (ansible-test, antsibull-changelog, antsibull-docs, Sphinx, ansible-builder)
# live in a venv of their own: their pins would otherwise fight the controller's and the workers'.
GALAXY_VENV := .cache/galaxy-venv
GALAXY_BIN := $(abspath $(GALAXY_VENV))/bin

# The scenarios that deploy the server's release archives; the others run while the archives build.
RELEASE_SCENARIOS := production cluster
# The release the cluster scenario upgrades from (cluster_upgrade_from in its molecule.yml), built like the current one.
UPGRADE_FROM = $(shell sed -n 's/^ *cluster_upgrade_from: *"\(.*\)"$$/\1/p' molecule/cluster/molecule.yml)

.PHONY: test demo bench venv host-tools harness lint unit workers molecule clean galaxy-venv sanity changelog docs ee \
	checks collection-checks releases test-image molecule-first molecule-then

# Two lines of work: the test image, the release archives built from their Go modules at low priority (the longest
# step on a fresh machine), then the collection checks; and lint, the unit and workers' tests, then the scenarios that
# need no archive. The other scenarios follow both.
test:
	@mkdir -p .cache && : > .cache/molecule-times.txt
	$(MAKE) -j2 molecule-then
	@echo "Molecule scenarios, wall time each:"; cat .cache/molecule-times.txt

checks: venv host-tools
	$(MAKE) -j1 lint unit workers

collection-checks: releases galaxy-venv
	$(MAKE) -j1 sanity changelog docs ee

# After the test image, so that the scenarios' line finds it ready.
releases: venv test-image
	nice -n 19 tools/release-archives.sh $(UPGRADE_FROM)

test-image: venv host-tools
	tools/test-image.sh
	PYTHON=$(BIN)/python tools/artifacts.sh

molecule-first: checks test-image
	$(call run-scenarios,$(filter-out $(RELEASE_SCENARIOS),$(SCENARIOS)))

molecule-then: collection-checks molecule-first
	$(call run-scenarios,$(filter $(RELEASE_SCENARIOS),$(SCENARIOS)))

# run-scenarios: molecule test of each scenario in turn, appending its wall time to .cache/molecule-times.txt.
# Containers left by an interrupted run would clash by name with the scenarios' hosts.
define run-scenarios
docker ps -aq --filter label=owner=molecule | xargs -r docker rm -f >/dev/null
set -e; for scenario in $(1); do \
  start=$$(date +%s); molecule test -s $$scenario; \
  echo "$$scenario: $$(( $$(date +%s) - start )) s" >> .cache/molecule-times.txt; \
done
endef

demo: venv harness
	tools/demo.sh

# Figures, not tests: deploy, throughput, persistence, tuning, footprint; prints a
# table, writes bench/results/results.json and chart.png. Sizes: see bench/README.md.
bench: venv harness
	$(BIN)/pip install -q -r bench/requirements.txt
	$(BIN)/python bench/run.py

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt workers/pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt -e './workers[test,api]'
	touch $@

# docker.io, debootstrap, chromium and PostgreSQL (the workers' store tests run a throwaway server).
host-tools:
	tools/ensure-host-tools.sh

harness: venv host-tools
	tools/test-image.sh
	PYTHON=$(BIN)/python tools/artifacts.sh
	tools/release-archives.sh

lint: venv
	yamllint -s .
	ansible-lint

unit: venv
	pytest -q tests/unit

workers: venv host-tools
	cd workers && ruff format --check . && ruff check . && mypy && pytest -q

galaxy-venv: $(GALAXY_VENV)/.installed

$(GALAXY_VENV)/.installed: tests/requirements-galaxy.txt
	rm -rf $(GALAXY_VENV)
	python3 -m venv $(GALAXY_VENV)
	$(GALAXY_BIN)/pip install -q --upgrade pip
	$(GALAXY_BIN)/pip install -q -r tests/requirements-galaxy.txt
	touch $@

# ansible-test sanity on the built collection, without containers (see tests/sanity/run.sh).
sanity: galaxy-venv
	tests/sanity/run.sh $(GALAXY_BIN)

# The changelog's fragments are valid and CHANGELOG.md is what antsibull-changelog makes of them.
changelog: galaxy-venv
	tests/changelog/check.sh $(GALAXY_BIN)

# The plugins' and roles' documentation: antsibull-docs lint, then an HTML site (sphinx-init layout) in
# .cache/docs/build/html with a page for every role and plugin and no error page (tests/docs/build.sh).
docs: venv galaxy-venv
	tests/docs/build.sh $(GALAXY_BIN)

# meta/execution-environment.yml and the files it names are complete: ansible-builder reads them from
# the installed artifact and lays out an execution environment's build context (tests/ee/check.sh).
ee: galaxy-venv
	tests/ee/check.sh $(GALAXY_BIN)

molecule: harness
	tools/release-archives.sh $(UPGRADE_FROM)
	@mkdir -p .cache && : > .cache/molecule-times.txt
	$(call run-scenarios,$(SCENARIOS))
	@echo "Molecule scenarios, wall time each:"; cat .cache/molecule-times.txt

clean:
	-docker rm -f temporal-demo
	rm -rf $(VENV) .cache
