"""MVBench (paper Table 1), the official VideoChat2 protocol.

Reference: ``video_chat2/mvbench.ipynb`` in OpenGVLab/Ask-Anything (read at commit 4631cd6). The strings
below are quoted from it; the code is ours. Protocol: the system prompt is both the conversation's system
message and prefixed to the question (``system_llm=True``); the question is laid out as
``Question: ...\\nOptions:\\n(A) ...`` plus ``"\\nOnly give the best option."``; the answer is prefilled with
``"Best option:("``; greedy decoding (at most 100 new tokens); the prediction is ``"("`` + the first line
of the stripped output, matched with ``check_ans``; 16 frames at segment middles, restricted to
``start``/``end`` for the tasks whose entry says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mashvlm.errors import FormatError, UsageError

from .common import EvalItem, VideoRef, format_table, read_json_list
from .model import ChatPrompt

# --- the protocol's strings (mvbench.ipynb, cell "infer_mvbench" call) -----------------------------
SYSTEM_PROMPT = (
    "Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
    "movement of objects, and the action and pose of persons. Based on your observations, select the "
    "best option that accurately addresses the question.\n"
)
QUESTION_PROMPT = "\nOnly give the best option."
ANSWER_PROMPT = "Best option:("
RETURN_PROMPT = "("
MAX_NEW_TOKENS = 100  # infer_mvbench: max_new_tokens=100
NUM_FRAMES = 16  # num_frame = 16
FRAME_FOLDER_FPS = 3  # read_frame(..., fps=3): Episodic Reasoning's tvqa/frames_fps3_hq


@dataclass(frozen=True)
class MVBenchTask:
    name: str  # the notebook's task name
    abbrev: str  # the paper's Table 1 column
    json_file: str
    video_prefix: str  # folder under the MVBench video root ("your_data_path/" dropped)
    data_type: str  # "video" or "frame"
    has_bound: bool  # the entries' start/end are used


# data_list of mvbench.ipynb, in its order (= the paper's Table 1 column order).
TASKS: tuple[MVBenchTask, ...] = (
    MVBenchTask("Action Sequence", "AS", "action_sequence.json", "star/Charades_v1_480", "video", True),
    MVBenchTask("Action Prediction", "AP", "action_prediction.json", "star/Charades_v1_480", "video", True),
    MVBenchTask("Action Antonym", "AA", "action_antonym.json", "ssv2_video", "video", False),
    MVBenchTask("Fine-grained Action", "FA", "fine_grained_action.json", "Moments_in_Time_Raw/videos", "video", False),
    MVBenchTask("Unexpected Action", "UA", "unexpected_action.json", "FunQA_test/test", "video", False),
    MVBenchTask("Object Existence", "OE", "object_existence.json", "clevrer/video_validation", "video", False),
    MVBenchTask("Object Interaction", "OI", "object_interaction.json", "star/Charades_v1_480", "video", True),
    MVBenchTask("Object Shuffle", "OS", "object_shuffle.json", "perception/videos", "video", False),
    MVBenchTask("Moving Direction", "MD", "moving_direction.json", "clevrer/video_validation", "video", False),
    MVBenchTask("Action Localization", "AL", "action_localization.json", "sta/sta_video", "video", True),
    MVBenchTask("Scene Transition", "ST", "scene_transition.json", "scene_qa/video", "video", False),
    MVBenchTask("Action Count", "AC", "action_count.json", "perception/videos", "video", False),
    MVBenchTask("Moving Count", "MC", "moving_count.json", "clevrer/video_validation", "video", False),
    MVBenchTask("Moving Attribute", "MA", "moving_attribute.json", "clevrer/video_validation", "video", False),
    MVBenchTask("State Change", "SC", "state_change.json", "perception/videos", "video", False),
    MVBenchTask("Fine-grained Pose", "FP", "fine_grained_pose.json", "nturgbd", "video", False),
    MVBenchTask("Character Order", "CO", "character_order.json", "perception/videos", "video", False),
    MVBenchTask("Egocentric Navigation", "EN", "egocentric_navigation.json", "vlnqa", "video", False),
    MVBenchTask("Episodic Reasoning", "ER", "episodic_reasoning.json", "tvqa/frames_fps3_hq", "frame", True),
    MVBenchTask("Counterfactual Inference", "CI", "counterfactual_inference.json", "clevrer/video_validation",
                "video", False),
)
TASK_BY_ABBREV = {t.abbrev: t for t in TASKS}


@dataclass(frozen=True)
class MVBenchSample:
    item_id: str
    task: str  # abbreviation
    question: str  # the qa_template question (no system prompt, no "Only give ...")
    answer: str  # "(B) the answer text"
    video: VideoRef


def qa_template(question: str, candidates: Sequence[str], answer: str) -> tuple[str, str]:
    """The notebook's ``qa_template``: the options block and the ground truth ``"(X) answer"``.

    As in the reference, the answer's letter is that of the last candidate equal to it, and an answer
    that is no candidate gets the letter before ``A`` (``"(@)"``); :func:`load_task` refuses those.
    """
    text = f"Question: {question}\nOptions:\n"
    answer_idx = -1
    for idx, c in enumerate(candidates):
        text += f"({chr(ord('A') + idx)}) {c}\n"
        if c == answer:
            answer_idx = idx
    return text.rstrip(), f"({chr(ord('A') + answer_idx)}) {answer}"


def build_prompt(question: str) -> ChatPrompt:
    """``system_llm=True``: the system prompt is the conversation's system and starts the question."""
    return ChatPrompt(user=SYSTEM_PROMPT + question + QUESTION_PROMPT, system=SYSTEM_PROMPT,
                      answer_prefix=ANSWER_PROMPT)


def postprocess(output: str) -> str:
    """``return_prompt + llm_message.strip().split('\\n')[0]``: keep the first line only."""
    return RETURN_PROMPT + output.strip().split("\n")[0]


def check_answer(pred: str, gt: str) -> bool:
    """The notebook's ``check_ans``: compare the first words (the option letters), lower-cased.

    Quirk of the official rule, kept for comparability: the prediction's first word is tested as a
    substring of the ground truth's, so a bare ``"("`` (an empty answer) matches every option.
    """
    pred_option = pred.lower().split(" ")[0]
    gt_option = gt.lower().split(" ")[0]
    return pred_option.replace(".", "") in gt_option or gt_option in pred_option


def _entry_error(path: Path, i: int, message: str) -> FormatError:
    return FormatError(path, None, f"[{i}]", message)


def load_task(json_dir: Path, video_root: Path, task: MVBenchTask) -> list[MVBenchSample]:
    """The samples of one task from its official annotation JSON (a list of entries with ``video``,
    ``question``, ``candidates``, ``answer`` and, for bounded tasks, ``start`` / ``end`` in seconds)."""
    path = json_dir / task.json_file
    data = read_json_list(path, what=" of questions",
                          missing="no such MVBench annotation file (--json-dir must hold the official json/ "
                          "files, or choose tasks with --tasks)")
    samples = []
    for i, entry in enumerate(data):
        if not isinstance(entry, Mapping):
            raise _entry_error(path, i, "each entry must be an object")
        for key, kind in (("video", str), ("question", str), ("answer", str), ("candidates", list)):
            if not isinstance(entry.get(key), kind):
                raise _entry_error(path, i, f"needs {key!r} ({kind.__name__})")
        candidates = [str(c) for c in entry["candidates"]]
        if entry["answer"] not in candidates:
            raise _entry_error(path, i, f"answer {entry['answer']!r} is not one of the candidates")
        question, answer = qa_template(entry["question"], candidates, entry["answer"])
        start = end = None
        if task.has_bound:
            start, end = entry.get("start"), entry.get("end")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end)):
                raise _entry_error(path, i, f"task {task.name} needs numeric 'start' and 'end' (seconds)")
            start, end = float(start), float(end)
        video_path = os.path.join(video_root, task.video_prefix, entry["video"])
        fps = FRAME_FOLDER_FPS if task.data_type == "frame" else None
        samples.append(MVBenchSample(f"{task.abbrev}/{i}", task.abbrev, question, answer,
                                     VideoRef(video_path, start, end, fps)))
    return samples


def select_tasks(spec: str) -> list[MVBenchTask]:
    """``"all"`` or comma-separated abbreviations (``AS,AP``) or task names."""
    if spec == "all":
        return list(TASKS)
    by_name = {t.name.lower(): t for t in TASKS}
    chosen = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        task = TASK_BY_ABBREV.get(part.upper()) or by_name.get(part.lower())
        if task is None:
            raise UsageError(f"unknown MVBench task {part!r}; use abbreviations {', '.join(TASK_BY_ABBREV)}")
        chosen.append(task)
    return chosen


def items_for(samples: Sequence[MVBenchSample]) -> list[EvalItem]:
    return [EvalItem(s.item_id, s.video, build_prompt(s.question)) for s in samples]


def score(samples: Sequence[MVBenchSample], records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-task accuracy (%) and the average over all questions (the notebook's ``Avg``: correct / total).

    A question without a prediction (video or model failure) counts as wrong.
    """
    per_task: dict[str, list[int]] = {}
    failed = 0
    for s in samples:
        pred = records[s.item_id].get("prediction")
        failed += pred is None
        ok = pred is not None and check_answer(pred, s.answer)
        counts = per_task.setdefault(s.task, [0, 0])
        counts[0] += ok
        counts[1] += 1
    correct = sum(c for c, _ in per_task.values())
    total = sum(n for _, n in per_task.values())
    order = [t.abbrev for t in TASKS if t.abbrev in per_task]
    return {
        "accuracy": {k: 100.0 * per_task[k][0] / per_task[k][1] for k in order},
        "counts": {k: {"correct": per_task[k][0], "total": per_task[k][1]} for k in order},
        "average": 100.0 * correct / total if total else None,
        "correct": correct,
        "total": total,
        "failed": failed,
    }


def table(model_name: str, result: Mapping[str, Any]) -> str:
    """Table 1's layout: ``Model  Avg  AS  AP ...`` (the tasks evaluated), one decimal."""
    acc = result["accuracy"]
    avg = result["average"]
    header = ["Model", "Avg", *acc]
    row = [model_name, "-" if avg is None else f"{avg:.1f}", *(f"{v:.1f}" for v in acc.values())]
    return format_table(header, [row])
