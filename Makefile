# The two entry points of the README: `make book` (set up, build the book) and `make test` (set up, run the tests).
# Both create .venv in the checkout and install the pinned environment on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup book browser-deps data test test-all clean-book

setup: $(STAMP) book/_assets/mathjax/tex-chtml-full.js

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The book: built from results/ (nothing is trained), warnings are errors; MathJax is fetched once into
# book/_assets/mathjax (git-ignored) so the built pages need no external URL.
book: $(STAMP) book/_assets/mathjax/tex-chtml-full.js
	$(BIN)/jupyter-book build book -W -n --keep-going

book/_assets/mathjax/tex-chtml-full.js:
	bash book/fetch_mathjax.sh

# Headless Chromium for the browser test of the book (tests/test_book.py); Debian package, root or sudo.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then /usr/bin/chromium --version; else \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation; \
	fi

TEST_DEPS := $(STAMP) data book/_assets/mathjax/tex-chtml-full.js browser-deps

# The data: the folder found ($$SKIPVAE_DATA, ./data, ../shared/data) if every file passes its sha256, else
# fetched into ./data; offline this stops within seconds with the fetch's message.
data: $(STAMP)
	$(BIN)/python -m skipvae data ensure

# Unit tests, the book build + browser test, then every source notebook under nbval at the smoke profile.
test: $(TEST_DEPS)
	SKIPVAE_PROFILE=smoke $(BIN)/python -m pytest -q tests notebooks --nbval-lax

test-all: $(TEST_DEPS)
	SKIPVAE_PROFILE=smoke $(BIN)/python -m pytest -q -m "slow or not slow" tests notebooks --nbval-lax

clean-book:
	rm -rf book/_build book/_generated book/experiments/*_notebook.*
