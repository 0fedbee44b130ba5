"""Building questions: structure, determinism, and both candidate sources."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from unscene_helpers import ANNOTATIONS, read_jsonl, write_jsonl

from mashvlm.cli import main
from mashvlm.unscene.builder import build_questions, draw_candidate, fill_candidates
from mashvlm.unscene.candidates import (
    ACTIONS_FOR_SCENE,
    CandidateError,
    CooccurrenceTable,
    LLMCandidates,
    parse_label_list,
)
from mashvlm.unscene.chat import ChatClient, ChatSettings, ResponseCache
from mashvlm.unscene.formats import load_annotations, load_questions
from mashvlm.unscene.records import parse_annotation
from mashvlm.unscene.schema import Source


def _anns(records=ANNOTATIONS):
    return [parse_annotation(r, Source("a", i)) for i, r in enumerate(records, 1)]


def test_question_structure() -> None:
    questions = build_questions(_anns(), seed=0)
    by_video: dict[str, list] = {}
    for q in questions:
        by_video.setdefault(q.video_id, []).append(q)
    for vid in ("s1", "s2"):
        binary = [q for q in by_video[vid] if q.is_binary]
        assert len(binary) == 2 and {q.category for q in binary} == {"action"}
    for vid in ("u1", "u2", "u3"):
        binary = [q for q in by_video[vid] if q.is_binary]
        assert len(binary) == 4 and sorted(q.category for q in binary) == [
            "action",
            "action",
            "scene",
            "scene",
        ]
    assert sum(q.category == "open_ended" for q in questions) == 5

    s1 = {q.question_id: q for q in by_video["s1"]}
    assert s1["s1/action/ground_truth"].question == "Is this an empty ice hockey rink with no people?"
    assert s1["s1/action/ground_truth"].answer == "yes"
    hal = s1["s1/action/hallucination"]
    assert hal.answer == "no" and hal.label in ANNOTATIONS[0]["hallucinated_actions"]
    assert hal.question == f"Is someone {hal.label} in the video?"
    oe = s1["s1/open_ended"]
    assert (
        oe.question == "Describe the video in detail." and oe.action is None and oe.scene == "ice hockey rink"
    )

    u1 = {q.question_id: q for q in by_video["u1"]}
    assert u1["u1/action/ground_truth"].question == "Is someone kicking a ball in the video?"
    assert u1["u1/scene/ground_truth"].question == "Does this video take place in a basketball court?"
    assert u1["u1/scene/hallucination"].label in ANNOTATIONS[2]["hallucinated_scenes"]
    assert u1["u1/open_ended"].action == "kicking a ball"
    assert {q.pair_id for q in u1.values() if q.is_binary} == {"u1/action", "u1/scene"}


def test_draw_is_deterministic_and_local() -> None:
    cands = ["a", "b", "c", "d"]
    assert draw_candidate(cands, 0, "v1", "action") == draw_candidate(cands, 0, "v1", "action")
    draws = {draw_candidate(cands, seed, "v1", "action") for seed in range(40)}
    assert draws == set(cands)  # every candidate can be drawn
    # adding other videos does not change the draws of the existing ones
    base = build_questions(_anns(), seed=3)
    extra = dict(ANNOTATIONS[2], video_id="u9", video="unusual/u9.mp4")
    more = build_questions(_anns([extra, *ANNOTATIONS]), seed=3)
    assert [q.to_record() for q in more if q.video_id != "u9"] == [q.to_record() for q in base]


def test_cli_build_is_byte_reproducible(tmp_path: Path, annotations_file: Path) -> None:
    out1, out2, out3 = tmp_path / "q1.jsonl", tmp_path / "q2.jsonl", tmp_path / "q3.jsonl"
    assert (
        main(["unscene", "build", "--annotations", str(annotations_file), "-o", str(out1), "--seed", "5"])
        == 0
    )
    assert (
        main(["unscene", "build", "--annotations", str(annotations_file), "-o", str(out2), "--seed", "5"])
        == 0
    )
    assert out1.read_bytes() == out2.read_bytes()
    assert len(load_questions(out1)) == 2 * 2 + 3 * 4 + 5
    # a different seed changes some of the drawn labels (and nothing else)
    many = [dict(ANNOTATIONS[2], video_id=f"u{i}", video=f"u{i}.mp4") for i in range(20)]
    write_jsonl(annotations_file, many)
    main(["unscene", "build", "--annotations", str(annotations_file), "-o", str(out1), "--seed", "0"])
    main(["unscene", "build", "--annotations", str(annotations_file), "-o", str(out3), "--seed", "1"])
    a, b = read_jsonl(out1), read_jsonl(out3)
    assert [r["question_id"] for r in a] == [r["question_id"] for r in b]
    assert any(x["question"] != y["question"] for x, y in zip(a, b, strict=True))


def test_missing_candidates_without_a_source_is_an_error(tmp_path: Path, capsys) -> None:
    records = [{k: v for k, v in r.items() if not k.startswith("hallucinated")} for r in ANNOTATIONS]
    path = write_jsonl(tmp_path / "a.jsonl", records)
    code = main(["unscene", "build", "--annotations", str(path), "-o", str(tmp_path / "q.jsonl")])
    assert code == 2
    err = capsys.readouterr().err
    assert "5 video(s) have no hallucination candidates" in err and "s1 (line 1)" in err
    assert not (tmp_path / "q.jsonl").exists()


# --------------------------------------------------------------------------------------------------
# co-occurrence table


def test_cooccurrence_table_csv(tmp_path: Path, annotations_file: Path) -> None:
    table = tmp_path / "cooc.csv"
    table.write_text(
        "action,scene,count\n"
        "playing basketball,basketball court,50\n"
        "dunking,basketball court,30\n"
        "kicking a ball,basketball court,1\n"
        "dribbling,basketball court,30\n"
        "shooting hoops,basketball court,10\n"
        "passing,basketball court,2\n"
        "kicking a ball,soccer field,90\n"
        "kicking a ball,grass field,20\n"
        "kicking a ball,Soccer Stadium,20\n"
        "kicking a ball,basketball court,0\n"
        "kicking a ball,beach,5\n"
        "kicking a ball,backyard,1\n",
        encoding="utf-8",
    )
    src = CooccurrenceTable.load(table)
    # most frequent first, ties by label, the ground truth never offered
    assert src.actions_for_scene("Basketball Court", exclude=["kicking a ball"]) == [
        "playing basketball",
        "dribbling",
        "dunking",
        "shooting hoops",
    ]
    assert src.scenes_for_action("kicking a ball", exclude=["basketball court"]) == [
        "soccer field",
        "grass field",
        "Soccer Stadium",
        "beach",
    ]
    with pytest.raises(CandidateError, match="'surfing' is not in the co-occurrence table"):
        src.scenes_for_action("surfing")

    u1 = {k: v for k, v in ANNOTATIONS[2].items() if not k.startswith("hallucinated")}
    write_jsonl(annotations_file, [u1])
    out = tmp_path / "q.jsonl"
    args = [
        "unscene",
        "build",
        "--annotations",
        str(annotations_file),
        "-o",
        str(out),
        "--cooccurrence",
        str(table),
    ]
    assert main(args) == 0
    filled = load_annotations(tmp_path / "q.candidates.jsonl")
    assert filled[0].hallucinated_actions == ("playing basketball", "dribbling", "dunking", "shooting hoops")
    first = out.read_bytes()
    assert main(args) == 0 and out.read_bytes() == first


def test_cooccurrence_table_json_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        json.dumps({"scene_to_actions": {"restroom": ["washing hands", "doing parkour", "mopping"]}})
    )
    assert CooccurrenceTable.load(path).actions_for_scene("restroom", exclude=["doing parkour"]) == [
        "washing hands",
        "mopping",
    ]
    bad = tmp_path / "t.csv"
    bad.write_text("action,place\nx,y\n")
    with pytest.raises(Exception, match=r"t.csv:1: field 'scene'"):
        CooccurrenceTable.load(bad)
    bad.write_text("action,scene,count\nx,y,lots\n")
    with pytest.raises(Exception, match=r"t.csv:2: field 'count'"):
        CooccurrenceTable.load(bad)


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible endpoint


def test_parse_label_list() -> None:
    assert parse_label_list('["Dunking", "Lay up"]') == ["Dunking", "Lay up"]
    assert parse_label_list("Here you go:\n```json\n['a', 'b']\n```") == ["a", "b"]
    assert parse_label_list("1. Dunking\n2. Throwing a ball\n- Lay up") == [
        "Dunking",
        "Throwing a ball",
        "Lay up",
    ]
    assert parse_label_list("Soccer field, Grass field") == ["Soccer field", "Grass field"]
    with pytest.raises(ValueError):
        parse_label_list("   ")


def test_llm_candidates_through_a_real_http_server(chat_server, tmp_path: Path) -> None:
    def responder(body):
        user = body["messages"][-1]["content"]
        if "Given a scene label" in user:
            return (
                "reply",
                '["Dunking", "Kicking a ball", "Throwing a ball", "Lay up", "Crossover dribbling"]',
            )
        return ("reply", '["Soccer field", "Indoor soccer arena", "Soccer stadium", "Grass field"]')

    chat_server.responder = responder
    chat_server.push(("status", 429))  # the first request is rate limited, then retried
    settings = ChatSettings(
        model="gen-model",
        base_url=chat_server.url,
        api_key="k",
        timeout=2,
        max_retries=2,
        seed=0,
    )
    cache = ResponseCache(tmp_path / "llm.jsonl")
    src = LLMCandidates(ChatClient(settings), cache)
    u1 = _anns([{k: v for k, v in ANNOTATIONS[2].items() if not k.startswith("hallucinated")}])
    filled = fill_candidates(u1, src)
    # the ground truth is filtered out and four candidates are kept
    assert filled[0].hallucinated_actions == ("Dunking", "Throwing a ball", "Lay up", "Crossover dribbling")
    assert filled[0].hallucinated_scenes == (
        "Soccer field",
        "Indoor soccer arena",
        "Soccer stadium",
        "Grass field",
    )
    assert len(chat_server.requests) == 3
    prompts = chat_server.user_prompts()
    assert ACTIONS_FOR_SCENE.format(label="basketball court") in prompts
    assert any(
        "Given an action label, suggest scene labels where the action is most likely to occur" in p
        and "kicking a ball" in p
        for p in prompts
    )
    for r in chat_server.requests:  # text only: no image or video content parts
        assert all(isinstance(m["content"], str) for m in r["body"]["messages"])
        assert r["body"]["temperature"] == 0
    # a second build of the same labels is answered from the disk cache
    again = fill_candidates(u1, LLMCandidates(ChatClient(settings), ResponseCache(tmp_path / "llm.jsonl")))
    assert again == filled and len(chat_server.requests) == 3
    # the same label is asked once per run even for many videos
    many = [replace(u1[0], video_id=f"v{i}") for i in range(5)]
    fresh = LLMCandidates(ChatClient(settings), None)
    before = len(chat_server.requests)
    fill_candidates(many, fresh)
    assert len(chat_server.requests) - before == 2


def test_llm_failure_names_the_videos(chat_server) -> None:
    chat_server.responder = lambda body: ("status", 503)
    settings = ChatSettings(
        model="m", base_url=chat_server.url, api_key="k", timeout=2, max_retries=1
    )
    u1 = _anns([{k: v for k, v in ANNOTATIONS[2].items() if not k.startswith("hallucinated")}])
    with pytest.raises(CandidateError, match=r"video 'u1' \(line 1\).*after 2 attempt"):
        fill_candidates(u1, LLMCandidates(ChatClient(settings), None))


def _clear_llm_env(monkeypatch) -> None:
    for var in ("UNSCENE_LLM_MODEL", "UNSCENE_LLM_BASE_URL", "UNSCENE_LLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_llm_source_switched_on_by_the_environment_alone(
    chat_server, tmp_path: Path, monkeypatch, capsys
) -> None:
    _clear_llm_env(monkeypatch)
    chat_server.responder = lambda body: (
        "reply",
        '["Dunking", "Throwing a ball", "Lay up", "Crossover dribbling"]'
        if "Given a scene label" in body["messages"][-1]["content"]
        else '["Soccer field", "Grass field", "Beach", "Backyard"]',
    )
    # UNSCENE_LLM_MODEL names the model and switches the source on, as --llm-model does; the
    # endpoint comes from OPENAI_BASE_URL (which by itself would switch nothing on)
    monkeypatch.setenv("UNSCENE_LLM_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.url)
    monkeypatch.setenv("MASHVLM_CACHE_DIR", str(tmp_path / "cache"))
    u1 = {k: v for k, v in ANNOTATIONS[2].items() if not k.startswith("hallucinated")}
    annotations = write_jsonl(tmp_path / "a.jsonl", [u1])
    out = tmp_path / "q.jsonl"
    assert main(["unscene", "build", "--annotations", str(annotations), "-o", str(out)]) == 0, (
        capsys.readouterr().err
    )
    assert {r["body"]["model"] for r in chat_server.requests} == {"env-model"}
    filled = load_annotations(tmp_path / "q.candidates.jsonl")
    assert filled[0].hallucinated_actions == ("Dunking", "Throwing a ball", "Lay up", "Crossover dribbling")
    assert (tmp_path / "cache" / "unscene" / "llm.jsonl").exists()

    # an explicit --cooccurrence on the command line wins over the environment
    table = tmp_path / "cooc.csv"
    table.write_text(
        "action,scene\ndribbling,basketball court\nkicking a ball,soccer field\n", encoding="utf-8"
    )
    before = len(chat_server.requests)
    args = [
        "unscene",
        "build",
        "--annotations",
        str(annotations),
        "-o",
        str(out),
        "--cooccurrence",
        str(table),
    ]
    assert main(args) == 0
    assert len(chat_server.requests) == before
    assert load_annotations(tmp_path / "q.candidates.jsonl")[0].hallucinated_actions == ("dribbling",)


@pytest.mark.parametrize("flag", ["--llm-model", "--llm-base-url"])
def test_cooccurrence_and_an_llm_flag_are_refused(
    flag: str, tmp_path: Path, annotations_file: Path, monkeypatch, capsys
) -> None:
    _clear_llm_env(monkeypatch)
    table = tmp_path / "cooc.csv"
    table.write_text("action,scene\ndribbling,basketball court\n", encoding="utf-8")
    out = tmp_path / "q.jsonl"
    value = "http://127.0.0.1:9/v1" if flag == "--llm-base-url" else "some-model"
    args = ["unscene", "build", "--annotations", str(annotations_file), "-o", str(out)]
    assert main([*args, "--cooccurrence", str(table), flag, value]) == 2
    err = capsys.readouterr().err
    assert f"error: give either --cooccurrence or {flag}, not both" in err
    assert "Traceback" not in err and not out.exists()
