# The two set-up commands of the README: `make pipeline` and `make test`; CI runs `make lint`, `make docs` and `make test-all`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
export DVC_NO_ANALYTICS := 1

.PHONY: setup pipeline test test-all lint docs params

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

pipeline: setup  ## install, then run the whole pipeline on the built-in simulator
	source $(VENV)/bin/activate && dvc repro

# Two test workers, one OpenMP thread each: XGBoost's threads spin-wait, so four threads on two
# cores run several times slower than two.
# `make test` is the fast lane (minutes): everything but the tests marked slow (whole DVC pipelines
# and experiments reproduced again and again); `make test-all` runs every test, as CI does.
test: setup  ## install, then run the test suite's fast lane
	source $(VENV)/bin/activate && OMP_NUM_THREADS=1 pytest -n 2 --dist loadfile -m "not slow"

test-all: setup  ## install, then run every test, the slow ones too
	source $(VENV)/bin/activate && OMP_NUM_THREADS=1 pytest -n 2 --dist loadfile

lint: setup  ## formatting, lint rules and types, as CI checks them
	source $(VENV)/bin/activate && ruff format --check . && ruff check . && mypy

docs: setup  ## the documentation site (docs/, mkdocs.yml) into site/; any warning fails it
	source $(VENV)/bin/activate && mkdocs build --strict

params: setup  ## recompose params.yaml from conf/
	source $(VENV)/bin/activate && fraudpipe params
