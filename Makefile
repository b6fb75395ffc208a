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

# Two test workers, one OpenMP thread each: XGBoost's threads spin-wait, so four threads on two
# cores run several times slower than two.
test: setup  ## install, then run the test suite
	source $(VENV)/bin/activate && OMP_NUM_THREADS=1 pytest -n 2 --dist loadfile

params: setup  ## recompose params.yaml from conf/
	source $(VENV)/bin/activate && fraudpipe params
