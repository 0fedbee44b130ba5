"""The lmms-eval model class in process: registration, model arguments, multi-round and text-only requests."""

from __future__ import annotations

import pytest
import torch

from mashvlm.modeling.processing_mash_vlm import VICUNA_V1_SYSTEM

pytest.importorskip(
    "lmms_eval", reason="lmms-eval is not installed: pip install -e '.[lmms-eval]' && pip install --no-deps lmms-eval==0.7.3"
)

from lmms_eval.api.instance import Instance  # noqa: E402

from mashvlm.errors import UsageError  # noqa: E402


@pytest.fixture(scope="module")
def lm(tiny_checkpoint):
    from mashvlm.integrations.lmms_eval.model import MashVlmLmms

    return MashVlmLmms(pretrained=str(tiny_checkpoint), device="cpu")


def _greedy(lm, text: str, video) -> str:
    """Greedy continuation of a hand-written prompt, with the processor and model directly."""
    inputs = lm.processor([text], videos=[video] if video is not None else None)
    tok = lm.processor.tokenizer
    with torch.inference_mode():
        out = lm.model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id,
                                eos_token_id=tok.eos_token_id)
    return lm.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]


def test_manifest_resolves_to_the_model_class():
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    from mashvlm.integrations.lmms_eval import manifest
    from mashvlm.integrations.lmms_eval.model import MashVlmLmms

    registry = ModelRegistryV2()
    registry.register_manifest(manifest())
    assert registry.get_model_class("mashvlm") is MashVlmLmms
    assert registry.get_model_class("mash_vlm") is MashVlmLmms


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": "0.5"}, "unknown --model_args"),
    ({"mvbench_prompt": "paper"}, "mvbench_prompt"),
    ({"batch_size": "auto"}, "batch_size"),
    ({"dtype": "float42"}, "dtype"),
])
def test_bad_model_args_are_usage_errors(tiny_checkpoint, kwargs, message):
    from mashvlm.integrations.lmms_eval.model import MashVlmLmms

    with pytest.raises(UsageError, match=message):
        MashVlmLmms(pretrained=str(tiny_checkpoint), device="cpu", **kwargs)


def test_multi_round_keeps_the_conversation(lm, tiny_videos):
    video = str(tiny_videos[0])
    doc = {"video": video}
    calls = []

    def doc_to_text(doc, previous_output, round_idx, previous_round_info):
        calls.append((list(previous_output), round_idx, previous_round_info))
        if round_idx == 2:
            return None, None, True, previous_output, None
        return [doc["video"]], "Why?", False, previous_output, {"round": round_idx}

    lm.task_dict = {"conv": {"test": [doc]}}
    request = Instance("generate_until_multi_round",
                       ("Is someone running?", {"max_new_tokens": 8}, lambda d: [d["video"]], doc_to_text, 0, "conv",
                        "test"),
                       idx=0, metadata={"task": "conv", "doc_id": 0, "repeats": 1})
    [outputs] = lm.generate_until_multi_round([request])

    sys = VICUNA_V1_SYSTEM
    first = _greedy(lm, f"{sys} USER: <video>\nIs someone running? ASSISTANT:", video).strip()
    second = _greedy(lm, f"{sys} USER: <video>\nIs someone running? ASSISTANT: {first}</s>USER: Why? ASSISTANT:",
                     video).strip()
    assert outputs == [first, second]
    assert [c[1] for c in calls] == [1, 2]
    assert calls[1] == ([first, second], 2, {"round": 1})


def test_text_only_request_has_no_video(lm):
    lm.task_dict = {"text": {"test": [{"q": "Hello"}]}}
    request = Instance("generate_until", ("Hello", {"max_new_tokens": 8, "until": []}, lambda d: [], 0, "text", "test"),
                       idx=0, metadata={"task": "text", "doc_id": 0, "repeats": 1})
    [output] = lm.generate_until([request])
    assert output == _greedy(lm, f"{VICUNA_V1_SYSTEM} USER: Hello ASSISTANT:", None)


def test_a_missing_video_names_the_file(lm, tmp_path):
    from mashvlm.video import VideoDecodeError

    missing = tmp_path / "nope.mp4"
    lm.task_dict = {"v": {"test": [{"video": str(missing)}]}}
    request = Instance("generate_until", ("Hi", {"max_new_tokens": 4}, lambda d: [d["video"]], 0, "v", "test"),
                       idx=0, metadata={"task": "v", "doc_id": 0, "repeats": 1})
    with pytest.raises(VideoDecodeError, match="nope.mp4"):
        lm.generate_until([request])
