"""Hallucination candidates (paper section 4.1, step 2).

For a scene, four actions that are *likely* there (so a model biased by the scene may claim them);
for an action, four scenes where it usually happens. Two sources:

* :class:`LLMCandidates`: any OpenAI-compatible chat endpoint, text only (no video is sent, as in
  the paper), with the paper's instructions;
* :class:`CooccurrenceTable`: offline, from a table of (action, scene, count) the user supplies.

Both return candidates in a deterministic order with the ground truth removed.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from mashvlm.errors import FormatError, MashVlmError
from mashvlm.files import read_jsonl
from mashvlm.unscene.chat import ChatClient, ChatError, Message, ResponseCache, cached_complete
from mashvlm.unscene.records import normalize_label

NUM_CANDIDATES = 4  # the paper asks for four


class CandidateError(MashVlmError, RuntimeError):
    """No usable candidates could be produced for a label."""


@runtime_checkable
class CandidateSource(Protocol):
    """Where hallucination candidates come from."""

    name: str

    def actions_for_scene(self, scene: str, exclude: Sequence[str] = ()) -> list[str]:
        """Plausible actions for ``scene``, none equal to a label in ``exclude``."""

    def scenes_for_action(self, action: str, exclude: Sequence[str] = ()) -> list[str]:
        """Plausible scenes for ``action``, none equal to a label in ``exclude``."""


def _filter(candidates: Sequence[str], exclude: Sequence[str], limit: int) -> list[str]:
    banned = {normalize_label(e) for e in exclude}
    out: list[str] = []
    seen: set[str] = set()
    for c in candidates:
        key = normalize_label(c)
        if not key or key in banned or key in seen:
            continue
        seen.add(key)
        out.append(c.strip())
        if len(out) == limit:
            break
    return out


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible endpoint

SYSTEM_PROMPT = (
    "You help build a benchmark of action and scene labels for videos. You are given a "
    "label only; no image or video. Reply with a JSON list of short labels and nothing else."
)
# The paper's instructions (section 4.1), followed by the label and the answer format.
ACTIONS_FOR_SCENE = (
    "Given a scene label, suggest four likely action labels.\n"
    "Scene label: {label}\n"
    'Write each action as a short verb phrase in the -ing form (e.g. "dunking a basketball").\n'
    "Answer with a JSON list of four strings."
)
SCENES_FOR_ACTION = (
    "Given an action label, suggest scene labels where the action is most likely to occur. "
    "Suggest four.\n"
    "Action label: {label}\n"
    'Write each scene as a short noun phrase (e.g. "soccer field").\n'
    "Answer with a JSON list of four strings."
)


def parse_label_list(text: str) -> list[str]:
    """Labels from an LLM reply: a JSON (or Python) list, else one label per line or comma-separated.

    Raises ValueError when nothing usable is found, which makes the client retry.
    """
    match = re.search(r"\[.*\]", text, re.DOTALL)
    if match:
        for loader in (json.loads, ast.literal_eval):
            try:
                value = loader(match.group(0))
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                labels = [v.strip() for v in value if v.strip()]
                if labels:
                    return labels
    lines = [ln for ln in text.splitlines() if ln.strip()]
    items = lines if len(lines) > 1 else text.split(",")
    labels = []
    for item in items:
        item = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", item).strip().strip("\"'`.").strip()
        if item and len(item) <= 80:
            labels.append(item)
    if not labels:
        raise ValueError(f"no labels in reply {text[:200]!r}")
    return labels


class LLMCandidates:
    """Candidates from an OpenAI-compatible chat endpoint; each distinct label is asked once."""

    def __init__(
        self, client: ChatClient, cache: ResponseCache | None = None, num_candidates: int = NUM_CANDIDATES
    ):
        self.client = client
        self.cache = cache
        self.num_candidates = num_candidates
        self.name = f"llm:{client.settings.model}"
        self._memo: dict[tuple[str, str], list[str]] = {}

    def _ask(self, template: str, label: str) -> list[str]:
        key = (template, normalize_label(label))
        if key not in self._memo:
            messages: list[Message] = [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": template.format(label=label)},
            ]
            try:
                labels, _ = cached_complete(self.client, self.cache, messages, parse_label_list)
            except ChatError as err:
                raise CandidateError(
                    f"candidate request for {label!r} failed after {err.attempts} attempt(s): {err}"
                ) from err
            self._memo[key] = list(labels)  # type: ignore[arg-type]
        return self._memo[key]

    def actions_for_scene(self, scene: str, exclude: Sequence[str] = ()) -> list[str]:
        return _filter(self._ask(ACTIONS_FOR_SCENE, scene), exclude, self.num_candidates)

    def scenes_for_action(self, action: str, exclude: Sequence[str] = ()) -> list[str]:
        return _filter(self._ask(SCENES_FOR_ACTION, action), exclude, self.num_candidates)


# --------------------------------------------------------------------------------------------------
# Offline co-occurrence table


class CooccurrenceTable:
    """Offline candidates from (action, scene, count) co-occurrences.

    The most frequent actions seen in a scene are the hallucination candidates for that scene, and
    vice versa; ties go by label so the result is deterministic. File formats:

    * CSV or TSV with a header containing ``action`` and ``scene`` and optionally ``count``
      (default 1 per row; repeated rows add up);
    * JSONL, one ``{"action": ..., "scene": ..., "count": ...}`` per line;
    * JSON with explicit ranked lists: ``{"scene_to_actions": {scene: [action, ...]},
      "action_to_scenes": {action: [scene, ...]}}`` (either key may be left out).
    """

    def __init__(
        self,
        counts: dict[tuple[str, str], float] | None = None,
        *,
        scene_to_actions: dict[str, list[str]] | None = None,
        action_to_scenes: dict[str, list[str]] | None = None,
        num_candidates: int = NUM_CANDIDATES,
        name: str = "cooccurrence",
    ):
        self.num_candidates = num_candidates
        self.name = name
        by_scene: dict[str, dict[str, float]] = defaultdict(dict)
        by_action: dict[str, dict[str, float]] = defaultdict(dict)
        for (action, scene), count in (counts or {}).items():
            by_scene[normalize_label(scene)][action] = by_scene[normalize_label(scene)].get(action, 0) + count
            by_action[normalize_label(action)][scene] = (
                by_action[normalize_label(action)].get(scene, 0) + count
            )
        self._scene_to_actions = {s: _rank(c) for s, c in by_scene.items()}
        self._action_to_scenes = {a: _rank(c) for a, c in by_action.items()}
        for scene, actions in (scene_to_actions or {}).items():
            self._scene_to_actions[normalize_label(scene)] = list(actions)
        for action, scenes in (action_to_scenes or {}).items():
            self._action_to_scenes[normalize_label(action)] = list(scenes)

    @classmethod
    def load(cls, path: str | os.PathLike[str], num_candidates: int = NUM_CANDIDATES) -> CooccurrenceTable:
        path = Path(path)
        name = f"cooccurrence:{path.name}"
        suffix = path.suffix.lower()
        if suffix == ".json":
            return cls(**_load_json_table(path), num_candidates=num_candidates, name=name)
        if suffix == ".jsonl":
            counts: dict[tuple[str, str], float] = defaultdict(float)
            for line in read_jsonl(path).lines:
                action, scene, count = _row(path, line.lineno, line.record)
                counts[(action, scene)] += count
            return cls(dict(counts), num_candidates=num_candidates, name=name)
        return cls(_load_csv_table(path), num_candidates=num_candidates, name=name)

    def _lookup(self, table: dict[str, list[str]], label: str, what: str) -> list[str]:
        ranked = table.get(normalize_label(label))
        if ranked is None:
            raise CandidateError(f"{what} {label!r} is not in the co-occurrence table {self.name!r}")
        return ranked

    def actions_for_scene(self, scene: str, exclude: Sequence[str] = ()) -> list[str]:
        return _filter(self._lookup(self._scene_to_actions, scene, "scene"), exclude, self.num_candidates)

    def scenes_for_action(self, action: str, exclude: Sequence[str] = ()) -> list[str]:
        return _filter(self._lookup(self._action_to_scenes, action, "action"), exclude, self.num_candidates)


def _rank(counts: dict[str, float]) -> list[str]:
    return [label for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], normalize_label(kv[0])))]


def _row(path: Path, lineno: int, record: dict[str, object]) -> tuple[str, str, float]:
    for field in ("action", "scene"):
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            raise FormatError(path, lineno, field, f"must be a non-empty string, got {value!r}")
    count = record.get("count", 1)
    if isinstance(count, str):
        try:
            count = float(count) if count.strip() else 1.0
        except ValueError:
            raise FormatError(path, lineno, "count", f"must be a number, got {count!r}") from None
    if isinstance(count, bool) or not isinstance(count, (int, float)) or count < 0:
        raise FormatError(path, lineno, "count", f"must be a non-negative number, got {count!r}")
    return record["action"].strip(), record["scene"].strip(), float(count)  # type: ignore[union-attr]


def _load_csv_table(path: Path) -> dict[tuple[str, str], float]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FormatError(path, None, None, "file not found") from None
    delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in text.split("\n", 1)[0] else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    for field in ("action", "scene"):
        if field not in header:
            raise FormatError(path, 1, field, f"the header must name an '{field}' column, got {header}")
    counts: dict[tuple[str, str], float] = defaultdict(float)
    for row in reader:
        action, scene, count = _row(path, reader.line_num, row)  # type: ignore[arg-type]
        counts[(action, scene)] += count
    return dict(counts)


def _load_json_table(path: Path) -> dict[str, dict[str, list[str]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise FormatError(path, None, None, "file not found") from None
    except json.JSONDecodeError as err:
        raise FormatError(path, err.lineno, None, f"not valid JSON ({err.msg})") from None
    if not isinstance(data, dict) or not ({"scene_to_actions", "action_to_scenes"} & set(data)):
        raise FormatError(
            path, None, None, "expected an object with 'scene_to_actions' and/or 'action_to_scenes'"
        )
    out: dict[str, dict[str, list[str]]] = {}
    for key in ("scene_to_actions", "action_to_scenes"):
        mapping = data.get(key, {})
        if not isinstance(mapping, dict):
            raise FormatError(path, None, key, "must map a label to a list of labels")
        for label, items in mapping.items():
            if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
                raise FormatError(path, None, f"{key}.{label}", "must be a list of non-empty strings")
        out[key] = mapping
    return out
