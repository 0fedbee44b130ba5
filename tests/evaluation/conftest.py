"""Fixtures for the evaluation tests: the UNSCENE loopback chat server, and mini benchmark layouts."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# Reuse the loopback server of the UNSCENE tests (a scripted /v1/chat/completions on 127.0.0.1).
_spec = importlib.util.spec_from_file_location("_unscene_conftest", HERE.parent / "unscene" / "conftest.py")
_unscene = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_unscene)  # type: ignore[union-attr]
FakeChatServer = _unscene.FakeChatServer


@pytest.fixture
def chat_server() -> Iterator[FakeChatServer]:
    yield from _unscene._serve()
