"""``WorldConfig``: everything that, with a seed, fully determines a synthetic world."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mashvlm.errors import UsageError
from mashvlm.synth.labels import ACTIONS, NEUTRAL_SCENES, SCENES, TYPICAL_SCENE
from mashvlm.synth.scenes import SCENE_DRAWERS
from mashvlm.validation import check_field_types

__all__ = ["WorldConfig", "SPLITS"]

# Split names, in the order they are generated.
SPLITS: tuple[str, ...] = ("train", "test_usual", "test_unusual", "test_scene_only", "test_motion", "train_motion")


@dataclass(frozen=True)
class WorldConfig:
    """Sizes, rates and label sets of a world. Motion ranges live in ``actors.py``, scenes in ``scenes.py``."""

    height: int = 64
    width: int = 64
    frames: int = 16
    fps: float = 8.0
    # Slow camera pans. Off by default: a pan moves every background patch, and the frame-difference tokens
    # then carry the camera rather than the person (docs/synth.md, "Making actions learnable").
    pan: bool = False
    pan_prob: float = 0.5  # share of videos (any split, empty scenes too) with a pan
    pan_speed: tuple[float, float] = (0.08, 0.16)  # frame heights per second
    rho: float = 0.9  # train: probability that an action is shown in its typical scene
    empty_frac: float = 0.1  # train: share of scene-only (no actor) videos
    # Scenes typical of no action, outside ``scenes`` (the biased ones): the motion control's scenes.
    neutral_scenes: tuple[str, ...] = NEUTRAL_SCENES
    # train: share of videos showing an action in a neutral scene (never a pair held out for the control)
    neutral_frac: float = 0.2
    # Neutral scenes kept for the motion control: never shown with an action in training (only empty, or
    # with a person standing still, ``still_frac``), so that the scene says nothing about which action
    # happens there. Empty: the held-out-pairs rule (``motion_control_scene``), where each action is held
    # out in one neutral scene and shown in the others.
    control_scenes: tuple[str, ...] = ("office", "garage")
    # train: share of videos of a person standing still (``actors.STANDING_STILL``, not an action) in a
    # control scene, asked only about the scene: a person there is then not new in the control.
    still_frac: float = 0.1
    n_train: int = 1200
    n_test_usual: int = 160
    n_test_unusual: int = 160
    n_test_scene_only: int = 80
    n_test_motion: int = 160  # the motion control: actions in neutral scenes never paired with them in train
    # The motion warm-up (``train_motion``): actions in the neutral scenes that show them in train, asked the
    # open action question and the yes/no question about every action (docs/synth.md).
    n_train_motion: int = 0
    actions: tuple[str, ...] = ACTIONS
    scenes: tuple[str, ...] = SCENES
    typical_scene: dict[str, str] = field(default_factory=lambda: dict(TYPICAL_SCENE))
    qa_per_video: int = 6  # instruction QA entries per training video: 5 yes/no + open ones
    crf: int = 18  # H.264 quality of the written mp4s

    def __post_init__(self) -> None:
        check_field_types(self, "WorldConfig")
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "scenes", tuple(self.scenes))
        object.__setattr__(self, "neutral_scenes", tuple(self.neutral_scenes))
        object.__setattr__(self, "control_scenes", tuple(self.control_scenes))
        object.__setattr__(self, "pan_speed", tuple(float(v) for v in self.pan_speed))
        object.__setattr__(self, "typical_scene", {a: self.typical_scene[a] for a in self.actions
                                                   if a in self.typical_scene})
        self.validate()

    def validate(self) -> None:
        from mashvlm.synth.actors import MOTIONS

        problems = []
        if self.height % 2 or self.width % 2 or self.height < 16 or self.width < 16:
            problems.append(f"frame size {self.width}x{self.height} must be even and at least 16")
        if self.frames < 2 or self.fps <= 0:
            problems.append("need frames >= 2 and fps > 0")
        if not all(0 <= v <= 1 for v in (self.rho, self.empty_frac, self.neutral_frac, self.still_frac,
                                         self.pan_prob)):
            problems.append("rho, empty_frac, neutral_frac, still_frac and pan_prob must lie in [0, 1]")
        if self.empty_frac + self.neutral_frac + self.still_frac > 1:
            problems.append("empty_frac + neutral_frac + still_frac must be at most 1")
        if self.still_frac and not self.control_scenes:
            problems.append("still_frac > 0 shows a person standing still in the control_scenes; name them")
        if len(self.actions) < 2 or len(set(self.actions)) != len(self.actions):
            problems.append("need at least 2 distinct actions")
        if len(self.scenes) < 2 or len(set(self.scenes)) != len(self.scenes):
            problems.append("need at least 2 distinct scenes")
        problems += [f"unknown action {a!r}" for a in self.actions if a not in MOTIONS]
        problems += [f"unknown scene {s!r}" for s in self.all_scenes if s not in SCENE_DRAWERS]
        if len(set(self.all_scenes)) != len(self.all_scenes):
            problems.append("neutral_scenes must be distinct and not among scenes")
        problems += [f"neutral scene {s!r} is the typical scene of an action"
                     for s in self.neutral_scenes if s in self.typical_scene.values()]
        if self.n_test_motion and not self.neutral_scenes:
            problems.append("the motion control (n_test_motion > 0) needs neutral_scenes")
        problems += [f"control scene {s!r} is not among neutral_scenes {list(self.neutral_scenes)}"
                     for s in self.control_scenes if s not in self.neutral_scenes]
        if len(set(self.control_scenes)) != len(self.control_scenes):
            problems.append("control_scenes must be distinct")
        if self.neutral_frac and len(self.neutral_scenes) < 2:
            problems.append("neutral_frac > 0 needs at least 2 neutral scenes (one of them is held out per action)")
        if ((self.neutral_frac or self.n_train_motion) and self.control_scenes
                and not set(self.neutral_scenes) - set(self.control_scenes)):
            problems.append("neutral_frac > 0 or n_train_motion > 0 needs a neutral scene outside control_scenes to "
                            "show actions in")
        if self.n_train_motion and not self.neutral_scenes:
            problems.append("the motion warm-up (n_train_motion > 0) needs neutral_scenes")
        for a in self.actions:
            if self.typical_scene.get(a) not in self.scenes:
                problems.append(f"action {a!r} needs a typical scene among the world's scenes")
        if min(self.n_train, self.n_test_usual, self.n_test_unusual, self.n_test_scene_only, self.n_test_motion,
               self.n_train_motion) < 0:
            problems.append("split sizes must be >= 0")
        if not 6 <= self.qa_per_video <= 8:
            problems.append("qa_per_video must be 6-8 (5 yes/no questions and 1-3 open ones)")
        if problems:
            raise UsageError("invalid WorldConfig: " + "; ".join(problems))

    def split_size(self, split: str) -> int:
        return {
            "train": self.n_train,
            "test_usual": self.n_test_usual,
            "test_unusual": self.n_test_unusual,
            "test_scene_only": self.n_test_scene_only,
            "test_motion": self.n_test_motion,
            "train_motion": self.n_train_motion,
        }[split]

    @property
    def all_scenes(self) -> tuple[str, ...]:
        """Every scene the world draws: the biased ``scenes``, then the ``neutral_scenes``."""
        return self.scenes + self.neutral_scenes

    def motion_control_scene(self, action: str) -> str:
        """The neutral scene ``action`` is held out in: shown there only in ``test_motion``, never in train.

        Action ``i`` (in ``actions`` order) is held out in ``control_scenes[i mod len(control_scenes)]``, or,
        without control scenes, in neutral scene ``i mod len(neutral_scenes)``, the training split then
        showing it in the other neutral scenes.
        """
        held_out_in = self.control_scenes or self.neutral_scenes
        return held_out_in[self.actions.index(action) % len(held_out_in)]

    def neutral_train_scenes(self, action: str) -> list[str]:
        """The neutral scenes the training split may show ``action`` in: not a control scene, not its held-out one."""
        held_out = self.motion_control_scene(action)
        return [s for s in self.neutral_scenes if s != held_out and s not in self.control_scenes]

    def typical_actions(self, scene: str) -> list[str]:
        """Actions whose typical scene is ``scene`` (empty for a neutral scene), in action order."""
        return [a for a in self.actions if self.typical_scene[a] == scene]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["actions"], d["scenes"], d["pan_speed"] = list(self.actions), list(self.scenes), list(self.pan_speed)
        d["neutral_scenes"], d["control_scenes"] = list(self.neutral_scenes), list(self.control_scenes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UsageError(f"unknown WorldConfig fields: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def quick(self) -> WorldConfig:
        """A tiny world of the same kind (for smoke tests): a few videos per split."""
        return dataclasses.replace(self, n_train=96, n_test_usual=16, n_test_unusual=16, n_test_scene_only=8,
                                   n_test_motion=16, n_train_motion=min(self.n_train_motion, 16))
