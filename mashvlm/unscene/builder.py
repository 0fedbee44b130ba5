"""Building UNSCENE questions from video annotations (paper section 4.1, DESIGN section 7).

Per unusual-context video: two dual pairs (action, scene), four binary questions. Per scene-only
video: one dual pair about action, two binary questions. Every video also gets one open-ended
"Describe the video in detail." record carrying the ground truth. The hallucination label of each
pair is drawn from the candidates with a hash of (seed, video_id, category), so the draw is the same
on every machine and Python version, and does not change when other videos are added or removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import replace

from mashvlm.unscene.candidates import CandidateError, CandidateSource
from mashvlm.unscene.records import (
    ACTION,
    GROUND_TRUTH,
    HALLUCINATION,
    OPEN_ENDED,
    OPEN_ENDED_PROMPT,
    SCENE,
    SCENE_ONLY,
    UNUSUAL,
    Question,
    VideoAnnotation,
)

# Question templates. Scene-only: DESIGN section 7. Unusual context: the action questions share the
# hallucination template of the scene-only set, so "Is someone X in the video?" means the same thing
# in both sets.
SCENE_ONLY_ACTION_GT = "Is this {article} {scene} with no people?"  # "an empty <scene>"
ACTION_QUESTION = "Is someone {action} in the video?"
SCENE_QUESTION = "Does this video take place in {article} {scene}?"



def _where(ann) -> str:
    """`` (line N)`` for an annotation read from a file; nothing for one built in memory."""
    return f" (line {ann.lineno})" if ann.lineno else ""

def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def scene_only_gt_question(scene: str) -> str:
    # "empty" starts with a vowel, so the article is always "an".
    return SCENE_ONLY_ACTION_GT.format(article="an", scene=f"empty {scene}")


def action_question(action: str) -> str:
    return ACTION_QUESTION.format(action=action)


def scene_question(scene: str) -> str:
    return SCENE_QUESTION.format(article=_article(scene), scene=scene)


def question_id(video_id: str, category: str, kind: str | None = None) -> str:
    """``<video_id>/<category>/<kind>`` for binary questions, ``<video_id>/open_ended`` otherwise."""
    return f"{video_id}/{category}" if kind is None else f"{video_id}/{category}/{kind}"


def pair_id(video_id: str, category: str) -> str:
    return f"{video_id}/{category}"


def draw_candidate(candidates: Sequence[str], seed: int, video_id: str, category: str) -> str:
    """Pick one candidate deterministically from (seed, video_id, category)."""
    if not candidates:
        raise ValueError(f"no hallucination candidates for video {video_id!r} ({category})")
    digest = hashlib.sha256(f"{seed}\x00{video_id}\x00{category}".encode()).digest()
    return candidates[int.from_bytes(digest[:8], "big") % len(candidates)]


def needs_candidates(ann: VideoAnnotation) -> tuple[bool, bool]:
    """(needs hallucinated actions, needs hallucinated scenes) for this video."""
    return ann.hallucinated_actions is None, ann.set == UNUSUAL and ann.hallucinated_scenes is None


def fill_candidates(
    annotations: Iterable[VideoAnnotation], source: CandidateSource | None, progress: bool = False
) -> list[VideoAnnotation]:
    """Annotations with every missing candidate list filled from ``source``.

    Lists already in the annotations are kept as they are. Without a source, missing lists are an
    error that names every video lacking them.
    """
    annotations = list(annotations)
    missing = [a for a in annotations if any(needs_candidates(a))]
    if missing and source is None:
        names = ", ".join(f"{a.video_id}{_where(a)}" for a in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise CandidateError(
            f"{len(missing)} video(s) have no hallucination candidates: {names}{more}. Add "
            "'hallucinated_actions'/'hallucinated_scenes' to the annotations, or give a source "
            "(--cooccurrence FILE, or --llm-model NAME / UNSCENE_LLM_MODEL)."
        )
    iterator: Iterable[VideoAnnotation] = annotations
    if progress and missing:
        from tqdm import tqdm

        iterator = tqdm(annotations, desc="candidates", unit="video")
    out: list[VideoAnnotation] = []
    errors: list[str] = []
    for ann in iterator:
        need_actions, need_scenes = needs_candidates(ann)
        h_actions, h_scenes = ann.hallucinated_actions, ann.hallucinated_scenes
        try:
            if need_actions:
                assert source is not None
                exclude = [ann.action] if ann.action else []
                h_actions = tuple(source.actions_for_scene(ann.scene, exclude=exclude))
                if not h_actions:
                    raise CandidateError(f"no action candidates left for scene {ann.scene!r}")
            if need_scenes:
                assert source is not None and ann.action is not None
                h_scenes = tuple(source.scenes_for_action(ann.action, exclude=[ann.scene]))
                if not h_scenes:
                    raise CandidateError(f"no scene candidates left for action {ann.action!r}")
        except CandidateError as err:
            errors.append(f"video {ann.video_id!r}{_where(ann)}: {err}")
            continue
        out.append(replace(ann, hallucinated_actions=h_actions, hallucinated_scenes=h_scenes))
    if errors:
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise CandidateError("could not get hallucination candidates:\n  " + "\n  ".join(errors[:20]) + more)
    return out


def _binary_pair(ann: VideoAnnotation, category: str, ground_truth: tuple[str, str],
                hallucination: tuple[str, str]) -> list[Question]:
    """The (question, label) pair of one category: the ground truth answered "yes", the hallucination "no";
    both must be right for the pair to count (the dual metric)."""
    return [
        Question(video_id=ann.video_id, video=ann.video, set=ann.set, category=category, question=question,
                 pair_id=pair_id(ann.video_id, category), kind=kind, answer=answer, label=label,
                 question_id=question_id(ann.video_id, category, kind))
        for (question, label), kind, answer in ((ground_truth, GROUND_TRUTH, "yes"),
                                                (hallucination, HALLUCINATION, "no"))
    ]


def build_questions(
    annotations: Iterable[VideoAnnotation], seed: int = 0, open_ended: bool = True
) -> list[Question]:
    """The UNSCENE questions for annotations that already carry their candidate lists."""
    questions: list[Question] = []
    for ann in annotations:
        base = dict(video_id=ann.video_id, video=ann.video, set=ann.set)
        if not ann.hallucinated_actions:
            raise CandidateError(f"video {ann.video_id!r} has no hallucinated_actions")
        h_action = draw_candidate(ann.hallucinated_actions, seed, ann.video_id, ACTION)
        if ann.set == SCENE_ONLY:
            gt_text, gt_label = scene_only_gt_question(ann.scene), ann.scene
        else:
            assert ann.action is not None
            gt_text, gt_label = action_question(ann.action), ann.action
        questions += _binary_pair(ann, ACTION, (gt_text, gt_label), (action_question(h_action), h_action))
        if ann.set == UNUSUAL:
            if not ann.hallucinated_scenes:
                raise CandidateError(f"video {ann.video_id!r} has no hallucinated_scenes")
            h_scene = draw_candidate(ann.hallucinated_scenes, seed, ann.video_id, SCENE)
            questions += _binary_pair(ann, SCENE, (scene_question(ann.scene), ann.scene),
                                      (scene_question(h_scene), h_scene))
        if open_ended:
            questions.append(
                Question(
                    **base,
                    category=OPEN_ENDED,
                    question=OPEN_ENDED_PROMPT,
                    question_id=question_id(ann.video_id, OPEN_ENDED),
                    action=ann.action,
                    scene=ann.scene,
                    hallucinated_actions=ann.hallucinated_actions,
                    hallucinated_scenes=ann.hallucinated_scenes,
                )
            )
    return questions
