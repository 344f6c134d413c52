# reprotext: `make run` sets up and runs the pipeline, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 5000
# The stages' commands in dvc.yaml call `python`: the venv's, for `make run` and everything it starts.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup system-deps run test ui bench bench-scifact lecture retrieval clean

setup: $(STAMP)

# torch first: a CPU build of 2.13.0 is on disk; a looser resolution pulls CUDA.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: setup
	$(BIN)/dvc repro
	$(BIN)/reprotext summary

# The servers and browser the tests start: Debian's chromium and PostgreSQL.
system-deps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql >/dev/null; \
	fi

test: setup system-deps
	$(BIN)/pytest

# Long (up to 100 min on 2 cores, its budget): the accuracy table, throughput ratios and scaling -> bench/BENCHMARKS.md.
# The peers it measures (HF tokenizers, fastText) are the `bench` extra; `make test` runs its smoke version.
bench: setup
	$(BIN)/python bench/run.py

# SciFact (../shared/datasets/scifact): BM25, the dual encoder and the hybrid in one run (~6 min on 2 cores)
# -> bench/results/scifact.json; skips when the dataset is absent.
bench-scifact: setup
	$(BIN)/python bench/bench_scifact.py

# The retrieval pipeline (retrieval/dvc.yaml) over a BEIR folder: corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv.
# RETRIEVAL_DATA=path copies that folder to retrieval/params.yaml's collection.data (data/retrieval/beir) first.
RETRIEVAL_DATA ?=
retrieval: setup
	@if [ -n "$(RETRIEVAL_DATA)" ]; then rm -rf data/retrieval/beir && mkdir -p data/retrieval && \
		cp -rL "$(RETRIEVAL_DATA)" data/retrieval/beir; fi
	@test -d data/retrieval/beir || { echo "error: no collection at data/retrieval/beir; run make retrieval RETRIEVAL_DATA=path/to/beir-folder" >&2; exit 2; }
	$(BIN)/dvc repro retrieval/dvc.yaml

# The seminar as one sweep of queued DVC experiments (under 30 minutes on 2 cores) -> reports/lecture.md.
# LECTURE_SIZE=big runs it on all the data; the workspace is left as it was.
LECTURE_SIZE ?= default
lecture: setup
	$(BIN)/python -m reprotext.lecture --size $(LECTURE_SIZE)

# MLflow 3.17's UI opens an experiment on its GenAI overview unless the URL asks for the training runs: open this one.
UI_URL = $(shell $(BIN)/python -c 'import sys; from reprotext.tracking import ui_url; print(ui_url(*sys.argv[1:]))' \
	http://$(HOST):$(PORT) sqlite:///$(CURDIR)/mlflow.db)
ui: setup
	@echo "The pipeline's runs: $(UI_URL)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host $(HOST) --port $(PORT)

# Removes the pipeline's outputs and the local MLflow store (committed metrics stay).
clean:
	rm -rf data models reports/evaluate mlflow.db mlartifacts
