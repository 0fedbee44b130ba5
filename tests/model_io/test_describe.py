"""From a video file to an answer: VideoChat and ``mashvlm describe``."""

import pytest
import torch

from mashvlm.cli import main as cli_main
from mashvlm.inference import VideoChat, check_mashvlm_dir
from mashvlm.modeling.conversion import CheckpointError
from mashvlm.modeling.tiny import tiny_model
from mashvlm.video import VideoTooShortError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_parts):
    processor, config = tiny_parts
    path = tmp_path_factory.mktemp("mash")
    tiny_model(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_answer_equals_manual_greedy_decoding(checkpoint, tmp_path, gray_ramp_video):
    video = gray_ramp_video(tmp_path / "v.mp4", 12)
    chat = VideoChat.from_pretrained(checkpoint, device="cpu")
    answer = chat.answer(video, "What is happening?", max_new_tokens=5)
    processor, model = chat.processor, chat.model
    inputs = processor(processor.build_prompt("What is happening?"), videos=processor.load_video(video))
    ids = inputs["input_ids"]
    with torch.no_grad():
        for _ in range(5):
            logits = model(input_ids=ids, pixel_values_videos=inputs["pixel_values_videos"]).logits
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            if nxt.item() == processor.tokenizer.eos_token_id:
                break
            ids = torch.cat([ids, nxt], dim=1)
    expected = processor.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert answer == expected


def test_describe_command_prints_the_answer(checkpoint, tmp_path, gray_ramp_video, capsys):
    video = gray_ramp_video(tmp_path / "v.mp4", 12)
    assert cli_main(["describe", str(video), "--model", str(checkpoint), "--max-new-tokens", "3"]) == 0
    expected = VideoChat.from_pretrained(checkpoint, device="cpu").answer(video, "Describe the video in detail.", max_new_tokens=3)
    assert capsys.readouterr().out.strip() == expected


def test_describe_reports_bad_inputs(checkpoint, tmp_path, gray_ramp_video, capsys):
    assert cli_main(["describe", str(tmp_path / "none.mp4"), "--model", str(checkpoint)]) == 2
    assert "none.mp4: no such file" in capsys.readouterr().err
    short = gray_ramp_video(tmp_path / "short.mp4", 2)
    assert cli_main(["describe", str(short), "--model", str(checkpoint)]) == 2
    assert "short.mp4" in capsys.readouterr().err
    with pytest.raises(VideoTooShortError):
        VideoChat.from_pretrained(checkpoint).answer(short, "Hi?")
    assert cli_main(["describe", str(short), "--model", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_checkpoint_without_weights_is_named(checkpoint, tmp_path):
    for item in checkpoint.iterdir():
        if item.name != "model.safetensors":
            (tmp_path / item.name).write_bytes(item.read_bytes())
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        check_mashvlm_dir(tmp_path)
