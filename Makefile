# The two set-up commands of the README:  `make run` (install + dvc repro)  and  `make test`.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
# Offline and quiet: no hub, no telemetry from any library the pipeline touches (the one list).
include dermsynth/offline.env
export $(shell sed -n 's/^\([A-Z_]*\)=.*/\1/p' dermsynth/offline.env)

.PHONY: setup data run test test-fast bench clean-outputs

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# Restore the versioned demo raw data from the DVC remote kept in the repository (offline).
data: setup
	dvc pull -q data.dvc

run: data
	dvc repro

test: data
	pytest -q --durations=15

test-fast: setup
	pytest -q -m "not slow"

bench: setup
	python benchmarks/preprocess.py
