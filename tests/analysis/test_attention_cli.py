"""``mashvlm analyze attention`` end to end on tiny checkpoints: a MASH-VLM and a causal baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mashvlm.cli import main
from mashvlm.files import write_jsonl_atomic

CORPUS = ["The person is kicking a ball on a basketball court.", "Is someone skating? Yes. No."]


def _checkpoint(path: Path, **mash_options) -> Path:
    from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config

    processor, config = tiny_processor_and_config(CORPUS, **mash_options)
    tiny_model(config, seed=0).save_pretrained(path)  # same weights: only the attention rule and RoPE differ
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    mash = _checkpoint(root / "mash")
    baseline = _checkpoint(root / "baseline", spatial_attention="causal", spatial_attends_temporal=True,
                           rope_variant="distinct")
    return mash, baseline


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """Questions about a scene-only video whose file is missing and an unusual-context video."""
    from mashvlm.unscene import build_questions, load_annotations
    from mashvlm.video import write_video

    root = tmp_path_factory.mktemp("unscene")
    frames = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    write_video(root / "videos" / "u1.mp4", frames, fps=10.0)
    annotations = [
        {"video_id": "s1", "video": "s1.mp4", "set": "scene_only", "action": None, "scene": "ice rink",
         "hallucinated_actions": ["skating"]},
        {"video_id": "u1", "video": "u1.mp4", "set": "unusual_context", "action": "kicking a ball",
         "scene": "basketball court", "hallucinated_actions": ["dunking"], "hallucinated_scenes": ["soccer field"]},
    ]
    write_jsonl_atomic(root / "annotations.jsonl", annotations)
    questions = build_questions(load_annotations(root / "annotations.jsonl"))
    write_jsonl_atomic(root / "questions.jsonl", [q.to_record() for q in questions])
    return root / "questions.jsonl", root / "videos"


@pytest.fixture(scope="module")
def pair_report(models, data, tmp_path_factory) -> tuple[dict, Path]:
    mash, baseline = models
    questions, video_root = data
    out = tmp_path_factory.mktemp("out")
    # limit 3 per category: action = s1's two (video missing) + u1's first; scene = u1's two.
    assert main(["analyze", "attention", "--model", str(mash), "--baseline", str(baseline),
                 "--questions", str(questions), "--video-root", str(video_root), "--limit", "3",
                 "--device", "cpu", "-o", str(out)]) == 0
    return json.loads((out / "attention.json").read_text()), out


def test_pair_report_structure_and_counts(pair_report, models):
    report, out = pair_report
    assert (out / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(report["models"]) == ["baseline", "model"]
    assert report["samples"] == {"action": 3, "scene": 2}
    assert report["left_out"] == {"open_ended": 2, "over_limit": 1}
    for role, path in (("model", models[0]), ("baseline", models[1])):
        result = report["models"][role]
        assert result["path"] == str(path)
        assert result["num_layers"] == 2
        # The scene-only video is missing: its two questions are recorded as failures, not dropped.
        assert len(result["failures"]) == 2
        assert all(f["category"] == "action" and "VideoNotFoundError" in f["error"] for f in result["failures"])
        assert {c: g["n"] for c, g in result["groups"].items()} == {"action": 1, "scene": 2}
        assert sorted(r["answer"] for r in result["records"]) == ["no", "yes", "yes"]  # u1: action gt, scene gt and hal
        assert all(r["answer_source"] == "given" for r in result["records"])
    assert report["models"]["model"]["attention_rule"]["spatial"] == "bidirectional"
    assert report["models"]["baseline"]["attention_rule"]["spatial_attends_temporal"] is True


def test_masses_are_probabilities_that_add_up(pair_report):
    report, _ = pair_report
    for result in report["models"].values():
        for record in result["records"]:
            for metric in ("spatial_to_text", "temporal_to_text", "text_to_text", "temporal_to_spatial"):
                assert all(0.0 <= v <= 1.0 for v in record[metric]), (metric, record[metric])
            total = np.add(np.add(record["spatial_to_text"], record["temporal_to_text"]), record["text_to_text"])
            np.testing.assert_allclose(total, 1.0, atol=1e-5)
            # The answer sees the whole video: with a barely trained model it attends both kinds of token.
            assert min(record["spatial_to_text"]) > 0 and min(record["temporal_to_text"]) > 0


def test_dst_attention_zeroes_what_it_forbids_and_the_causal_baseline_does_not(pair_report):
    report, _ = pair_report
    mash, baseline = report["models"]["model"], report["models"]["baseline"]
    for record in mash["records"]:
        assert max(record["temporal_to_spatial"]) == 0.0  # spatial queries never see temporal keys
        assert max(record["spatial_to_temporal"]) == 0.0
    for record in baseline["records"]:
        # Causal: spatial tokens come after the temporal ones and attend them.
        assert min(record["temporal_to_spatial"]) > 0.05
        assert max(record["spatial_to_temporal"]) == 0.0  # ... but never the other way round


def test_one_video_with_its_own_generated_answer(models, data, tmp_path, capsys):
    mash, _ = models
    video = data[1] / "u1.mp4"
    assert main(["analyze", "attention", "--model", str(mash), "--video", str(video), "--question",
                 "Is someone skating?", "--category", "action", "--max-new-tokens", "3", "--metric", "per_token",
                 "-o", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "attention.json").read_text())
    (record,) = report["models"]["model"]["records"]
    assert record["answer_source"] == "generated" and record["answer"]
    assert report["figure_metric"] == "per_token"
    assert list(report["models"]["model"]["groups"]) == ["action"]
    assert "model action (n=1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--video", "v.mp4"], "--video needs --question"),
        (["--video", "v.mp4", "--question", "q", "--questions", "q.jsonl"], "either --video"),
        (["--questions", "q.jsonl"], "--questions needs --video-root"),
    ],
)
def test_option_mistakes_are_one_line_errors(models, tmp_path, capsys, argv, message):
    assert main(["analyze", "attention", "--model", str(models[0]), *argv, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_a_missing_video_or_checkpoint_is_a_one_line_error(models, tmp_path, capsys):
    assert main(["analyze", "attention", "--model", str(models[0]), "--video", str(tmp_path / "none.mp4"),
                 "--question", "q", "--answer", "yes", "-o", str(tmp_path / "out")]) == 2
    assert "none.mp4" in capsys.readouterr().err
    assert main(["analyze", "attention", "--model", str(tmp_path / "nothing"), "--video", "v.mp4",
                 "--question", "q", "-o", str(tmp_path / "out")]) == 2
    assert "nothing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
