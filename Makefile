# Two commands for a new user: `make demo` and `make test`. Both install what they need into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# PyTorch first, pinned: this CPU build lies on the machine's disk, an unpinned torch pulls a CUDA build.
TORCH ?= torch==2.13.0
# The 0.5B model keeps the slow tests of the model server, odd questions and hostile articles short.
EXTRAS ?= test,model-1-5b,model-0-5b
# The browser test drives Debian's Chromium (no browser download); set CHROMIUM= to skip installing it.
CHROMIUM ?= /usr/bin/chromium

.PHONY: install browser demo test test-fast index chat serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

# Installs Chromium with apt when it is missing and apt can be used (root, or sudo without a password).
browser:
	@if [ -z "$(CHROMIUM)" ] || [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "no Chromium at $(CHROMIUM) and no root to install it: the browser test will be skipped"; exit 0; fi; \
	echo "installing Debian's chromium for the browser test"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null

index: install
	$(BIN)/qa ingest data/articles

demo: serve

chat: index
	$(BIN)/qa chat

serve: index
	$(BIN)/qa serve

test: install browser
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m 'not slow'

# The speed benchmarks (about 20 minutes on 2 cores); the others are listed in README "Development".
bench: install
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/ingest.py --copies 20
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/memory.py --questions 500

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
