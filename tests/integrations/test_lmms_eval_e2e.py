"""lmms-eval end to end, offline: ``python -m lmms_eval --model mashvlm`` on a tiny checkpoint and two local
tasks (an MVBench-style generate_until task and a multiple_choice task), checked against the model run
directly on the same items. Needs lmms-eval (``make setup`` installs it; see docs/lmms_eval.md)."""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mashvlm.modeling.processing_mash_vlm import VICUNA_V1_SYSTEM

pytest.importorskip(
    "lmms_eval", reason="lmms-eval is not installed: pip install -e '.[lmms-eval]' && pip install --no-deps lmms-eval==0.7.3"
)

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
REPO = Path(__file__).resolve().parents[2]
QUESTIONS = [
    ("What is the person doing?", ["jumping", "running", "sitting"]),
    ("Where is the person?", ["on a beach", "in a room"]),
    ("Is someone running?", ["Yes", "No"]),
    ("How many people are there?", ["one", "two", "three", "four"]),
]
MVBENCH_SYSTEM = (
    "Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
    "movement of objects, and the action and pose of persons. Based on your observations, select the "
    "best option that accurately addresses the question.\n"
)

TASK_UTILS = '''
from lmms_eval.tasks.mvbench.utils import mvbench_aggregate_results, mvbench_process_results  # noqa: F401


def doc_to_visual(doc, lmms_eval_specific_kwargs=None):
    return [doc["video"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):  # lmms-eval's MVBench layout
    options = "".join(f"({chr(65 + i)}) {c}\\n" for i, c in enumerate(doc["candidates"]))
    return "Question:" + doc["question"] + "\\nOption:\\n" + options + "Only give the best option.\\n"


def mc_doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]
'''


def _task_yaml(name: str, data: Path, body: str) -> str:
    return textwrap.dedent(f"""\
        task: {name}
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
        test_split: test
        doc_to_visual: !function utils.doc_to_visual
        """) + textwrap.dedent(body)


MVBENCH_BODY = """\
    output_type: generate_until
    doc_to_text: !function utils.doc_to_text
    doc_to_target: answer
    generation_kwargs:
      max_new_tokens: 16
      do_sample: false
    process_results: !function utils.mvbench_process_results
    metric_list:
      - metric: mvbench_accuracy
        aggregation: !function utils.mvbench_aggregate_results
        higher_is_better: true
    """
MC_BODY = """\
    output_type: multiple_choice
    doc_to_text: !function utils.mc_doc_to_text
    doc_to_choice: candidates
    doc_to_target: gold
    metric_list:
      - metric: acc
    """


def _entry_point_dist(root: Path) -> Path:
    """A dist-info holding pyproject.toml's ``lmms_eval.models`` entry points, so the subprocess finds the
    entry point of this tree even where the installed package metadata is older."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    points = project["entry-points"]["lmms_eval.models"]
    dist = root / "mashvlm_lmms_eval_test-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mashvlm-lmms-eval-test\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[lmms_eval.models]\n" + "".join(f"{name} = {target}\n" for name, target in points.items())
    )
    return root


class DirectModel:
    """The checkpoint run without the plugin: hand-written prompts, processor + model."""

    def __init__(self, path: Path):
        from mashvlm.inference import VideoChat

        chat = VideoChat.from_pretrained(path, device="cpu")
        self.model, self.processor = chat.model, chat.processor
        self.system = VICUNA_V1_SYSTEM

    def mvbench_prediction(self, video: Path, question: str, candidates: list[str]) -> str:
        options = "".join(f"\n({string.ascii_uppercase[i]}) {c}" for i, c in enumerate(candidates))
        user = f"{MVBENCH_SYSTEM}Question: {question}\nOptions:{options}\nOnly give the best option."
        text = f"{MVBENCH_SYSTEM} USER: <video>\n{user} ASSISTANT: Best option:("
        inputs = self.processor([text], videos=[video])
        tok = self.processor.tokenizer
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=100, do_sample=False,
                                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        answer = self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
        return "(" + answer.strip().split("\n")[0]

    def choice_logprob(self, video: Path, question: str, choice: str) -> float:
        context = f"{self.system} USER: <video>\n{question} ASSISTANT:"
        whole = self.processor([context + " " + choice], videos=[video])
        n_context = self.processor([context], videos=[video])["input_ids"].shape[1]
        with torch.inference_mode():
            logits = self.model(**whole).logits[0].float()
        ids = whole["input_ids"][0]
        log_probs = torch.log_softmax(logits[n_context - 1 : -1], -1)
        return float(log_probs.gather(-1, ids[n_context:, None]).sum())


@pytest.mark.slow
def test_lmms_eval_end_to_end_offline(tmp_path, tiny_checkpoint, tiny_videos):
    from lmms_eval.tasks.mvbench.utils import mvbench_process_results

    direct = DirectModel(tiny_checkpoint)
    # Gold answers: the directly computed prediction for the first two items and another option for the
    # last two, so the expected scores are known and a plugin that answers differently fails.
    mv_docs, mc_docs, mv_preds = [], [], []
    for i, ((question, candidates), video) in enumerate(zip(QUESTIONS, tiny_videos, strict=True)):
        pred = direct.mvbench_prediction(video, question, candidates)
        letter = mvbench_process_results({"candidates": candidates, "answer": candidates[0]}, [pred])[
            "mvbench_accuracy"]["pred_answer"]
        picked = string.ascii_uppercase.index(letter) if letter in string.ascii_uppercase[: len(candidates)] else 0
        answer_idx = picked if i < 2 else (picked + 1) % len(candidates)
        mv_docs.append({"video": str(video), "question": question, "candidates": candidates,
                        "answer": candidates[answer_idx]})
        mv_preds.append(pred)
        scores = [direct.choice_logprob(video, question, c) for c in candidates]
        best = max(range(len(candidates)), key=scores.__getitem__)
        mc_docs.append({"video": str(video), "question": question, "candidates": candidates,
                        "gold": best if i < 2 else (best + 1) % len(candidates)})
    expected_mv = 100 * sum(
        mvbench_process_results(doc, [pred])["mvbench_accuracy"]["score"] for doc, pred in zip(mv_docs, mv_preds, strict=True)
    ) / len(mv_docs)

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "utils.py").write_text(TASK_UTILS)
    for name, docs, body in (("mvbench_tiny", mv_docs, MVBENCH_BODY), ("tiny_mc", mc_docs, MC_BODY)):
        data = tmp_path / f"{name}.json"
        data.write_text(json.dumps(docs))
        (tasks / f"{name}.yaml").write_text(_task_yaml(name, data, body))

    out = tmp_path / "out"
    hf_home = tmp_path / "hf"
    env = {
        **os.environ,
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(hf_home / "datasets"),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(_entry_point_dist(tmp_path / "dist"))]),
        "WANDB_MODE": "disabled",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "mashvlm",
           "--model_args", f"pretrained={tiny_checkpoint},device=cpu",
           "--tasks", "mvbench_tiny,tiny_mc", "--include_path", str(tasks),
           "--batch_size", "1", "--output_path", str(out), "--log_samples"]
    run = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    results_files = sorted(out.rglob("*_results.json"))
    assert results_files, f"no results file under {out}: {run.stdout[-2000:]}"
    results = json.loads(results_files[-1].read_text())["results"]
    assert results["mvbench_tiny"]["mvbench_accuracy,none"] == pytest.approx(expected_mv)
    assert results["tiny_mc"]["acc,none"] == pytest.approx(0.5)

    # The plugin's MVBench answers are the direct model's, item by item (the VideoChat2 prefill applied).
    samples = [json.loads(line) for f in out.rglob("*samples_mvbench_tiny.jsonl") for line in f.read_text().splitlines()]
    logged = {s["doc_id"]: s["mvbench_accuracy"]["pred_answer"] for s in samples}
    assert logged == {i: pred for i, pred in enumerate(mv_preds)}
