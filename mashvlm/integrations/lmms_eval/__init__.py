"""MASH-VLM as an lmms-eval model: ``python -m lmms_eval --model mashvlm --model_args pretrained=CKPT``.

lmms-eval finds the model through the ``lmms_eval.models`` entry point that pyproject.toml declares,
which points at :func:`manifest`. The model class lives in :mod:`.model` (it subclasses lmms-eval's
``lmms`` and so needs lmms-eval installed); the prompts are plain functions in :mod:`.prompts`.
See docs/lmms_eval.md.
"""

from __future__ import annotations

from typing import Any

MODEL_ID = "mashvlm"
MODEL_CLASS_PATH = "mashvlm.integrations.lmms_eval.model.MashVlmLmms"


def manifest() -> Any:
    """The ``ModelManifest`` lmms-eval registers (called by lmms-eval when it loads entry points)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=MODEL_CLASS_PATH, aliases=("mash_vlm",))


__all__ = ["MODEL_ID", "MODEL_CLASS_PATH", "manifest"]
