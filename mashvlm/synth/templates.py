"""Every question and answer template of the synthetic world's instruction data, in one place.

Kept apart so that they can be aligned with the UNSCENE question builder. Placeholders: ``{action}``
(an action label, e.g. "jumping"), ``{scene}`` (a bare scene label, e.g. "ice rink"), ``{scene_a}``
(with its article, "an ice rink") and ``{scene_at}`` (with its preposition, "on an ice rink").
"""

from __future__ import annotations

from mashvlm.synth.labels import SCENE_PREPOSITION

# The ``i`` (instruction) field of VideoChat2 QA entries. Empty: UNSCENE asks its questions bare, and
# training on the same wording keeps the test questions in distribution.
OPEN_INSTRUCTION = ""
YES_NO_INSTRUCTION = ""

YES = "Yes."
NO = "No."

# Open questions.
Q_ACTION = "What is the person doing in the video?"
A_ACTION = "The person is {action}."
A_NO_PERSON = "There is no person in the video."

Q_SCENE = "Where does this video take place?"
A_SCENE = "The scene is {scene_a}."

Q_DESCRIBE = "Describe the video in detail."
A_DESCRIBE_ACTION = "A person is {action} {scene_at}."
A_DESCRIBE_EMPTY = "An empty {scene} with no people."

# Yes/no questions, asked with the true label (answer yes) or another label (answer no). Worded exactly
# as the UNSCENE builder words them (``mashvlm.unscene.builder``; a test keeps the two in step).
Q_ACTION_YN = "Is someone {action} in the video?"
Q_SCENE_YN = "Does this video take place in {scene_a}?"
Q_EMPTY_YN = "Is this an empty {scene} with no people?"


def with_article(label: str) -> str:
    """``"beach"`` -> ``"a beach"``, ``"ice rink"`` -> ``"an ice rink"``."""
    return ("an " if label[:1].lower() in "aeiou" else "a ") + label


def scene_at(scene: str) -> str:
    """The scene with its preposition: ``"on a beach"``, ``"in a boxing ring"`` (``"in"`` if not listed)."""
    return f"{SCENE_PREPOSITION.get(scene, 'in')} {with_article(scene)}"


def fill(template: str, *, action: str | None = None, scene: str | None = None) -> str:
    """Fill a template's placeholders from an action and/or a scene label."""
    fields = {}
    if action is not None:
        fields["action"] = action
    if scene is not None:
        fields.update(scene=scene, scene_a=with_article(scene), scene_at=scene_at(scene))
    return template.format(**fields)


def qa(q: str, a: str, *, yes_no: bool = False) -> dict[str, str]:
    """One VideoChat2 QA entry."""
    return {"i": YES_NO_INSTRUCTION if yes_no else OPEN_INSTRUCTION, "q": q, "a": a}
