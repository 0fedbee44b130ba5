"""VCG-Bench and zero-shot QA: judge parsing and aggregation by hand, then end to end against a loopback
judge that also answers 429, 5xx, garbage and hangs."""

from __future__ import annotations

import json

import pytest
from eval_helpers import FakeModel, write_json, write_mp4

from mashvlm.evaluation import vcg, videoqa
from mashvlm.evaluation.judge import EvalJudge, judge_warning
from mashvlm.evaluation.run import evaluate_qa, evaluate_vcg
from mashvlm.files import read_jsonl
from mashvlm.unscene.chat import ChatClient, ChatSettings, ResponseCache


@pytest.mark.parametrize(("reply", "score"), [("{'score': 4}", 4), ("{'score': 4.8}", 4), (" {'score': '3'} ", 3)])
def test_vcg_parse_hand_worked(reply, score):
    assert vcg.parse_judgment(reply) == score


@pytest.mark.parametrize("reply", ["{''score': 4.8}", "{'score': 7}", "score: 4", "{'pred': 'yes'}", "[4]",
                                   "__import__('os')"])
def test_vcg_parse_refuses_unusable_replies(reply):
    with pytest.raises(ValueError):
        vcg.parse_judgment(reply)


def test_qa_parse_hand_worked():
    assert videoqa.parse_judgment("{'pred': 'yes', 'score': 4}") == (True, 4)
    assert videoqa.parse_judgment("{'pred': 'No', 'score': 1.9}") == (False, 1)
    with pytest.raises(ValueError):
        videoqa.parse_judgment("{'pred': 'maybe', 'score': 3}")


def test_aggregates_hand_worked():
    # yes, no, yes judged; one missing judgment: acc 2/3, score (5 + 1 + 3) / 3 = 3.
    r = videoqa.aggregate([(True, 5), (False, 1), None, (True, 3)])
    assert (r["accuracy"], r["score"], r["missing"], r["judged"]) == (pytest.approx(200 / 3), 3.0, 1, 3)
    v = vcg.aggregate({"CI": [4, None, 2], "DO": [3], "CU": [5], "TU": [1], "CO": [0, 2]})
    assert v["scores"] == {"CI": 3.0, "DO": 3.0, "CU": 5.0, "TU": 1.0, "CO": 1.0}
    assert v["missing"]["CI"] == 1 and v["average"] == pytest.approx(13 / 5)
    assert vcg.table("m", v).splitlines() == ["Method\tCI\tDO\tCU\tTU\tCO\tAvg.", "m\t3.00\t3.00\t5.00\t1.00\t1.00\t2.60"]


def test_judge_prompts_quote_video_chatgpt():
    m = vcg.judge_messages("CI", "Q?", "A.", "P.")
    assert m[0]["content"].startswith("You are an intelligent chatbot designed for evaluating the factual accuracy")
    assert m[1]["content"].startswith("Please evaluate the following video-based question-answer pair:\n\n"
                                      "Question: Q?\nCorrect Answer: A.\nPredicted Answer: P.\n\n")
    assert m[1]["content"].endswith("For example, your response should look like this: {''score': 4.8}.")
    q = videoqa.judge_messages("Q?", "A.", "P.")[1]["content"]
    assert "value of 'pred' is  a string of 'yes' or 'no'" in q
    assert q.endswith("{'pred': 'yes', 'score': 4.8}.")


def test_judge_warning():
    assert judge_warning("gpt-3.5-turbo") is None and judge_warning("gpt-3.5-turbo-0125") is None
    assert "not comparable" in judge_warning("qwen2.5-7b-instruct")


def _judge(server, tmp_path, model="gpt-3.5-turbo", retries=2):
    settings = ChatSettings(model=model, base_url=server.url, api_key="test", timeout=0.5, deadline=20,
                            max_retries=retries)
    return EvalJudge(ChatClient(settings), ResponseCache(tmp_path / "judge_cache.jsonl"))


def _qa_layout(tmp_path):
    write_mp4(tmp_path / "videos/v_a.mp4", n=8)
    write_mp4(tmp_path / "videos/v_b.mp4", n=8, seed=1)
    q = write_json(tmp_path / "test_q.json", [
        {"video_name": "a", "question": "what is he doing?", "question_id": "a_0"},
        {"video_name": "a", "question": "is it day?", "question_id": "a_1"},
        {"video_name": "b", "question": "what color?", "question_id": "b_0"},
        {"video_name": "gone", "question": "where?", "question_id": "c_0"},
    ])
    a = write_json(tmp_path / "test_a.json", [  # another order: paired by question_id
        {"answer": "red", "type": 3, "question_id": "b_0"}, {"answer": "running", "type": 0, "question_id": "a_0"},
        {"answer": "yes", "type": 1, "question_id": "a_1"}, {"answer": "park", "type": 2, "question_id": "c_0"},
    ])
    return q, a


QA_REPLIES = {"running": "{'pred': 'yes', 'score': 5}", "is it day": "{'pred': 'no', 'score': 1}",
              "what color": "this is not a dict"}


def _qa_responder(body):
    user = body["messages"][1]["content"]
    return ("reply", next(v for k, v in QA_REPLIES.items() if k in user))


def test_qa_end_to_end_with_a_flaky_judge(tmp_path, chat_server):
    q, a = _qa_layout(tmp_path)
    chat_server.responder = _qa_responder
    chat_server.push(("status", 429), ("status", 500), ("malformed",), ("hang", 2))
    model = FakeModel(lambda p: {"what is he doing?": "he is running", "is it day?": "it is night",
                                 "what color?": "blue"}[p.user])
    out = tmp_path / "out"
    judge = _judge(chat_server, tmp_path)
    results = evaluate_qa(model, judge, "activitynet", q, a, tmp_path / "videos", out, progress=False,
                          judge_workers=1)
    # a_0 yes/5, a_1 no/1, b_0 garbage every time (missing, not 0), c_0 no video: wrong with score 0.
    assert (results["yes"], results["no"], results["missing"], results["generation_failed"]) == (1, 2, 1, 1)
    assert results["accuracy"] == pytest.approx(100 / 3) and results["score"] == pytest.approx(2.0)
    assert results["judge"]["model"] == "gpt-3.5-turbo" and results["judge"]["warning"] is None
    assert len(model.calls) == 2 and len(model.calls[0][1]) == 2  # video a once for both its questions
    samples = {r.record["id"]: r.record for r in read_jsonl(out / "qa_activitynet_samples.jsonl").lines}
    assert samples["b_0"]["score"] is None and "not a Python dict" in samples["b_0"]["judge_error"]
    assert samples["c_0"]["prediction"] is None and samples["c_0"]["score"] == 0
    assert (out / "qa_activitynet_table.txt").read_text().splitlines()[1] == "fake\t33.3\t2.0"
    # A second run asks neither the model nor the judge again for what it has (the cache answers).
    before = len(chat_server.requests)
    again = FakeModel(model.reply)
    evaluate_qa(again, judge, "activitynet", q, a, tmp_path / "videos", out, progress=False, judge_workers=1)
    assert again.calls == []
    assert len(chat_server.requests) - before == 3  # only the unparseable judgment is asked again (3 tries)


def test_vcg_end_to_end(tmp_path, chat_server):
    write_mp4(tmp_path / "videos/v1.mp4", n=8)
    generic = write_json(tmp_path / "generic_qa.json", [{"video_name": "v1", "Q": "gq", "A": "ga"}])
    temporal = write_json(tmp_path / "temporal_qa.json", [{"video_name": "v1", "Q": "tq", "A": "ta"}])
    consistency = write_json(tmp_path / "consistency_qa.json",
                             [{"video_name": "v1", "Q1": "c1", "Q2": "c2", "A": "ca"}])
    by_aspect = {"factual accuracy": 4, "detail orientation": 3, "contextual understanding": 5,
                 "temporal understanding": 2, "consistency of generative": 1}
    chat_server.responder = lambda body: ("reply", str({"score": next(
        v for k, v in by_aspect.items() if k in body["messages"][0]["content"])}))
    model = FakeModel(lambda p: "pred-" + p.user)
    out = tmp_path / "out"
    results = evaluate_vcg(model, _judge(chat_server, tmp_path, model="local-judge"), tmp_path / "videos", out,
                           generic=generic, temporal=temporal, consistency=consistency, progress=False)
    assert results["scores"] == {"CI": 4, "DO": 3, "CU": 5, "TU": 2, "CO": 1}
    assert results["average"] == pytest.approx(3.0)
    assert "not comparable" in results["judge"]["warning"]
    assert len(model.calls) == 1 and len(model.calls[0][1]) == 4  # one video, four questions, one call
    co = next(p for p in chat_server.user_prompts() if "Question 1:" in p)
    # The reference fills "Question 2" with Q1 (kept); the second prediction is Q2's.
    assert "Question 1: c1\nQuestion 2: c1\n" in co and "Predicted Answer to Question 2: pred-c2" in co
    saved = json.loads((out / "vcg_results.json").read_text())
    assert saved["judge"]["model"] == "local-judge"
