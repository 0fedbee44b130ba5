# Two entry points (see README): `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test lint bench

# The lmms-eval plugin's end-to-end test runs in `make test`, so setup installs the lmms-eval extra and
# then lmms-eval itself without its declared dependencies (it declares av<16; docs/lmms_eval.md).
LMMS_EVAL := lmms-eval==0.7.3

$(BIN)/mashvlm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,lmms-eval]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps '$(LMMS_EVAL)'
	touch $@

setup: $(BIN)/mashvlm

demo: setup
	$(BIN)/mashvlm demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/dst_attention_prefill.py
	$(BIN)/python benchmarks/shared_prompt_prefix.py
	$(BIN)/python benchmarks/text_init_scale.py
