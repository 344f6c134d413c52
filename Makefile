# reprotext: `make run` sets up and runs the pipeline, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: setup run test ui clean

setup: $(STAMP)

# torch first: a CPU build of 2.13.0 is on disk; a looser resolution pulls CUDA.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: setup
	$(BIN)/dvc repro
	$(BIN)/reprotext summary

test: setup
	$(BIN)/pytest

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host $(HOST) --port $(PORT)

clean:
	rm -rf data models reports/*.png metrics mlflow.db mlartifacts
