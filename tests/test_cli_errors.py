"""The command line's one error policy (issue 12), sub-command by sub-command.

A mistake a user can fix ends in ``error: <what and how to fix>`` on one stderr line and exit status 2,
printed by ``mashvlm.cli.main`` alone; an invalid option is argparse's usage message, also exit 2; any
other exception is a bug and reaches the caller with its traceback.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mashvlm.cli import main

ANNOTATION = {
    "video_id": "s1",
    "video": "scene/s1.mp4",
    "set": "scene_only",
    "action": None,
    "scene": "ice hockey rink",
    "hallucinated_actions": ["playing ice hockey", "skating", "shooting a puck", "refereeing"],
}


def fails_cleanly(argv: list[str], capsys, *expected: str) -> str:
    """Run the command; it must exit 2 with one ``error:`` line that contains every ``expected`` text."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    # (transformers may draw a "Loading weights" progress bar on stderr before the error)
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and err.endswith(lines[0] + "\n"), err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], err
    return lines[0]


def bad_option(argv: list[str], capsys, *expected: str) -> None:
    """argparse's own handling: usage plus ``error: argument ...``, exit 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and "Traceback" not in err
    for text in expected:
        assert text in err, err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny MASH-VLM checkpoint (32x32 frames, 4 frames)."""
    from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config

    processor, config = tiny_processor_and_config(["The person is jumping on a beach.", "Is it? Yes. No."])
    path = tmp_path_factory.mktemp("ckpt")
    tiny_model(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from mashvlm.video import write_video

    frames = np.stack([np.full((32, 32, 3), 8 * i, dtype=np.uint8) for i in range(12)])
    return Path(write_video(tmp_path_factory.mktemp("video") / "v.mp4", frames, fps=10.0))


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file.txt"
    path.write_text("not what you think\n")
    return path


def _broken_copy(checkpoint: Path, tmp_path: Path, name: str, content: str | bytes | None) -> Path:
    """A copy of the checkpoint with one file replaced (``None``: removed)."""
    path = tmp_path / "broken"
    shutil.copytree(checkpoint, path)
    if content is None:
        (path / name).unlink()
    elif isinstance(content, bytes):
        (path / name).write_bytes(content)
    else:
        (path / name).write_text(content)
    return path


# --------------------------------------------------------------------------------------------------
# describe and convert: model folders, videos, options


def test_describe_missing_checkpoint_folder(tmp_path, video, capsys):
    fails_cleanly(["describe", video, "--model", tmp_path / "nowhere"], capsys, "nowhere: not a directory")


def test_describe_checkpoint_that_is_a_file(a_file, video, capsys):
    fails_cleanly(["describe", video, "--model", a_file], capsys, "not a directory")


def _set_config(checkpoint: Path, **values) -> str:
    config = json.loads((checkpoint / "config.json").read_text())
    config.update(values)
    return json.dumps(config)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("config.json", "{broken", "config.json: not valid JSON"),
        ("config.json", "[1, 2]", "config.json: expected a JSON object"),
        ("config.json", "rope=foo", "config.json: invalid configuration (rope_variant must be one of"),
        ("config.json", "text_config", "config.json: invalid configuration (Unrecognized model type"),
        ("tokenizer.json", None, "no tokenizer.json"),
        ("tokenizer_config.json", "{", "tokenizer_config.json: not valid JSON"),
        ("processor_config.json", "{", "processor_config.json: not valid JSON"),
        ("model.safetensors", b"garbage", "model.safetensors: not a readable safetensors file"),
        ("model.safetensors", None, "no model.safetensors"),
    ],
)
def test_describe_broken_model_folder(checkpoint, video, tmp_path, capsys, name, content, expected):
    if content == "rope=foo":
        content = _set_config(checkpoint, rope_variant="foo")
    elif content == "text_config":
        content = _set_config(checkpoint, text_config={"model_type": "no_such_model"})
    broken = _broken_copy(checkpoint, tmp_path, name, content)
    line = fails_cleanly(["describe", video, "--model", broken], capsys, expected)
    assert len(line) < 600  # transformers' list of every model type is cut


def test_describe_bad_video(checkpoint, tmp_path, a_file, capsys):
    fails_cleanly(["describe", tmp_path / "none.mp4", "--model", checkpoint], capsys, "none.mp4: no such file")
    fails_cleanly(["describe", a_file, "--model", checkpoint], capsys, "a_file.txt: cannot open as a video")


def test_describe_bad_device(checkpoint, video, capsys):
    fails_cleanly(["describe", video, "--model", checkpoint, "--device", "toaster"], capsys, "device 'toaster'")


def test_describe_bad_max_new_tokens(checkpoint, video, capsys):
    bad_option(["describe", video, "--model", checkpoint, "--max-new-tokens", "0"], capsys, "--max-new-tokens")


def test_describe_invalid_time_range(checkpoint, video, capsys):
    fails_cleanly(["describe", video, "--model", checkpoint, "--start", "5", "--end", "1"], capsys, "v.mp4")


def test_convert_llava_bad_source(tmp_path, capsys):
    fails_cleanly(["convert", "llava", tmp_path / "nowhere", tmp_path / "out"], capsys, "not a directory")
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text('{"model_type": llava}')
    fails_cleanly(["convert", "llava", src, tmp_path / "out"], capsys, "config.json: not valid JSON")
    (src / "config.json").write_text('{"model_type": "llava"}')
    fails_cleanly(["convert", "llava", src, tmp_path / "out"], capsys, "no model.safetensors")


def test_convert_llava_destination_is_a_file(tmp_path, a_file, capsys):
    fails_cleanly(["convert", "llava", tmp_path, a_file], capsys, "DST", "is a file, not a folder")


def test_convert_llava_bad_num_frames(tmp_path, capsys):
    bad_option(["convert", "llava", tmp_path, tmp_path / "out", "--num-frames", "-3"], capsys, "--num-frames")


# --------------------------------------------------------------------------------------------------
# train: the config file and --set


@pytest.fixture
def train_setup(tmp_path: Path) -> Path:
    """A config naming an existing (empty) training file."""
    (tmp_path / "train.json").write_text("[]")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"train_file": "train.json", "output_dir": "out"}))
    return config


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such config file"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"train_file": "t.json", "learning_rat": 1}', "unknown key(s) ['learning_rat']"),
        ('{"output_dir": "out"}', "field 'train_file': missing"),
        ('{"train_file": "t.json", "learning_rate": "fast"}', "learning_rate must be float, got 'fast'"),
        ('{"train_file": "t.json", "init": "gpt"}', "init must be 'tiny'"),
        ('{"train_file": "t.json", "mash": {"rope_variant": "spiral"}}', "rope_variant must be one of"),
    ],
)
def test_train_bad_config_file(tmp_path, capsys, content, expected):
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content)
    fails_cleanly(["train", "--config", config], capsys, str(config), expected)


def test_train_config_is_a_folder(tmp_path, capsys):
    fails_cleanly(["train", "--config", tmp_path], capsys, "is a folder")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("learning_rate", "--set expects KEY=VALUE"),
        ("learning_rat=1e-3", "--set: unknown key(s) ['learning_rat']"),
        ("learning_rate=fast", "learning_rate must be float, got 'fast'"),
        ("max_steps=2.5", "max_steps must be int"),
        ('mash={"dst": true}', "unknown 'mash' option(s) ['dst']"),
        ("bf16=1", "bf16 must be bool"),
    ],
)
def test_train_bad_set_value(train_setup, capsys, setting, expected):
    fails_cleanly(["train", "--config", train_setup, "--set", setting], capsys, expected)


def test_train_files_and_folders(train_setup, tmp_path, a_file, capsys):
    fails_cleanly(["train", "--config", train_setup, "--train-file", tmp_path], capsys, "train_file", "is a folder")
    fails_cleanly(["train", "--config", train_setup, "--train-file", tmp_path / "no.json"], capsys, "does not exist")
    fails_cleanly(["train", "--config", train_setup, "--output-dir", a_file], capsys, "output_dir", "is a file")
    fails_cleanly(
        ["train", "--config", train_setup, "--set", f"init=mashvlm:{tmp_path / 'nowhere'}"], capsys, "not a directory"
    )
    fails_cleanly(["train", "--config", train_setup, "--set", f"vision_tower_weights={a_file}"], capsys, "safetensors")


def test_train_bad_training_data(train_setup, capsys):
    (train_setup.parent / "train.json").write_text("{not json")
    fails_cleanly(["train", "--config", train_setup], capsys, "train.json:1: not valid JSON")


# --------------------------------------------------------------------------------------------------
# synth and demo


def test_synth_bad_values(tmp_path, a_file, capsys):
    fails_cleanly(["synth", "--rho", "2", "--out", tmp_path / "w"], capsys, "invalid WorldConfig", "rho")
    fails_cleanly(["synth", "--qa-per-video", "3", "--out", tmp_path / "w"], capsys, "qa_per_video")
    fails_cleanly(["synth", "--quick", "--out", a_file], capsys, "--out", "is a file")
    fails_cleanly(["synth", "--quick", "--out", a_file / "world"], capsys, "is a file, so no folder can be made")
    bad_option(["synth", "--seed", "-1"], capsys, "--seed")
    bad_option(["synth", "--size", "big"], capsys, "--size")
    assert not (tmp_path / "w").exists()  # refused before any work


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("learning_rate", "--set expects KEY=VALUE"),
        ("learnin_rate=1", "--set: unknown study setting(s) ['learnin_rate']"),
        ('variants=["mash", "nope"]', "unknown study variant(s) ['nope']"),
        ("seeds=[]", "need at least one seed"),
        ('max_steps="many"', "max_steps must be int"),
        ('seeds=["a"]', "seeds must be list[int], got ['a']"),
        ('world={"rho": "high"}', "WorldConfig: rho must be float, got 'high'"),
        ('world={"n_trian": 5}', "unknown WorldConfig fields: ['n_trian']"),
        ('world={"rho": 1.5}', "invalid WorldConfig: rho"),
    ],
)
def test_demo_bad_set_value(tmp_path, capsys, setting, expected):
    fails_cleanly(["demo", "--out", tmp_path / "d", "--set", setting], capsys, expected)
    assert not (tmp_path / "d").exists()  # refused before the study folder is made


def test_demo_output_is_a_file(a_file, capsys):
    fails_cleanly(["demo", "--quick", "--out", a_file], capsys, "--out", "is a file")


def test_demo_refuses_a_folder_of_another_study(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "study_config.json").write_text(json.dumps({"world_seed": 99}))
    capsys.readouterr()
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "another configuration" in err and "\n" not in err


def test_demo_bad_options(capsys):
    bad_option(["demo", "--steps", "0"], capsys, "--steps")
    bad_option(["demo", "--variants", "nope"], capsys, "--variants")


# --------------------------------------------------------------------------------------------------
# unscene


@pytest.fixture
def unscene_files(tmp_path: Path) -> dict[str, Path]:
    annotations = tmp_path / "ann.jsonl"
    annotations.write_text(json.dumps(ANNOTATION) + "\n")
    questions = tmp_path / "q.jsonl"
    assert main(["unscene", "build", "--annotations", str(annotations), "-o", str(questions)]) == 0
    videos = tmp_path / "videos"
    (videos / "scene").mkdir(parents=True)
    (videos / "scene" / "s1.mp4").write_bytes(b"placeholder")
    return {"annotations": annotations, "questions": questions, "videos": videos}


def test_unscene_build_bad_inputs(tmp_path, unscene_files, a_file, capsys):
    ann = unscene_files["annotations"]
    fails_cleanly(["unscene", "build", "--annotations", tmp_path, "-o", tmp_path / "q2.jsonl"], capsys, "is a folder")
    fails_cleanly(["unscene", "build", "--annotations", tmp_path / "no.jsonl", "-o", "q2.jsonl"], capsys, "not found")
    fails_cleanly(["unscene", "build", "--annotations", a_file, "-o", tmp_path / "q2.jsonl"], capsys, "a_file.txt:1")
    fails_cleanly(["unscene", "build", "--annotations", ann, "-o", tmp_path], capsys, "--output", "is a folder")
    fails_cleanly(
        ["unscene", "build", "--annotations", ann, "-o", tmp_path / "q2.jsonl", "--cooccurrence", a_file,
         "--llm-model", "m"],
        capsys,
        "not both",
    )
    # The one multi-line message: the missing videos, one per line under the error line.
    capsys.readouterr()
    assert main(["unscene", "build", "--annotations", str(ann), "-o", str(tmp_path / "q2.jsonl"),
                 "--video-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: 1 video file(s) not found under {tmp_path}:\n  {ann}:1: scene/s1.mp4")
    assert not (tmp_path / "q2.jsonl").exists()
    bad_option(["unscene", "build", "--annotations", ann, "-o", "q.jsonl", "--num-candidates", "0"], capsys)


def test_unscene_validate_bad_inputs(tmp_path, unscene_files, capsys):
    fails_cleanly(["unscene", "validate"], capsys, "give at least one of")
    fails_cleanly(["unscene", "validate", "--questions", tmp_path], capsys, "--questions", "is a folder")
    fails_cleanly(["unscene", "validate", "--predictions", tmp_path / "p.jsonl"], capsys, "not found")


def _write_model_module(folder: Path) -> None:
    (folder / "cli_error_models.py").write_text(
        textwrap.dedent(
            """
            class Good:
                def __init__(self, reply="Yes."):
                    self.reply = reply

                def answer(self, video_path, question):
                    return self.reply

            class NoAnswer:
                pass

            class Failing:
                def answer(self, video_path, question):
                    raise RuntimeError("model exploded")
            """
        )
    )
    (folder / "cli_error_broken_module.py").write_text("import a_dependency_that_is_not_installed\n")


def _run(files: dict[str, Path], out: Path, *extra) -> list:
    return ["unscene", "run", "--questions", files["questions"], "--video-root", files["videos"], "-o", out,
            "--no-progress", *extra]


def test_unscene_run_bad_inputs(tmp_path, unscene_files, a_file, capsys, monkeypatch):
    _write_model_module(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "p.jsonl"
    files = unscene_files
    fails_cleanly(_run(files, out, "--model", tmp_path / "nowhere"), capsys, "nowhere: not a directory")
    fails_cleanly(_run(files, out, "--model", tmp_path, "--dtype", "float42"), capsys, "unknown torch dtype")
    fails_cleanly(_run(files, tmp_path, "--model-class", "cli_error_models:Good"), capsys, "--output", "is a folder")
    fails_cleanly(_run({**files, "videos": a_file}, out, "--model-class", "m:C"), capsys, "--video-root")
    fails_cleanly(_run(files, out, "--model-class", "no_such_module_xyz:Model"), capsys, "no module named")
    fails_cleanly(_run(files, out, "--model-class", "cli_error_models"), capsys, "package.module:ClassName")
    fails_cleanly(_run(files, out, "--model-class", "cli_error_models:Missing"), capsys, "no attribute 'Missing'")
    fails_cleanly(_run(files, out, "--model-class", "cli_error_models:NoAnswer"), capsys, "does not implement")
    fails_cleanly(
        _run(files, out, "--model-class", "cli_error_models:Good", "--model-arg", "temperature=0"),
        capsys,
        "--model-arg does not fit",
    )
    fails_cleanly(
        _run(files, out, "--model-class", "cli_error_models:Good", "--model-arg", "reply"), capsys, "KEY=VALUE"
    )
    assert not out.exists()
    # A model the user's code cannot import is their bug: the traceback points into their module.
    with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"):
        main([str(a) for a in _run(files, out, "--model-class", "cli_error_broken_module:Model")])


def test_unscene_run_aborted_exits_1(tmp_path, unscene_files, capsys, monkeypatch):
    _write_model_module(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = _run(unscene_files, tmp_path / "p.jsonl", "--model-class", "cli_error_models:Failing",
                "--max-consecutive-failures", "1")
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_unscene_score_bad_inputs(tmp_path, unscene_files, a_file, capsys, monkeypatch):
    q = unscene_files["questions"]
    preds = tmp_path / "p.jsonl"
    preds.write_text("")
    fails_cleanly(["unscene", "score", "--questions", q, "--predictions", preds, "--per-video"], capsys,
                  "--per-video needs --output-dir")
    fails_cleanly(["unscene", "score", "--questions", q, "--predictions", preds, "--output-dir", a_file], capsys,
                  "--output-dir", "is a file")
    fails_cleanly(["unscene", "score", "--questions", q, "--predictions", tmp_path], capsys, "--predictions",
                  "is a folder")
    fails_cleanly(["unscene", "score", "--questions", q, "--predictions", preds, "--judge", "offline-lexical",
                   "--synonyms", tmp_path / "syn.json"], capsys, "syn.json")
    for name in ("UNSCENE_JUDGE_API_KEY", "OPENAI_API_KEY", "UNSCENE_JUDGE_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    fails_cleanly(["unscene", "score", "--questions", q, "--predictions", preds, "--judge", "openai",
                   "--no-judge-cache"], capsys, "no API key")


def test_python_m_unscene_cli_follows_the_same_policy(tmp_path, capsys):
    from mashvlm.unscene.cli import main as unscene_main

    assert unscene_main(["validate", "--questions", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: --questions")


# --------------------------------------------------------------------------------------------------
# a bug is not a user error


def test_a_bug_keeps_its_traceback(monkeypatch, unscene_files, capsys):
    import mashvlm.unscene.formats as formats

    def broken(*args, **kwargs):
        raise KeyError("a bug in the loader")

    monkeypatch.setattr(formats, "load_questions", broken)
    with pytest.raises(KeyError, match="a bug in the loader"):
        main(["unscene", "validate", "--questions", str(unscene_files["questions"])])
    assert "error:" not in capsys.readouterr().err


def test_value_errors_from_code_are_not_user_errors(monkeypatch, tmp_path):
    """A plain ValueError (no MashVlmError) inside a command is a bug, not 'bad input'."""
    import mashvlm.synth.world as world

    def broken(*args, **kwargs):
        raise ValueError("internal invariant broken")

    monkeypatch.setattr(world, "build_world", broken)
    with pytest.raises(ValueError, match="internal invariant broken"):
        main(["synth", "--quick", "--out", str(tmp_path / "w"), "--no-progress"])
