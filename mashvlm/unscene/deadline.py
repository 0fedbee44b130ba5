"""Wall-clock bounds for the ``openai`` client: per attempt and per request, retries included.

httpx's timeouts bound each socket operation, not a request: a server that sends one byte every
second never trips a 3 s read timeout. Here every blocking socket operation (connect, TLS handshake,
each write, each read) is given at most the time left until the current bound, so a request ends at
its bound whatever the server does, in the thread that made it: no watchdog thread, no socket left
blocked after the caller has given up.

Two bounds, both kept per thread (each judge worker has its own request in flight):

* the attempt bound, ``timeout`` seconds from the start of each HTTP attempt: when it passes, the
  attempt fails with an httpx timeout, which the ``openai`` client retries like any other timeout;
* the request bound, ``deadline`` seconds from the start of :func:`request_bounds`: when it passes,
  :class:`DeadlineExceeded` is raised, which the ``openai`` client does not catch, so no more attempts
  are made. A retry wait (backoff or ``Retry-After``) that would end after it fails at once instead.

Not bounded: the DNS lookup (``getaddrinfo`` cannot be interrupted), usually instant or cached.

Why here and not a watchdog thread: closing a client from another thread does not wake a ``recv``
blocked in the request's thread, and a trickling server keeps that thread (and its connection) alive
for good; bounding each socket operation needs no thread and always returns.

This relies on private names of the pinned ``openai``/``httpx2``/``httpcore2`` versions
(``Client._transport``/``_mounts``, ``HTTPTransport._pool``, ``ConnectionPool._network_backend`` and
the ``OpenAI._calculate_retry_timeout`` hook); :func:`make_openai_client` fails loudly if the pools
move, and tests/unscene/test_unscene_chat.py checks the bounds against real trickling servers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore2
import httpx2
import openai


class DeadlineExceeded(Exception):
    """The request's overall deadline passed (not an httpx error, so the openai client does not retry it)."""


@dataclass
class _Bounds:
    timeout: float  # seconds per attempt
    deadline_at: float  # monotonic time the whole request must end by
    deadline: float  # its length, for messages
    attempt_at: float = float("inf")  # monotonic time the current attempt must end by
    attempts: int = 0

    def remaining(self, timeout_exc: type[Exception]) -> float:
        """Seconds left for the next socket operation; raises once a bound has passed."""
        now = time.monotonic()
        if now >= self.deadline_at:
            raise DeadlineExceeded(f"no complete reply within the {self.deadline:g} s deadline")
        if now >= self.attempt_at:
            raise timeout_exc(f"attempt took longer than {self.timeout:g} s")
        return min(self.deadline_at, self.attempt_at) - now


_local = threading.local()


def _current() -> _Bounds | None:
    return getattr(_local, "bounds", None)


@contextmanager
def request_bounds(timeout: float, deadline: float) -> Iterator[_Bounds]:
    """Bound the requests this thread makes inside the block; yields the bounds (``.attempts`` counts)."""
    bounds = _Bounds(timeout=timeout, deadline_at=time.monotonic() + deadline, deadline=deadline)
    previous = _current()
    _local.bounds = bounds
    try:
        yield bounds
    finally:
        _local.bounds = previous


def _clamp(timeout: float | None, timeout_exc: type[Exception]) -> float | None:
    bounds = _current()
    if bounds is None:  # a request made outside request_bounds: httpx's own timeouts only
        return timeout
    left = bounds.remaining(timeout_exc)
    return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None):
        tls = self._stream.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore2.ConnectTimeout))
        return _BoundedStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BoundedBackend(httpcore2.NetworkBackend):
    def __init__(self, backend: httpcore2.NetworkBackend):
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        timeout = _clamp(timeout, httpcore2.ConnectTimeout)
        return _BoundedStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        timeout = _clamp(timeout, httpcore2.ConnectTimeout)
        return _BoundedStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _BoundedOpenAI(openai.OpenAI):
    def _calculate_retry_timeout(self, remaining_retries: int, options: Any, response_headers: Any = None):
        wait = super()._calculate_retry_timeout(remaining_retries, options, response_headers)
        bounds = _current()
        if bounds is not None and time.monotonic() + wait >= bounds.deadline_at:
            # Waiting would take us past the deadline: give up now rather than sleep for nothing.
            raise DeadlineExceeded(
                f"no complete reply within the {bounds.deadline:g} s deadline (next retry due in {wait:.1f} s)"
            )
        return wait


def _bound_transports(client: httpx2.Client) -> None:
    """Put the bounded backend under every connection pool of ``client`` (proxies from the env included)."""
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            raise RuntimeError(
                f"cannot bound request time: {type(transport).__name__} has no httpcore2 connection pool "
                "(the pinned openai/httpx2 versions changed?)"
            )
        pool._network_backend = _BoundedBackend(backend)


def make_openai_client(
    *,
    base_url: str | None,
    api_key: str,
    timeout: float,
    max_retries: int,
    on_attempt: Callable[[], None] | None = None,
) -> openai.OpenAI:
    """An ``openai.OpenAI`` whose requests obey :func:`request_bounds`; ``on_attempt`` runs per HTTP attempt."""

    def start_attempt(request: httpx2.Request) -> None:
        bounds = _current()
        if bounds is not None:
            bounds.attempts += 1
            bounds.attempt_at = time.monotonic() + bounds.timeout
        if on_attempt is not None:
            on_attempt()

    http_client = openai.DefaultHttpxClient(timeout=timeout, event_hooks={"request": [start_attempt]})
    _bound_transports(http_client)
    return _BoundedOpenAI(
        base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries, http_client=http_client
    )
