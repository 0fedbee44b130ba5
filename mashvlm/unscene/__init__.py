"""UNSCENE: the action-scene hallucination benchmark of MASH-VLM (paper section 4, Table 2).

Build the questions from video annotations (:mod:`~mashvlm.unscene.builder`), ask any video model
(:mod:`~mashvlm.unscene.runner`), score the answers as the paper does
(:mod:`~mashvlm.unscene.scoring`, :mod:`~mashvlm.unscene.judge`). The command line is
``mashvlm unscene build | run | score | validate``; see ``docs/unscene.md``.

Importing this package does not import torch, transformers or openai.
"""

from mashvlm.errors import FormatError
from mashvlm.unscene.builder import build_questions, draw_candidate, fill_candidates
from mashvlm.unscene.formats import load_annotations, load_predictions, load_questions
from mashvlm.unscene.judge import LEXICAL_JUDGE_NAME, LexicalJudge, OpenAIJudge
from mashvlm.unscene.parsing import parse_yes_no
from mashvlm.unscene.records import Prediction, Question, VideoAnnotation
from mashvlm.unscene.runner import (
    BatchVideoQAModel,
    MashVlmVideoQA,
    MultiVideoQAModel,
    VideoQAModel,
    load_model_class,
    run_model,
)
from mashvlm.unscene.scoring import build_results, format_table, score_binary, score_open_ended

__all__ = [
    "LEXICAL_JUDGE_NAME",
    "BatchVideoQAModel",
    "FormatError",
    "LexicalJudge",
    "MashVlmVideoQA",
    "MultiVideoQAModel",
    "OpenAIJudge",
    "Prediction",
    "Question",
    "VideoAnnotation",
    "VideoQAModel",
    "build_questions",
    "build_results",
    "draw_candidate",
    "fill_candidates",
    "format_table",
    "load_annotations",
    "load_model_class",
    "load_predictions",
    "load_questions",
    "parse_yes_no",
    "run_model",
    "score_binary",
    "score_open_ended",
]
