# The two set-up commands of the README:  `make run` (install + dvc repro)  and  `make test`.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
# Offline and quiet: no hub, no telemetry from any library the pipeline touches.
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1 DVC_NO_ANALYTICS=1 \
       MLFLOW_DISABLE_TELEMETRY=true FIFTYONE_DO_NOT_TRACK=true FIFTYONE_DATABASE_VALIDATION=false \
       GX_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false

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
