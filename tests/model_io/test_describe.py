"""From a video file to an answer: VideoChat and ``mashvlm describe``."""

import numpy as np
import pytest
import torch

from mashvlm.cli import main as cli_main
from mashvlm.inference import VideoChat, check_mashvlm_dir, render_question
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


def test_answer_videos_equals_one_question_at_a_time(checkpoint, greedy_reference):
    """Three videos, questions of different lengths (so different left padding), one batch: each answer is
    the greedy answer to that question alone, and the vision tower runs once, on the three videos."""
    chat = VideoChat.from_pretrained(checkpoint, device="cpu")
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8) for _ in range(3)]
    questions = [
        ["Is someone running?", "What is the person doing on the beach in this video, in detail?", "Hi"],
        ["Is the person jumping on a beach? Yes or no."],
        ["Why?", "Is someone running on a beach?"],
    ]
    tower_batches = []
    hook = chat.model.model.vision_tower.register_forward_hook(lambda m, args, out: tower_batches.append(len(args[0])))
    try:
        answers = chat.answer_videos(videos, questions, max_new_tokens=6)
    finally:
        hook.remove()
    assert tower_batches == [3 * 4]  # one pass over the 3 videos' 4 frames each
    expected = [[greedy_reference(chat.model, chat.processor, v, chat.processor.build_prompt(q), 6) for q in qs] for v, qs in zip(videos, questions, strict=True)]
    assert answers == expected
    assert len({a for row in answers for a in row}) > 2  # the answers depend on the video and the question
    # answer_batch: pairs that share a video share its encoding, answers in the pairs' order
    pairs = [(videos[2], "Why?"), (videos[0], "Hi"), (videos[2], "Is someone running on a beach?")]
    assert chat.answer_batch(*zip(*pairs, strict=True), max_new_tokens=6) == [expected[2][0], expected[0][2], expected[2][1]]


def test_video_placeholders_are_never_generated(checkpoint, greedy_reference):
    """A model whose favourite next token is a video placeholder (an untrained one can be) still answers:
    a generated placeholder would be a video slot without video features."""
    chat = VideoChat.from_pretrained(checkpoint, device="cpu")
    processor, model = chat.processor, chat.model
    frames = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    inputs = processor(processor.build_prompt("Hi"), videos=frames)
    with torch.no_grad():
        first = int(model(**inputs).logits[0, -1].argmax())
        model.lm_head.weight[processor.video_temporal_token_id] = 10 * model.lm_head.weight[first]
        assert int(model(**inputs).logits[0, -1].argmax()) == processor.video_temporal_token_id
    answers = chat.answer_videos([frames], [["Hi", "Is someone running?"]], max_new_tokens=3)
    assert answers == [[greedy_reference(model, processor, frames, processor.build_prompt(q), 3) for q in ("Hi", "Is someone running?")]]


def test_answer_videos_with_system_prompts_and_answer_prefixes(greedy_reference):
    """A system prompt per video (they precede the video, so the shared prefixes differ in length and are
    left-padded against each other) and an answer prefix per question (after "ASSISTANT:"): each answer is
    the greedy continuation of that full prompt alone; one vision-tower pass over the videos."""
    from mashvlm.modeling.tiny import tiny_processor_and_config

    # an init larger than Llama's 0.02: the random model's answers then depend on the whole context
    processor, config = tiny_processor_and_config(["Is someone running? Yes. No. Answer briefly."],
                                                  text_initializer_range=0.2)
    chat = VideoChat(tiny_model(config), processor)
    rng = np.random.default_rng(2)
    videos = [rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8) for _ in range(3)]
    questions = [["Is someone running?", "Why?"], ["Is someone running on a beach?"], ["Hi", "Is someone jumping?"]]
    system = ["Answer briefly.", None, "You watch videos of people on a beach and say what they do, in detail."]
    prefixes = [["Yes,", ""], ["No"], ["", "The person is"]]
    tower_batches = []
    hook = chat.model.model.vision_tower.register_forward_hook(lambda m, args, out: tower_batches.append(len(args[0])))
    try:
        answers = chat.answer_videos(videos, questions, system=system, answer_prefixes=prefixes, max_new_tokens=5)
    finally:
        hook.remove()
    assert tower_batches == [3 * 4]
    expected = [
        [greedy_reference(chat.model, processor, v, render_question(processor, q, system=s, answer_prefix=a), 5)
         for q, a in zip(qs, ps, strict=True)]
        for v, qs, s, ps in zip(videos, questions, system, prefixes, strict=True)
    ]
    assert answers == expected
    assert len({a for row in answers for a in row}) > 3
    # one system prompt for all videos, given once
    same = chat.answer_videos(videos[:2], questions[:2], system="Answer briefly.", max_new_tokens=5)
    assert same[0][0] == greedy_reference(chat.model, processor, videos[0],
                                          render_question(processor, questions[0][0], system="Answer briefly."), 5)
    assert len(same[1]) == 1


def test_render_question_uses_the_chat_template(tiny_parts):
    processor, _ = tiny_parts
    assert render_question(processor, "Why?") == processor.build_prompt("Why?")
    assert render_question(processor, "Why?", system="Be brief.") == "Be brief. USER: <video>\nWhy? ASSISTANT:"
    with_prefix = render_question(processor, "Why?", answer_prefix="Best option:(")
    assert with_prefix == processor.build_prompt("Why?") + " Best option:("


def test_answer_videos_rejects_misshaped_options(checkpoint):
    chat = VideoChat.from_pretrained(checkpoint, device="cpu")
    frames = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="answer_prefixes"):
        chat.answer_videos([frames], [["Hi", "Why?"]], answer_prefixes=[["Yes"]])
    with pytest.raises(ValueError, match="system prompts"):
        chat.answer_videos([frames], [["Hi"]], system=["a", "b"])
