# The two commands the README promises:
#   make demo   deploy the stack into a local systemd container and show that it answers
#   make test   lint, unit tests, the workers' tests and every molecule scenario
SHELL := /bin/bash
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
SCENARIOS ?= dev_server stack postgresql production stack_production multihost

.PHONY: test demo bench venv host-tools harness lint unit workers molecule clean

test: lint unit workers molecule

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

# Containers left by an interrupted run would clash by name with the scenarios' hosts.
molecule: harness
	docker ps -aq --filter label=owner=molecule | xargs -r docker rm -f >/dev/null
	set -e; for scenario in $(SCENARIOS); do molecule test -s $$scenario; done

clean:
	-docker rm -f temporal-demo
	rm -rf $(VENV) .cache
