"""Open-ended judging against a real loopback HTTP server: retries, timeouts, malformed replies, cache."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from unscene_helpers import ANNOTATIONS

from mashvlm.unscene.builder import build_questions
from mashvlm.unscene.chat import ChatClient, ChatSettings, ResponseCache, cache_key
from mashvlm.unscene.judge import (
    LEXICAL_JUDGE_NAME,
    LexicalJudge,
    OpenAIJudge,
    judge_messages,
    parse_score,
)
from mashvlm.unscene.records import Prediction, parse_annotation
from mashvlm.unscene.scoring import build_results, format_table, score_binary, score_open_ended


def _client(server, *, retries: int = 3, timeout: float = 2.0, model: str = "judge-model") -> ChatClient:
    settings = ChatSettings(
        model=model,
        base_url=server.url,
        api_key="test-key",
        timeout=timeout,
        max_retries=retries,
        seed=0,
    )
    return ChatClient(settings)


def test_429_then_success(chat_server) -> None:
    chat_server.push(("status", 429), ("status", 429), ("reply", '{"score": 4}'))
    judge = OpenAIJudge(_client(chat_server))
    j = judge.judge("action", "kicking a ball", "A man kicks a ball on a basketball court.")
    assert j.score == 4.0 and j.error is None
    assert len(chat_server.requests) == 3


def test_5xx_then_success_and_request_shape(chat_server) -> None:
    chat_server.push(("status", 500), ("status", 503), ("reply", "{'score': 2}"))
    judge = OpenAIJudge(_client(chat_server))
    assert judge.judge("scene", "restroom", "A person runs in a park.").score == 2.0
    body = chat_server.requests[-1]["body"]
    assert body["model"] == "judge-model"
    assert body["temperature"] == 0 and body["seed"] == 0
    assert chat_server.requests[-1]["auth"] == "Bearer test-key"
    assert chat_server.requests[-1]["path"] == "/v1/chat/completions"
    user = body["messages"][-1]["content"]
    assert "Correct scene: restroom" in user and "A person runs in a park." in user


def test_malformed_json_is_retried_then_reported_missing(chat_server) -> None:
    chat_server.responder = lambda body: ("malformed",)
    judge = OpenAIJudge(_client(chat_server, retries=2))
    j = judge.judge("action", "surfing", "Someone surfs.")
    assert j.score is None  # missing, never 0
    assert j.attempts == 3 and len(chat_server.requests) == 3
    assert "JSONDecodeError" in (j.error or "")


def test_reply_without_a_score_is_retried(chat_server) -> None:
    chat_server.push(
        ("reply", "I would say it is quite good."), ("reply", '{"score": 9}'), ("reply", '{"score": 3}')
    )
    judge = OpenAIJudge(_client(chat_server))
    assert judge.judge("action", "surfing", "Someone surfs.").score == 3.0
    assert len(chat_server.requests) == 3


def test_timeout_is_retried_and_bounded(chat_server) -> None:
    chat_server.push(("hang", 1.5), ("reply", '{"score": 5}'))
    judge = OpenAIJudge(_client(chat_server, timeout=0.3, retries=1))
    start = time.monotonic()
    assert judge.judge("action", "surfing", "Someone surfs.").score == 5.0
    assert time.monotonic() - start < 1.4  # gave up on the hanging request instead of waiting for it
    chat_server.responder = lambda body: ("hang", 1.5)
    j = judge.judge("action", "surfing", "A different description, so not cached.")
    assert j.score is None and "Timeout" in (j.error or "")


def test_client_errors_are_not_retried(chat_server) -> None:
    chat_server.push(("status", 401))
    j = OpenAIJudge(_client(chat_server)).judge("action", "surfing", "Someone surfs.")
    assert j.score is None and j.attempts == 1 and len(chat_server.requests) == 1


def test_parse_score() -> None:
    assert parse_score('{"score": 4}') == 4.0
    assert parse_score("{'pred': 'yes', 'score': 4.8}") == 4.8
    assert parse_score('Sure! ```json\n{"score": 0}\n```') == 0.0
    assert parse_score("score: 3") == 3.0
    for bad in ("great", '{"score": 7}', '{"score": "high"}', '{"score": true}'):
        with pytest.raises(ValueError):
            parse_score(bad)


def _questions():
    anns = [parse_annotation(r) for r in ANNOTATIONS]
    return build_questions(anns, seed=0)


DESCRIPTIONS = {
    "s1/open_ended": "An empty ice hockey rink with no people.",
    "s2/open_ended": "A snowy mountain where a man is skiing.",
    "u1/open_ended": "A man kicking a ball on a basketball court.",
    "u2/open_ended": "A person washing hands in a restroom.",
    "u3/open_ended": None,  # the model failed on this video
}


def _predictions() -> dict[str, Prediction]:
    out = {}
    for qid, text in DESCRIPTIONS.items():
        out[qid] = Prediction(qid, text) if text else Prediction(qid, None, "VideoDecodeError: broken")
    return out


def test_open_ended_scoring_cache_and_missing_judgments(chat_server, tmp_path: Path) -> None:
    questions = _questions()
    preds = _predictions()

    def responder(body):
        user = body["messages"][-1]["content"]
        if "washing hands" in user and "Correct action" in user:
            return ("status", 500)  # this one judgment always fails
        return ("reply", '{"score": 4}' if "Correct action" in user else '{"score": 2}')

    chat_server.responder = responder
    cache = ResponseCache(tmp_path / "cache.jsonl")
    judge = OpenAIJudge(_client(chat_server, retries=1), cache)
    oe = score_open_ended(questions, preds, judge, workers=2)
    # judgments: s1 action, s2 action, u1 action+scene, u2 action+scene; u3 failed (scored 0, not judged)
    assert oe.judgments_requested == 6
    assert oe.judgments_missing == 1 and oe.model_failures == 1
    assert oe.scores["scene_only_action"] == pytest.approx(4.0)
    assert oe.scores["unusual_action"] == pytest.approx((4 + 0) / 2)  # u1 4, u3 model failure 0, u2 missing
    assert oe.scores["unusual_scene"] == pytest.approx((2 + 2 + 0) / 3)
    assert oe.average == pytest.approx((4.0 + 2.0 + 4 / 3) / 3)
    first_requests = len(chat_server.requests)
    assert first_requests == 5 + 2  # five good judgments, one failing judgment tried twice

    results = build_results(questions, preds, score_binary(questions, preds), oe, judge=judge, model_name="m")
    # not a GPT model: its numbers are not comparable with the paper's GPT-3.5 judge
    assert results["judge"] == {"model": "judge-model", "comparable_to_paper": False}
    assert "NOT comparable" in format_table(results)
    assert results["counts"]["failed_or_missing_judgments"] == 1
    assert results["counts"]["open_ended_model_failures"] == 1
    assert "judge-model" in format_table(results)

    # re-scoring: every successful judgment comes from the disk cache; only the failed one is asked again
    cache2 = ResponseCache(tmp_path / "cache.jsonl")
    assert len(cache2) == 5
    oe2 = score_open_ended(questions, preds, OpenAIJudge(_client(chat_server, retries=1), cache2), workers=2)
    assert oe2.judgments_cached == 5
    assert len(chat_server.requests) == first_requests + 2
    assert oe2.scores == oe.scores

    # the cache is keyed by judge model: another judge asks again
    other = OpenAIJudge(
        _client(chat_server, retries=0, model="other-judge"), ResponseCache(tmp_path / "cache.jsonl")
    )
    before = len(chat_server.requests)
    score_open_ended(questions, preds, other, workers=1)
    assert len(chat_server.requests) - before == 6


def test_cache_survives_a_truncated_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    settings = ChatSettings(model="m")
    key = cache_key(settings, judge_messages("action", "surfing", "x"))
    path.write_text(
        f'{{"key": "{key}", "model": "m", "content": "{{\\"score\\": 3}}"}}\n{{"key": "abc", "con',
        encoding="utf-8",
    )
    cache = ResponseCache(path)
    assert cache.get(key) == '{"score": 3}' and len(cache) == 1
    assert path.read_text(encoding="utf-8").endswith("}\n")  # the torn line was cut off
    cache.put("k2", "m", "x")
    assert len(ResponseCache(path)) == 2


def test_lexical_judge() -> None:
    judge = LexicalJudge()
    assert judge.name == LEXICAL_JUDGE_NAME and not judge.comparable
    h_actions = ["dunking", "throwing a ball"]
    assert judge.judge("action", "kicking a ball", "A man kicks the ball.", h_actions).score == 5
    assert (
        judge.judge("action", "kicking a ball", "A man is kicking a ball, then dunking.", h_actions).score
        == 3
    )
    assert judge.judge("action", "kicking a ball", "A man kicking near a hoop.", h_actions).score == 3
    assert judge.judge("action", "kicking a ball", "A man is dunking.", h_actions).score == 0
    assert judge.judge("action", "kicking a ball", "A court.", h_actions).score == 1
    assert judge.judge("scene", "basketball court", "On a basketball court.", ["soccer field"]).score == 5
    assert judge.judge("scene", "basketball court", "On a soccer field.", ["soccer field"]).score == 0
    no_action = ["skiing", "snowboarding"]
    assert judge.judge("action", "no action", "An empty snowy mountain with no people.", no_action).score == 5
    assert judge.judge("action", "no action", "A snowy mountain under a blue sky.", no_action).score == 3
    assert judge.judge("action", "no action", "A man stands on a snowy mountain.", no_action).score == 1
    assert judge.judge("action", "no action", "People are skiing down the mountain.", no_action).score == 0
    assert judge.judge("action", "no action", "The slope is empty but a man is skiing.", no_action).score == 2
    synonyms = LexicalJudge({"restroom": ["bathroom", "toilet"]})
    assert synonyms.judge("scene", "restroom", "Parkour in a bathroom.", ["gym"]).score == 5
    assert judge.judge("scene", "restroom", "Parkour in a bathroom.", ["gym"]).score == 1


def test_lexical_judge_label_reaches_results() -> None:
    questions = _questions()
    preds = _predictions()
    judge = LexicalJudge()
    oe = score_open_ended(questions, preds, judge)
    results = build_results(questions, preds, score_binary(questions, preds), oe, judge=judge)
    assert results["judge"]["model"] == "offline-lexical (not comparable to GPT-judge scores)"
    assert results["judge"]["comparable_to_paper"] is False
    assert "NOT comparable" in format_table(results)
    assert results["open_ended"]["scene_only_action"] == pytest.approx((5 + 0) / 2)


@pytest.mark.parametrize(
    ("model", "comparable"),
    [
        ("gpt-3.5-turbo", True),
        ("gpt-3.5-turbo-0125", True),
        ("GPT-4o", True),
        ("meta-llama/Llama-3.1-8B-Instruct", False),
        ("Qwen2.5-7B-Instruct", False),
        ("judge-model", False),
        ("chatgpt", False),
    ],
)
def test_only_a_gpt_judge_is_comparable_to_the_paper(chat_server, model: str, comparable: bool) -> None:
    questions = _questions()
    preds = _predictions()
    judge = OpenAIJudge(_client(chat_server, model=model))
    assert judge.comparable is comparable
    oe = score_open_ended(questions, preds, judge, workers=1)
    results = build_results(questions, preds, score_binary(questions, preds), oe, judge=judge, model_name="m")
    assert results["judge"] == {"model": model, "comparable_to_paper": comparable}
    assert ("NOT comparable" in format_table(results)) is not comparable


def test_cache_is_keyed_by_endpoint(chat_server, other_chat_server, tmp_path: Path) -> None:
    """Two servers serving different models under the same name do not share cached replies."""
    chat_server.responder = lambda body: ("reply", '{"score": 4}')
    other_chat_server.responder = lambda body: ("reply", '{"score": 1}')
    path = tmp_path / "cache.jsonl"
    args = ("action", "surfing", "Someone surfs.")
    first = OpenAIJudge(_client(chat_server, model="same-name"), ResponseCache(path)).judge(*args)
    assert first.score == 4.0 and not first.cached
    second = OpenAIJudge(_client(other_chat_server, model="same-name"), ResponseCache(path)).judge(*args)
    assert second.score == 1.0 and not second.cached
    assert len(chat_server.requests) == 1 and len(other_chat_server.requests) == 1
    # each endpoint's reply is still cached for that endpoint
    again = OpenAIJudge(_client(chat_server, model="same-name"), ResponseCache(path)).judge(*args)
    assert again.score == 4.0 and again.cached and len(chat_server.requests) == 1
    # the default endpoint and its explicit URL are the same endpoint
    messages = judge_messages(*args)
    assert cache_key(ChatSettings(model="m"), messages) == cache_key(
        ChatSettings(model="m", base_url="https://api.openai.com/v1/"), messages
    )
    assert cache_key(ChatSettings(model="m"), messages) != cache_key(
        ChatSettings(model="m", base_url=chat_server.url), messages
    )


def test_cache_entries_from_before_the_endpoint_was_keyed_are_misses(chat_server, tmp_path: Path) -> None:
    import hashlib
    import json

    settings = _client(chat_server).settings
    messages = judge_messages("action", "surfing", "Someone surfs.")
    old_blob = json.dumps(  # the old key: no endpoint in it
        {"model": settings.model, "messages": messages, "temperature": 0.0, "seed": 0},
        sort_keys=True,
        ensure_ascii=False,
    )
    old_key = hashlib.sha256(old_blob.encode("utf-8")).hexdigest()
    path = tmp_path / "cache.jsonl"
    path.write_text(json.dumps({"key": old_key, "model": settings.model, "content": '{"score": 0}'}) + "\n")
    j = OpenAIJudge(_client(chat_server), ResponseCache(path)).judge("action", "surfing", "Someone surfs.")
    assert j.score == 4.0 and not j.cached and len(chat_server.requests) == 1
    assert len(ResponseCache(path)) == 2  # the old entry is left alone, the new one added
