"""Shared fixtures for the UNSCENE tests: a scripted chat-completions server and small datasets."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# The helper modules sit beside this file; with pytest's --import-mode=importlib nothing puts this
# directory on sys.path, so do it here (conftest.py is loaded before the test modules).
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from unscene_helpers import ANNOTATIONS, write_jsonl  # noqa: E402

# Scripted actions, consumed one per request in order; when the script is empty the responder is used.
#   ("reply", text)      200 with a well-formed chat completion whose content is text
#   ("status", code)     an error status with an OpenAI-style error body and ``Retry-After-Ms: 10``
#                        (the openai client honours it, so retries in tests are quick)
#   ("malformed",)       200 with a body that is not valid JSON
#   ("hang", seconds)    sleep before answering (longer than the client timeout)
Action = tuple[Any, ...]


class FakeChatServer:
    """A real HTTP server on 127.0.0.1 speaking the ``/v1/chat/completions`` protocol."""

    def __init__(self) -> None:
        self.script: deque[Action] = deque()
        self.responder: Callable[[dict[str, Any]], Action] = lambda body: ("reply", '{"score": 4}')
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                    )
                    action = server.script.popleft() if server.script else None
                if action is None:
                    action = server.responder(body)
                kind = action[0]
                if kind == "hang":
                    time.sleep(action[1])
                    action = ("reply", '{"score": 5}')
                try:
                    if kind == "status" or action[0] == "status":
                        error = {"error": {"message": f"scripted {action[1]}", "type": "test"}}
                        self._send(action[1], error, {"Retry-After-Ms": "10"})
                    elif action[0] == "malformed":
                        self._send_raw(200, b'{"id": "x", "choices": [{"mess')
                    else:
                        self._send(
                            200,
                            {
                                "id": "chatcmpl-test",
                                "object": "chat.completion",
                                "created": 0,
                                "model": body.get("model", "?"),
                                "choices": [
                                    {
                                        "index": 0,
                                        "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": action[1]},
                                    }
                                ],
                            },
                        )
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def _send(
                self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                self._send_raw(code, json.dumps(payload).encode(), headers)

            def _send_raw(self, code: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True  # a hanging handler must not block teardown
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def push(self, *actions: Action) -> None:
        with self.lock:
            self.script.extend(actions)

    def user_prompts(self) -> list[str]:
        return [m["content"] for r in self.requests for m in r["body"]["messages"] if m["role"] == "user"]


def _serve() -> Iterator[FakeChatServer]:
    server = FakeChatServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def chat_server() -> Iterator[FakeChatServer]:
    yield from _serve()


@pytest.fixture
def other_chat_server() -> Iterator[FakeChatServer]:
    """A second, independent server (another endpoint on another port)."""
    yield from _serve()


@pytest.fixture
def annotations_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "annotations.jsonl", ANNOTATIONS)


@pytest.fixture
def video_root(tmp_path: Path) -> Path:
    """Placeholder video files (the fake models never decode them)."""
    root = tmp_path / "videos"
    for ann in ANNOTATIONS:
        path = root / ann["video"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not really a video")
    return root
