"""Zero-shot QA: converters from the original MSRVTT-QA / MSVD-QA / TGIF-QA FrameQA files (tiny files in
their released layouts), convert -> eval qa end to end, and Table 4 from results files worked by hand."""

from __future__ import annotations

import json

import pytest
from eval_helpers import FakeModel, write_gif, write_json

from mashvlm.cli import main
from mashvlm.errors import FormatError, UsageError
from mashvlm.evaluation import qa_formats, videoqa
from mashvlm.evaluation.judge import EvalJudge
from mashvlm.evaluation.run import build_table4, convert_qa, evaluate_qa
from mashvlm.unscene.chat import ChatClient, ChatSettings, ResponseCache

# xudejing/video-question-answering's records: id, question, answer, video_id (+ category_id in MSRVTT-QA)
MSRVTT = [
    {"answer": "man", "category_id": 0, "id": 158581, "question": "who is talking?", "video_id": 7010},
    {"answer": "cook", "category_id": 16, "id": 158582, "question": "what is a woman doing?", "video_id": 7012},
    {"answer": "2", "category_id": 3, "id": 158583, "question": "how many men dance?", "video_id": 7010},
]
MSVD = [
    {"answer": "someone", "id": 1, "question": "who opened the box?", "video_id": 1451},
    {"answer": "cat", "id": 2, "question": "what plays?", "video_id": 2},
]
MAPPING = "-4wsuPCjDBc_5_15 vid1\n-7KMZQEsJW4_205_208 vid2\nabc_1_9 vid1451\n"
# YunseokJANG/tgif-qa dataset/Test_frameqa_question.csv: header and tab-separated rows
TGIF_HEADER = "gif_name\tquestion\tanswer\ttype\tvid_id\tkey\tdescription"
TGIF_ROWS = [
    "tumblr_a\twhat is being placed in the white ice cream cone ?\tcookie\t0\tFRAMEQA1159\t27138\ta cookie .",
    "tumblr_b\thow many people are sitting ?\ttwo\t1\tFRAMEQA26835\t61016\ttwo people .",
    "tumblr_a\twhat is the color of the cone ?\twhite\t2\tFRAMEQA4460\t27138\ta white cone .",
]


def tgif_text(rows=TGIF_ROWS, header=TGIF_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_msrvtt_records_become_test_q_and_test_a():
    pairs = qa_formats.convert("msrvtt-qa", json.dumps(MSRVTT), "test_qa.json")
    questions, answers = qa_formats.split_records(pairs)
    assert questions[0] == {"video_name": "video7010", "question": "who is talking?", "question_id": 158581}
    assert answers[2] == {"answer": "2", "type": None, "question_id": 158583}
    assert [q["video_name"] for q in questions] == ["video7010", "video7012", "video7010"]


def test_msvd_names_vidN_or_the_youtube_clip():
    plain = qa_formats.convert("msvd-qa", json.dumps(MSVD), "test_qa.json")
    assert [p.video_name for p in plain] == ["vid1451", "vid2"]
    mapped = qa_formats.convert("msvd-qa", json.dumps(MSVD), "test_qa.json", MAPPING, "youtube_mapping.txt")
    assert [p.video_name for p in mapped] == ["abc_1_9", "-7KMZQEsJW4_205_208"]
    with pytest.raises(FormatError) as err:
        qa_formats.convert("msvd-qa", json.dumps(MSVD), "test_qa.json", "x vid1\n", "m.txt")
    assert err.value.field == "[0].video_id" and "vid1451 is not in the mapping m.txt" in str(err.value)


@pytest.mark.parametrize(("mapping", "line"), [("a vid1\nb vid1\n", 2), ("a vid1\n\nonly-one-token\n", 3),
                                               ("a video7\n", 1)])
def test_malformed_mapping_names_the_line(mapping, line):
    with pytest.raises(FormatError) as err:
        qa_formats.parse_youtube_mapping(mapping, "youtube_mapping.txt")
    assert err.value.line == line and str(err.value).startswith(f"youtube_mapping.txt:{line}:")


@pytest.mark.parametrize(("records", "field"), [
    ([MSRVTT[0], {**MSRVTT[1], "question": ""}], "[1].question"),
    ([{k: v for k, v in MSRVTT[0].items() if k != "answer"}], "[0].answer"),
    ([{**MSRVTT[0], "video_id": "7010"}], "[0].video_id"),
    ([{**MSRVTT[0], "id": None}], "[0].id"),
    ([MSRVTT[0], "not a record"], "[1]"),
])
def test_malformed_xu_record_names_record_and_field(records, field):
    with pytest.raises(FormatError) as err:
        qa_formats.convert("msrvtt-qa", json.dumps(records), "test_qa.json")
    assert err.value.path == "test_qa.json" and err.value.field == field


def test_duplicate_ids_and_empty_files_are_refused():
    with pytest.raises(FormatError, match="158581 occurs twice"):
        qa_formats.convert("msrvtt-qa", json.dumps([MSRVTT[0], MSRVTT[0]]), "test_qa.json")
    with pytest.raises(FormatError, match="no questions"):
        qa_formats.convert("msvd-qa", "[]", "test_qa.json")
    with pytest.raises(FormatError, match="not JSON"):
        qa_formats.convert("msvd-qa", "[{", "test_qa.json")


def test_tgif_frameqa_rows_become_pairs():
    pairs = qa_formats.convert("tgif-frameqa", tgif_text(), "Test_frameqa_question.csv")
    assert pairs[0] == qa_formats.QaPair("FRAMEQA1159", "tumblr_a",
                                         "what is being placed in the white ice cream cone ?", "cookie", 0)
    assert [p.type for p in pairs] == [0, 1, 2]
    # A quote is text (no CSV quoting in these files), and a trailing blank line is not a question.
    quoted = qa_formats.convert("tgif-frameqa", tgif_text([TGIF_ROWS[0].replace("what", '"what'), ""]), "f.csv")
    assert quoted[0].question.startswith('"what') and len(quoted) == 1


@pytest.mark.parametrize(("rows", "line", "field", "text"), [
    ([TGIF_ROWS[0], "tumblr_b\thow many ?\ttwo\t1\tFRAMEQA9"], 3, None, "5 tab-separated fields, the header has 7"),
    ([TGIF_ROWS[0], TGIF_ROWS[1].replace("\t1\t", "\tnumber\t")], 3, "type", "not a FrameQA type 0-3"),
    ([TGIF_ROWS[0], TGIF_ROWS[1].replace("\ttwo\t", "\t \t")], 3, "answer", "is empty"),
    ([TGIF_ROWS[0], TGIF_ROWS[1], TGIF_ROWS[0]], 4, "vid_id", "FRAMEQA1159' occurs twice (line 2 and line 4)"),
])
def test_malformed_tgif_row_names_the_line(rows, line, field, text):
    with pytest.raises(FormatError) as err:
        qa_formats.convert("tgif-frameqa", tgif_text(rows), "Test_frameqa_question.csv")
    assert (err.value.line, err.value.field) == (line, field) and text in str(err.value)


@pytest.mark.parametrize(("header", "text"), [
    ("gif_name\tquestion\ta1\ta2\ta3\ta4\ta5\tanswer\tvid_id\tkey", "FrameQA only"),
    ("gif_name\tquestion\tanswer\tvid_id\tkey", "header lacks type"),  # the Count task's file
    ("gif_name,question,answer,type,vid_id,key,description", "header lacks"),  # comma-separated
])
def test_other_tgif_files_are_refused(header, text):
    with pytest.raises(FormatError, match=text) as err:
        qa_formats.convert("tgif-frameqa", tgif_text([], header), "Test_action_question.csv")
    assert err.value.line == 1


def test_qa_convert_command_writes_both_files(tmp_path, capsys):
    src = write_json(tmp_path / "test_qa.json", MSVD)
    (tmp_path / "youtube_mapping.txt").write_text(MAPPING)
    out = tmp_path / "converted"
    assert main(["eval", "qa-convert", "--format", "msvd-qa", "--input", str(src), "--mapping",
                 str(tmp_path / "youtube_mapping.txt"), "--out-dir", str(out)]) == 0
    assert "2 questions on 2 videos" in capsys.readouterr().out
    assert json.loads((out / "test_q.json").read_text())[0] == {
        "video_name": "abc_1_9", "question": "who opened the box?", "question_id": 1}
    assert json.loads((out / "test_a.json").read_text())[1] == {"answer": "cat", "type": None, "question_id": 2}
    assert sorted(p.name for p in out.iterdir()) == ["test_a.json", "test_q.json"]  # no temp file left


@pytest.mark.parametrize(("argv", "text"), [
    (["--format", "msrvtt-qa", "--input", "{tmp}/nope.json"], "nope.json: no such annotation file"),
    (["--format", "tgif-frameqa", "--input", "{tmp}/bad.csv"], "bad.csv:3: 6 tab-separated fields"),
    (["--format", "msrvtt-qa", "--input", "{tmp}/bad.csv", "--mapping", "{tmp}/bad.csv"], "--mapping is for msvd-qa"),
])
def test_qa_convert_errors_are_one_line(tmp_path, capsys, argv, text):
    (tmp_path / "bad.csv").write_text(tgif_text([TGIF_ROWS[0], TGIF_ROWS[1].rsplit("\t", 1)[0]]))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["eval", "qa-convert", *argv, "--out-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and text in err and "Traceback" not in err
    assert not (tmp_path / "o" / "test_q.json").exists()


# --- convert -> eval qa -> table4 ------------------------------------------------------------------------
def _judge(server, tmp_path, model="gpt-3.5-turbo"):
    settings = ChatSettings(model=model, base_url=server.url, api_key="test", timeout=2, deadline=20, max_retries=1)
    return EvalJudge(ChatClient(settings), ResponseCache(tmp_path / "judge_cache.jsonl"))


def test_tgif_converted_then_evaluated_then_tabled(tmp_path, chat_server):
    (tmp_path / "Test_frameqa_question.csv").write_text(tgif_text())
    convert_qa("tgif-frameqa", tmp_path / "Test_frameqa_question.csv", tmp_path / "tgif")
    write_gif(tmp_path / "gifs/tumblr_a.gif")
    write_gif(tmp_path / "gifs/tumblr_b.gif")
    replies = {"cookie": "{'pred': 'yes', 'score': 5}", "two": "{'pred': 'no', 'score': 2}",
               "white": "{'pred': 'yes', 'score': 4}"}
    chat_server.responder = lambda body: ("reply", next(
        v for k, v in replies.items() if f"Correct Answer: {k}\n" in body["messages"][1]["content"]))
    model = FakeModel(lambda p: "an answer")
    out = tmp_path / "runs"
    results = evaluate_qa(model, _judge(chat_server, tmp_path), "tgif", tmp_path / "tgif/test_q.json",
                          tmp_path / "tgif/test_a.json", tmp_path / "gifs", out, progress=False, judge_workers=1)
    # yes/5, no/2, yes/4: accuracy 2/3, score 11/3; the gif tumblr_a decoded once for its two questions.
    assert (results["yes"], results["no"], results["missing"]) == (2, 1, 0)
    assert results["score"] == pytest.approx(11 / 3) and len(model.calls) == 2
    combined = build_table4([out], tmp_path / "table", method="MASH-VLM")
    lines = (tmp_path / "table/table4.txt").read_text().splitlines()
    assert lines[1] == "MASH-VLM\t-\t-\t-\t-\t66.7\t3.7\t-\t-"
    assert combined["missing_datasets"] == ["MSRVTT-QA", "MSVD-QA", "ActivityNet-QA"]


def _results(dataset, accuracy, score, *, judged=4, missing=0, failed=0, model="mash-vlm", judge="gpt-3.5-turbo"):
    return {"benchmark": "qa", "dataset": dataset, "model": model,
            "judge": {"model": judge, "comparable_with_paper": judge.startswith("gpt-3.5-turbo")},
            "accuracy": accuracy, "score": score, "yes": 0, "no": 0, "judged": judged, "missing": missing,
            "generation_failed": failed, "generation": {"total": judged + missing}}


def test_table4_from_hand_made_results(tmp_path, capsys):
    # MSRVTT-QA: 2 yes of 3 judged, scores 5+4+1 -> 66.7 / 3.3; 1 judgment missing.
    write_json(tmp_path / "a/qa_msrvtt_results.json", _results("msrvtt", 200 / 3, 10 / 3, judged=3, missing=1))
    # MSVD-QA: 3 yes of 4, scores 5+4+4+2 -> 75.0 / 3.75 -> "3.8" (half to even); one generation failed (a judged "no").
    write_json(tmp_path / "b/qa_msvd_results.json", _results("msvd", 75.0, 3.75, failed=1))
    write_json(tmp_path / "b/qa_activitynet_results.json", _results("activitynet", None, None, judged=0, missing=2))
    assert main(["eval", "table4", "--results", str(tmp_path / "a/qa_msrvtt_results.json"), str(tmp_path / "b"),
                 "--output-dir", str(tmp_path / "t")]) == 0
    text = (tmp_path / "t/table4.txt").read_text()
    assert capsys.readouterr().out == text
    assert text.splitlines() == [
        "Method\tMSRVTT-QA Acc\tMSRVTT-QA Score\tMSVD-QA Acc\tMSVD-QA Score\tTGIF-QA Acc\tTGIF-QA Score\t"
        "ActivityNet-QA Acc\tActivityNet-QA Score",
        "mash-vlm\t66.7\t3.3\t75.0\t3.8\t-\t-\t-\t-",
        "",
        "Counts\tMSRVTT-QA\tMSVD-QA\tTGIF-QA\tActivityNet-QA",
        "questions\t4\t4\t-\t2",
        "judged\t3\t4\t-\t0",
        "missing judgments\t1\t0\t-\t2",
        "generation failed\t0\t1\t-\t0",
    ]
    saved = json.loads((tmp_path / "t/table4.json").read_text())
    assert saved["datasets"]["tgif"] is None and saved["datasets"]["msrvtt"]["missing"] == 1
    assert saved["judges"] == ["gpt-3.5-turbo"] and saved["warnings"] == []


def test_table4_refuses_mixed_models_and_judges_unless_asked(tmp_path, capsys):
    a = write_json(tmp_path / "qa_msrvtt_results.json", _results("msrvtt", 50.0, 3.0))
    b = write_json(tmp_path / "qa_msvd_results.json", _results("msvd", 60.0, 3.0, judge="qwen2.5-7b"))
    with pytest.raises(UsageError, match="different judges") as err:
        build_table4([a, b], tmp_path / "t")
    assert "qa_msvd_results.json: qwen2.5-7b" in str(err.value) and not (tmp_path / "t").exists()
    combined = build_table4([a, b], tmp_path / "t", allow_mixed=True)
    assert any("different judges" in w for w in combined["warnings"])
    assert any("qwen2.5-7b is not the paper's" in w for w in combined["warnings"])
    assert "warning: the results come from different judges" in (tmp_path / "t/table4.txt").read_text()
    c = write_json(tmp_path / "other/qa_tgif_results.json", _results("tgif", 60.0, 3.0, model="baseline"))
    with pytest.raises(UsageError, match="different models"):
        build_table4([a, c], tmp_path / "t2")


def test_table4_input_errors(tmp_path, capsys):
    a = write_json(tmp_path / "x/qa_msvd_results.json", _results("msvd", 50.0, 3.0))
    b = write_json(tmp_path / "y/qa_msvd_results.json", _results("msvd", 60.0, 3.0))
    with pytest.raises(UsageError, match="two results for MSVD-QA"):
        build_table4([a, b], tmp_path / "t")
    bad = write_json(tmp_path / "qa_tgif_results.json", {**_results("tgif", 50.0, 3.0), "missing": -1})
    with pytest.raises(FormatError) as err:
        build_table4([bad], tmp_path / "t")
    assert err.value.field == "missing"
    vcg = write_json(tmp_path / "z/vcg_results.json", {"benchmark": "vcg"})
    assert main(["eval", "table4", "--results", str(vcg), "--output-dir", str(tmp_path / "t")]) == 2
    assert "not a results file of 'mashvlm eval qa'" in capsys.readouterr().err
    assert main(["eval", "table4", "--results", str(tmp_path / "z"), "--output-dir", str(tmp_path / "t")]) == 2
    assert "no qa_<dataset>_results.json in this folder" in capsys.readouterr().err


def test_combine_needs_runs():
    with pytest.raises(UsageError):
        videoqa.combine_table4([])
