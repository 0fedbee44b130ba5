"""Helpers shared by the UNSCENE tests (importable: tests/unscene is on sys.path under pytest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# Five videos: two scene-only, three unusual-context; candidates given in the annotations.
ANNOTATIONS: list[dict[str, Any]] = [
    {
        "video_id": "s1",
        "video": "scene/s1.mp4",
        "set": "scene_only",
        "action": None,
        "scene": "ice hockey rink",
        "hallucinated_actions": ["playing ice hockey", "skating", "shooting a puck", "refereeing"],
    },
    {
        "video_id": "s2",
        "video": "scene/s2.mp4",
        "set": "scene_only",
        "action": None,
        "scene": "snowy mountain",
        "hallucinated_actions": ["skiing", "snowboarding", "hiking", "climbing"],
    },
    {
        "video_id": "u1",
        "video": "unusual/u1.mp4",
        "set": "unusual_context",
        "action": "kicking a ball",
        "scene": "basketball court",
        "hallucinated_actions": ["dunking", "throwing a ball", "doing a lay up", "crossover dribbling"],
        "hallucinated_scenes": ["soccer field", "indoor soccer arena", "soccer stadium", "grass field"],
    },
    {
        "video_id": "u2",
        "video": "unusual/u2.mp4",
        "set": "unusual_context",
        "action": "doing parkour",
        "scene": "restroom",
        "hallucinated_actions": ["washing hands", "brushing teeth", "mopping the floor", "combing hair"],
        "hallucinated_scenes": ["urban rooftop", "city park", "gym", "skate park"],
    },
    {
        "video_id": "u3",
        "video": "unusual/u3.mp4",
        "set": "unusual_context",
        "action": "surfing",
        "scene": "swimming pool",
        "hallucinated_actions": ["swimming", "diving", "water polo", "doing water aerobics"],
        "hallucinated_scenes": ["ocean", "beach", "surf spot", "sea"],
    },
]
