"""A small OpenAI-compatible chat client: bounded in time, retried by the ``openai`` client, cached.

Used by the candidate builder and the open-ended judge, and meant for any evaluation that needs an
LLM judge (:class:`ChatClient`, :class:`ResponseCache`, :func:`cached_complete`).

* Retries are the ``openai`` client's own: 408, 409, 429 and 5xx replies, timeouts and connection
  errors are retried up to ``max_retries`` times, waiting ``Retry-After`` (up to 120 s) when the server
  sends one, else 0.5 s doubling to 8 s with jitter. A larger ``Retry-After`` and client errors (400,
  401, 403, 404, ...) are not retried.
* Time is bounded (:mod:`mashvlm.unscene.deadline`): each HTTP attempt ends within ``timeout`` seconds
  and the whole request, retries and waits included, within ``deadline`` seconds, even against a
  server that trickles bytes (httpx's own timeouts bound each read, not the request).
* A reply that arrives but is unusable (not JSON, no message, or rejected by ``validate``) is asked
  again, up to ``max_retries`` times, within the same deadline: the ``openai`` client cannot know it.

``openai`` is imported lazily so that importing :mod:`mashvlm.unscene` stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mashvlm.errors import FormatError, MashVlmError, UsageError
from mashvlm.files import append_jsonl, read_jsonl, repair_truncated_tail

Message = dict[str, str]


class ChatError(MashVlmError, RuntimeError):
    """A chat request failed for good (retries exhausted, deadline passed, or a non-retryable error)."""

    def __init__(self, message: str, *, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class MalformedReply(ValueError):
    """The endpoint answered, but not with a usable chat completion (asked again)."""


@dataclass
class ChatSettings:
    """Where and how to reach an OpenAI-compatible ``/chat/completions`` endpoint."""

    model: str
    base_url: str | None = None  # None: the openai client's default (api.openai.com)
    api_key: str | None = None
    timeout: float = 60.0  # seconds per HTTP attempt, whole attempt (connect, send, wait, read)
    deadline: float = 300.0  # seconds per request, every attempt and retry wait included
    max_retries: int = 5  # retries after the first attempt
    temperature: float = 0.0
    seed: int | None = 0
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("timeout", "deadline"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")

    @classmethod
    def from_env(
        cls,
        prefix: str,
        *,
        model: str | None,
        base_url: str | None,
        api_key: str | None,
        default_model: str | None = None,
        **kwargs: Any,
    ) -> ChatSettings:
        """Flags win over ``{prefix}_MODEL`` / ``_BASE_URL`` / ``_API_KEY``, then ``OPENAI_*``."""
        model = model or os.environ.get(f"{prefix}_MODEL") or default_model
        if not model:
            raise UsageError(f"no model name: pass one or set {prefix}_MODEL")
        base_url = base_url or os.environ.get(f"{prefix}_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        api_key = api_key or os.environ.get(f"{prefix}_API_KEY") or os.environ.get("OPENAI_API_KEY")
        return cls(model=model, base_url=base_url, api_key=api_key, **kwargs)


class ChatClient:
    """Thread-safe ``complete(messages) -> (content, parsed)``; counts HTTP requests for reports."""

    def __init__(self, settings: ChatSettings):
        from mashvlm.unscene.deadline import make_openai_client

        self.settings = settings
        api_key = settings.api_key
        if not api_key:
            if settings.base_url is None:
                raise UsageError("no API key for api.openai.com: pass one or set OPENAI_API_KEY")
            api_key = "EMPTY"  # local servers (vLLM, llama.cpp) accept any key
        self._lock = threading.Lock()
        self.requests = 0  # HTTP requests made (attempts, retries included)
        self._client = make_openai_client(
            base_url=settings.base_url,
            api_key=api_key,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            on_attempt=self._count_request,
        )

    def _count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def close(self) -> None:
        """Close the connections (the client is not usable afterwards)."""
        self._client.close()

    def complete(
        self, messages: Sequence[Message], validate: Callable[[str], object] | None = None
    ) -> tuple[str, object]:
        """Send one chat request; return ``(content, validate(content))``; raise ChatError on failure.

        ``validate`` parses the reply and raises ValueError if it is unusable; such a reply is asked
        again (a malformed reply is usually a one-off), like one that is not a chat completion.
        """
        import openai

        from mashvlm.unscene.deadline import DeadlineExceeded, request_bounds

        s = self.settings
        with request_bounds(s.timeout, s.deadline) as bounds:
            unusable: ValueError | None = None
            for _ in range(s.max_retries + 1):
                try:
                    content = self._request(messages)  # the openai client retries transient failures
                    return content, (validate(content) if validate is not None else None)
                except ValueError as err:  # JSONDecodeError, MalformedReply, rejected by validate
                    unusable = err
                except (openai.OpenAIError, DeadlineExceeded) as err:
                    raise ChatError(f"{type(err).__name__}: {err}", attempts=bounds.attempts) from err
            assert unusable is not None
            raise ChatError(f"{type(unusable).__name__}: {unusable}", attempts=bounds.attempts) from unusable

    def _request(self, messages: Sequence[Message]) -> str:
        s = self.settings
        kwargs: dict[str, Any] = {"model": s.model, "messages": list(messages), "temperature": s.temperature}
        if s.seed is not None:
            kwargs["seed"] = s.seed
        if s.max_tokens is not None:
            kwargs["max_tokens"] = s.max_tokens
        response = self._client.chat.completions.create(**kwargs)
        choices = getattr(response, "choices", None)
        if not choices:
            raise MalformedReply("reply has no choices")
        content = getattr(getattr(choices[0], "message", None), "content", None)
        if not isinstance(content, str):
            raise MalformedReply("reply has no message content")
        return content


def default_cache_dir() -> Path:
    """``$MASHVLM_CACHE_DIR`` or ``$XDG_CACHE_HOME/mashvlm`` or ``~/.cache/mashvlm``, plus ``/unscene``."""
    base = os.environ.get("MASHVLM_CACHE_DIR")
    if base:
        return Path(base) / "unscene"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mashvlm" / "unscene"


DEFAULT_BASE_URL = "https://api.openai.com/v1"  # the openai client's default endpoint


def cache_key(settings: ChatSettings, messages: Sequence[Message]) -> str:
    """Key of a request: the endpoint, the model, the prompt and the sampling settings.

    The endpoint is part of the key because two servers may serve different models under the same
    name. (Keys made before the endpoint was included simply never match: old entries are unused.)
    """
    blob = json.dumps(
        {
            "base_url": (settings.base_url or DEFAULT_BASE_URL).rstrip("/"),
            "model": settings.model,
            "messages": list(messages),
            "temperature": settings.temperature,
            "seed": settings.seed,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Append-only JSONL cache of successful chat replies, keyed by :func:`cache_key`.

    Each entry is flushed and fsynced as it is written, so a killed scoring run keeps every reply it
    paid for; a truncated last line (the kill) is cut off when the cache is next opened. Failures are
    never cached, so they are asked again next time.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, str] = {}
        self.hits = 0
        if self.path.exists():
            read = read_jsonl(self.path, allow_truncated_tail=True)
            for line in read.lines:
                key, content = line.record.get("key"), line.record.get("content")
                if not (isinstance(key, str) and isinstance(content, str)):
                    # Not a cache entry: refuse before repairing anything, so another file is never cut.
                    raise FormatError(self.path, line.lineno, None,
                                      "not a response-cache entry (needs string 'key' and 'content'); "
                                      "give the cache a file of its own")
                self._entries[key] = content
            repair_truncated_tail(self.path, read)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        with self._lock:
            content = self._entries.get(key)
            if content is not None:
                self.hits += 1
            return content

    def put(self, key: str, model: str, content: str) -> None:
        with self._lock:
            self._entries[key] = content
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                append_jsonl(fh, {"key": key, "model": model, "content": content})


def cached_complete(
    client: ChatClient,
    cache: ResponseCache | None,
    messages: Sequence[Message],
    validate: Callable[[str], object],
) -> tuple[object, bool]:
    """``(validate(reply), from_cache)``: the cache first, then the endpoint (raises ChatError)."""
    key = cache_key(client.settings, messages) if cache is not None else ""
    if cache is not None:
        content = cache.get(key)
        if content is not None:
            try:
                return validate(content), True
            except ValueError:
                pass  # an entry that no longer parses (parser changed): ask again
    content, parsed = client.complete(messages, validate)
    if cache is not None:
        cache.put(key, client.settings.model, content)
    return parsed, False
