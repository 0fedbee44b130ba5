"""The chat client's retries and time bounds against raw loopback servers (127.0.0.1, ended with the test).

Each server reads one HTTP request per connection and then follows a script: answer, answer with a
status and ``Retry-After``, send garbage, trickle bytes forever, or never answer. The scripts that
never finish stop when the test ends (``stop`` is set and every connection is closed).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mashvlm.errors import MashVlmError
from mashvlm.unscene.chat import ChatClient, ChatError, ChatSettings, ResponseCache, cached_complete
from mashvlm.unscene.judge import OpenAIJudge, parse_score

MARGIN = 0.5  # seconds allowed past a bound (thread scheduling on a loaded 2-core machine)
LONG = (
    8.0  # "forever" for a server script: far past every bound under test, yet a broken bound fails, not hangs
)


def _completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
            ],
        }
    ).encode()


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawServer:
    """One script per connection, in order; the last script is reused once the list runs out."""

    def __init__(self, scripts: list[Callable[[socket.socket, threading.Event], None]]):
        self.scripts = scripts
        self.attempts = 0
        self.stop = threading.Event()
        self.closed_by_client = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._accept, daemon=True, name="raw-server")
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="raw-server").start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        buf = b""
        try:
            while True:  # one request per connection is enough here: read headers, then the body
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                buf = rest[length:]
                with self._lock:
                    script = self.scripts[min(self.attempts, len(self.scripts) - 1)]
                    self.attempts += 1
                script(conn, self.stop)
        except OSError:  # the client closed the connection (it gave up)
            self.closed_by_client.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()
        with self._lock:
            for conn in self._conns:
                conn.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(*scripts: Callable[[socket.socket, threading.Event], None]) -> RawServer:
        servers.append(RawServer(list(scripts)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def reply(content: str) -> Callable[[socket.socket, threading.Event], None]:
    return lambda conn, stop: conn.sendall(_response(200, _completion(content)))


def status(
    code: int, headers: dict[str, str] | None = None
) -> Callable[[socket.socket, threading.Event], None]:
    body = json.dumps({"error": {"message": f"scripted {code}", "type": "test"}}).encode()
    return lambda conn, stop: conn.sendall(_response(code, body, headers))


def trickle(data: bytes, every: float = 0.2) -> Callable[[socket.socket, threading.Event], None]:
    """Send ``data`` one byte at a time, then keep sending spaces, until the test ends (at most LONG s)."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        i = 0
        end = time.monotonic() + LONG
        while not stop.wait(every) and time.monotonic() < end:
            conn.sendall(data[i : i + 1] if i < len(data) else b" ")
            i += 1

    return script


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(LONG)


def _client_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name != "raw-server"}


def _settings(server: RawServer, **kwargs) -> ChatSettings:
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("deadline", 5.0)
    kwargs.setdefault("max_retries", 3)
    return ChatSettings(model="m", base_url=server.url, api_key="k", **kwargs)


MESSAGES = [{"role": "user", "content": "Score it."}]


def test_429_with_retry_after_is_waited_for_and_retried(serve) -> None:
    server = serve(
        status(429, {"Retry-After": "0.3"}), status(429, {"Retry-After": "0.3"}), reply('{"score": 4}')
    )
    client = ChatClient(_settings(server))
    start = time.monotonic()
    content, score = client.complete(MESSAGES, parse_score)
    assert score == 4.0 and content == '{"score": 4}'
    assert time.monotonic() - start >= 0.6  # both Retry-After waits were honoured
    assert server.attempts == 3 and client.requests == 3


def test_500_then_success(serve) -> None:
    server = serve(status(500, {"Retry-After-Ms": "10"}), reply('{"score": 2}'))
    judge = OpenAIJudge(ChatClient(_settings(server)))
    j = judge.judge("action", "surfing", "Someone surfs.")
    assert j.score == 2.0 and j.error is None and server.attempts == 2


def test_client_errors_are_not_retried(serve) -> None:
    server = serve(status(400), reply('{"score": 2}'))
    with pytest.raises(ChatError, match="400") as info:
        ChatClient(_settings(server)).complete(MESSAGES)
    assert info.value.attempts == 1 and server.attempts == 1
    assert isinstance(info.value, MashVlmError)


def test_garbage_body_is_asked_again_then_recorded_missing(serve, tmp_path) -> None:
    garbage = lambda conn, stop: conn.sendall(_response(200, b"\x00not json{"))  # noqa: E731
    server = serve(garbage)
    cache = ResponseCache(tmp_path / "cache.jsonl")
    j = OpenAIJudge(ChatClient(_settings(server, max_retries=2)), cache).judge("action", "surfing", "x")
    assert j.score is None and j.error  # missing, never 0
    assert j.attempts == 3 and server.attempts == 3
    assert len(cache) == 0 and not (tmp_path / "cache.jsonl").exists()  # failures are not cached


def _body_trickle(conn: socket.socket, stop: threading.Event) -> None:
    """Complete headers announcing a body, then the body one byte at a time, forever."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    trickle(b"{", every=0.2)(conn, stop)


@pytest.mark.parametrize(
    "script",
    [trickle(b"HTTP/1.1 200 OK\r\n", every=0.2), _body_trickle],
    ids=["status-line-trickles", "body-trickles"],
)
def test_a_trickling_server_is_cut_off_at_the_deadline(serve, script) -> None:
    """Each byte arrives well within the 5 s per-attempt timeout; only the deadline can end it."""
    server = serve(script)
    client = ChatClient(_settings(server, timeout=5.0, deadline=1.5))
    threads = _client_threads()
    start = time.monotonic()
    with pytest.raises(ChatError, match="deadline") as info:
        client.complete(MESSAGES, parse_score)
    elapsed = time.monotonic() - start
    assert 1.5 <= elapsed < 1.5 + MARGIN
    assert info.value.attempts == 1  # the deadline ends the request: no retry after it
    assert _client_threads() == threads  # no thread left behind holding the request
    assert server.closed_by_client.wait(2)  # the connection was closed, not left open


def test_each_attempt_is_bounded_as_a_whole_and_retried(serve) -> None:
    server = serve(trickle(b"HTTP/1.1 200 OK\r\n", every=0.1))
    client = ChatClient(_settings(server, timeout=0.6, deadline=10, max_retries=1))
    start = time.monotonic()
    with pytest.raises(ChatError, match="Timeout") as info:
        client.complete(MESSAGES)
    elapsed = time.monotonic() - start
    assert info.value.attempts == 2 and server.attempts == 2
    # two 0.6 s attempts and one backoff wait (0.5 s less jitter), far below the 10 s deadline
    assert 1.2 <= elapsed < 1.2 + 0.5 + MARGIN


def test_a_server_that_never_answers_fails_within_the_deadline(serve) -> None:
    server = serve(silent)
    client = ChatClient(_settings(server, timeout=0.5, deadline=1.2, max_retries=5))
    start = time.monotonic()
    with pytest.raises(ChatError) as info:
        client.complete(MESSAGES)
    assert time.monotonic() - start < 1.2 + MARGIN
    assert 1 <= info.value.attempts <= 2 and "deadline" in str(info.value)


def test_a_retry_after_beyond_the_deadline_fails_at_once(serve) -> None:
    server = serve(status(429, {"Retry-After": "30"}), reply('{"score": 4}'))
    start = time.monotonic()
    with pytest.raises(ChatError, match="deadline") as info:
        ChatClient(_settings(server, deadline=2)).complete(MESSAGES)
    assert time.monotonic() - start < MARGIN  # did not sleep 30 s, nor until the deadline
    assert info.value.attempts == 1 and server.attempts == 1


def test_cached_complete_asks_once(serve, tmp_path) -> None:
    server = serve(reply('{"score": 3}'))
    client = ChatClient(_settings(server))
    cache = ResponseCache(tmp_path / "cache.jsonl")
    assert cached_complete(client, cache, MESSAGES, parse_score) == (3.0, False)
    again = ResponseCache(tmp_path / "cache.jsonl")
    assert cached_complete(client, again, MESSAGES, parse_score) == (3.0, True)
    assert server.attempts == 1


def test_settings_reject_non_positive_bounds() -> None:
    for bad in ({"timeout": 0}, {"deadline": -1}, {"max_retries": -1}):
        with pytest.raises(ValueError):
            ChatSettings(model="m", **bad)


def test_cache_refuses_a_file_that_is_not_a_cache_and_leaves_it_unchanged(tmp_path):
    from mashvlm.errors import FormatError
    from mashvlm.unscene.chat import ResponseCache

    other = tmp_path / "predictions.jsonl"
    other.write_bytes(b'{"question_id": "q1", "prediction": "yes"}\n{"question_id": "q2", "predic')
    before = other.read_bytes()
    with pytest.raises(FormatError, match="not a response-cache entry"):
        ResponseCache(other)
    assert other.read_bytes() == before


def test_cache_repairs_its_own_cut_off_last_entry(tmp_path):
    from mashvlm.unscene.chat import ResponseCache

    path = tmp_path / "judge.jsonl"
    path.write_bytes(b'{"key": "k1", "model": "m", "content": "ok"}\n{"key": "k2", "mo')
    cache = ResponseCache(path)
    assert len(cache) == 1 and cache.get("k1") == "ok"
    assert path.read_bytes() == b'{"key": "k1", "model": "m", "content": "ok"}\n'
