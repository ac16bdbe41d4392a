# The two entry points of the README: `make book` (set up, build the book) and `make test` (set up, run the tests).
# Both create .venv in the checkout and install the pinned environment on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup book test test-all clean-book

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build book

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q --nbval-lax notebooks -p no:cacheprovider

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

clean-book:
	rm -rf book/_build
