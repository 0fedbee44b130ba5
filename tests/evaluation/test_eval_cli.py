"""``mashvlm eval`` is registered and refuses bad options with one error line."""

from __future__ import annotations

import pytest

from mashvlm.cli import build_parser, main


def test_eval_commands_are_registered():
    args = build_parser().parse_args(["eval", "qa", "--model", "m", "--dataset", "tgif", "--questions", "q",
                                      "--answers", "a", "--video-dir", "v", "--output-dir", "o"])
    assert args.eval_command == "qa" and args.judge_model is None


def test_vcg_without_question_sets_is_a_usage_error(tmp_path, capsys):
    code = main(["eval", "vcg", "--model", str(tmp_path), "--video-dir", str(tmp_path), "--output-dir",
                 str(tmp_path / "o")])
    assert code == 2 and "give at least one of --generic" in capsys.readouterr().err


def test_unknown_dataset_is_refused():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "qa", "--dataset", "nope"])
