# `make test` and `make demo` set up .venv/ on a fresh machine and run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: test lint demo venv clean bench

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip -c constraints.txt
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: $(STAMP) lint
	OMP_NUM_THREADS=2 $(PY) -m pytest -q tests

lint: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

demo: $(STAMP)
	$(PY) -m facetpot.demo

bench: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) build *.egg-info
