# urbanlab: two commands do all the set-up.
#   make run    build .venv if missing, then run the whole pipeline (DVC -> papermill -> reports/index.html)
#   make test   build .venv if missing, then ruff, nbdev_test over nbs/ and pytest tests/ (make test-fast: minutes)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.urbanlab-installed

.PHONY: help env sysdeps run lint test test-fast lab app serve prepare benchmark clean-env
help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

sysdeps:  ## install the system packages urbanlab needs (Java for Spark, Chromium for PNG export and browser tests) if missing
	@command -v java >/dev/null || { echo "Installing Java 17 for Spark"; apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }
	@command -v chromium >/dev/null || { echo "Installing Chromium for PNG export and the browser tests"; apt-get update -qq && apt-get install -y -qq chromium; }

$(STAMP): requirements.txt setup.py settings.ini
	@echo "Building $(VENV) with the pinned stack (about 3 minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check pip==25.2
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name urbanlab --display-name "Python (urbanlab)"
	touch $@

env: sysdeps $(STAMP)  ## create .venv with the pinned stack if missing

run: env  ## run the pipeline on the embedded default data; prints where reports/index.html is
	$(BIN)/urbanlab run

lint: env  ## ruff: nbs/, tests/ and benchmarks/ formatted and linted (ruff.toml: line length 120)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: env lint  ## every test: ruff, the notebooks (nbdev_test), then pytest tests/ (about 37 minutes on 2 cores)
	$(BIN)/nbdev_test --n_workers 2 --flags spark
	$(BIN)/pytest tests

test-fast: env lint  ## the inner loop (a few minutes): library notebooks without Spark, and tests that run no pipeline
	$(BIN)/nbdev_test --n_workers 2 --skip_folder_re '^(stages|explorers|app|reports|guides)$$'
	$(BIN)/pytest -q -m "not slow" tests

lab: env  ## JupyterLab on this project with the urbanlab kernel, at http://127.0.0.1:8888
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

app: env  ## the hub-siting and allocation explorers as a web app (Voila), at http://127.0.0.1:8866 (run `make run` first)
	$(BIN)/urbanlab app

serve: env  ## the HTTP API over the pipeline's outputs, at http://127.0.0.1:8000 (docs at /docs; run `make run` first)
	$(BIN)/urbanlab serve

prepare: env  ## before a commit: format nbs/, export to urbanlab/, clean notebooks, regenerate dvc.yaml and the Kubeflow pipeline
	$(BIN)/ruff format . && $(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(BIN)/urbanlab dvc-yaml && $(BIN)/urbanlab kfp compile

benchmark: env  ## measure the pipeline's own overhead (prints figures)
	$(BIN)/python benchmarks/pipeline_overhead.py

clean-env:  ## remove .venv
	rm -rf $(VENV)
