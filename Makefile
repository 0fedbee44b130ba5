# Two entry points (see README): `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test lint bench

$(BIN)/mashvlm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
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
	$(BIN)/python benchmarks/video_decode.py
