"""Label lists of the synthetic world and the action -> typical-scene pairs (the planted bias).

Labels are plain English so that the instruction data reads naturally; the world's language model is
trained from scratch, so the pairing only has to be fixed and documented, not realistic.
"""

from __future__ import annotations

# Actions: one actor sprite, identical in every frame of every action; only its motion differs.
ACTIONS: tuple[str, ...] = (
    "jumping",
    "running",
    "spinning",
    "waving",
    "boxing",
    "skiing",
    "swimming",
    "dribbling",
)

# Each action's typical scene. One-to-one by default, so every scene-only or unusual-context video
# has exactly one biased hallucination candidate per question.
TYPICAL_SCENE: dict[str, str] = {
    "jumping": "playground",
    "running": "running track",
    "spinning": "ice rink",
    "waving": "beach",
    "boxing": "boxing ring",
    "skiing": "snowy mountain",
    "swimming": "swimming pool",
    "dribbling": "basketball court",
}

# Scenes of the default world: exactly the typical scenes, in action order.
SCENES: tuple[str, ...] = tuple(TYPICAL_SCENE[a] for a in ACTIONS)

# Extra scenes that can be drawn but are typical of no action ("neutral"). Opt-in through
# ``WorldConfig.scenes``; their hallucination candidates use the fallback rule in ``world.py``.
NEUTRAL_SCENES: tuple[str, ...] = ("library", "kitchen", "office", "garage")

ALL_SCENES: tuple[str, ...] = SCENES + NEUTRAL_SCENES

# How a scene is named after "taken ..." / "A person is jumping ...": the preposition differs per scene.
SCENE_PREPOSITION: dict[str, str] = {
    "beach": "on",
    "snowy mountain": "on",
    "library": "in",
    "basketball court": "on",
    "boxing ring": "in",
    "swimming pool": "in",
    "ice rink": "on",
    "kitchen": "in",
    "running track": "on",
    "playground": "in",
    "office": "in",
    "garage": "in",
}
