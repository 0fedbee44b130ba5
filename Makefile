# Two entry points (see README): `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup setup-dev demo test lint bench

# The lmms-eval plugin's end-to-end test runs in `make test`, so setup-dev installs the lmms-eval extra and
# then lmms-eval itself without its declared dependencies (it declares av<16; docs/lmms_eval.md).
LMMS_EVAL := lmms-eval==0.7.3

$(BIN)/mashvlm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

# What the tests need beyond the package: pytest and ruff, DeepSpeed (the ZeRO-3 tests) and lmms-eval.
$(VENV)/.dev: $(BIN)/mashvlm
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,lmms-eval]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps '$(LMMS_EVAL)'
	# DeepSpeed's CPU communication op, compiled once (about 1 min on 2 cores) so the ZeRO-3 tests do not
	# (cached in ~/.cache/torch_extensions)
	$(BIN)/python -c "from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder; ShareMemCommBuilder().load(verbose=False)"
	touch $@

setup: $(BIN)/mashvlm

setup-dev: $(VENV)/.dev

demo: setup
	$(BIN)/mashvlm demo

test: setup-dev
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/layout_and_mask.py
	$(BIN)/python benchmarks/dst_attention_prefill.py
	$(BIN)/python benchmarks/decode_speed.py
	$(BIN)/python benchmarks/shared_prompt_prefix.py
	$(BIN)/python benchmarks/text_init_scale.py
	$(BIN)/python benchmarks/unscene_runner.py
	$(BIN)/python benchmarks/video_decode.py
