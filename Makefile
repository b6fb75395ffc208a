# The two set-up commands of the README: `make pipeline` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
export DVC_NO_ANALYTICS := 1

.PHONY: setup pipeline test params

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

pipeline: setup  ## install, then run the whole pipeline on the built-in simulator
	source $(VENV)/bin/activate && dvc repro

test: setup  ## install, then run the test suite
	source $(VENV)/bin/activate && pytest -n 2 --dist loadfile

params: setup  ## recompose params.yaml from conf/
	source $(VENV)/bin/activate && fraudpipe params
