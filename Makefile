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

.PHONY: install llama llama-level browser demo test test-fast index chat serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(MAKE) --no-print-directory llama
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

# llama-cpp-python is compiled here (about 9 minutes). Its default build is -march=native: the library
# then uses every instruction of the CPU that built it (AMX ...) and dies on another CPU, e.g. when
# pip's wheel cache or a copied .venv meets a new machine. So the build targets a named CPU level, the
# best this CPU has: x86-64-v4 (AVX-512 F/BW/CD/DQ/VL, with VBMI, VNNI and BF16 where the CPU has them:
# prompts read 2.2 times faster than with AVX2 on an AVX-512 EPYC), x86-64-v3 (AVX2, FMA, F16C, BMI2),
# or plain x86-64; never AMX. The wheel is kept in a folder named after that level and the version,
# never in pip's cache (whose key ignores CMAKE_ARGS); a .venv copied to a CPU without its level is
# told to rebuild by the model check (`qa/native.py`), not killed by an illegal instruction.
LLAMA_VERSION := $(shell sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml | head -1)
CPUINFO ?= /proc/cpuinfo
has_flags = $(shell for f in $(1); do grep -qw $$f $(CPUINFO) 2>/dev/null || { echo no; exit; }; done; echo yes)
X86_V3_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
ifeq ($(call has_flags,avx2 fma f16c bmi2 avx512f avx512bw avx512cd avx512dq avx512vl),yes)
LLAMA_LEVEL ?= x86-64-v4$(if $(filter yes,$(call has_flags,avx512vbmi)),-vbmi)$(if $(filter yes,$(call has_flags,avx512_vnni)),-vnni)$(if $(filter yes,$(call has_flags,avx512_bf16)),-bf16)
LLAMA_CMAKE ?= $(strip $(X86_V3_CMAKE) -DGGML_AVX512=ON $(if $(findstring -vbmi,$(LLAMA_LEVEL)),-DGGML_AVX512_VBMI=ON) $(if $(findstring -vnni,$(LLAMA_LEVEL)),-DGGML_AVX512_VNNI=ON) $(if $(findstring -bf16,$(LLAMA_LEVEL)),-DGGML_AVX512_BF16=ON))
else ifeq ($(call has_flags,avx2 fma f16c bmi2),yes)
LLAMA_LEVEL ?= x86-64-v3
LLAMA_CMAKE ?= $(X86_V3_CMAKE)
else
LLAMA_LEVEL ?= baseline
LLAMA_CMAKE ?= -DGGML_NATIVE=OFF
endif
LLAMA_WHEELS ?= $(HOME)/.cache/news-qa/wheels/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_LEVEL)

# What `make llama` would build on this CPU (tests/test_native.py reads it with CPUINFO= other CPUs).
llama-level:
	@echo "$(LLAMA_LEVEL) $(LLAMA_CMAKE)"

llama:
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_VERSION) for $(LLAMA_LEVEL) (about 9 minutes, once per machine)"; \
	  rm -rf $(LLAMA_WHEELS).part; CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/python -m pip wheel --quiet --disable-pip-version-check --no-deps \
	    --no-cache-dir --no-binary llama-cpp-python -w $(LLAMA_WHEELS).part llama-cpp-python==$(LLAMA_VERSION) \
	  && rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS); \
	fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
	  $(LLAMA_WHEELS)/llama_cpp_python-*.whl

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
