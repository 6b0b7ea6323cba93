# Two entry points for a fresh machine (Python 3.11 on PATH as python3):
#   make quickstart   install into .venv and run `tfiqa train` on the embedded default
#   make test         install into .venv and run the linter and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test test-all install lint

$(BIN)/tfiqa: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,all]"
	touch $(BIN)/tfiqa

install: $(BIN)/tfiqa

quickstart: install
	$(BIN)/tfiqa train --workdir runs/quickstart

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -m "not slow" --durations=10
	$(BIN)/pytest -m slow --durations=10

test-all: test
