"""``WorldConfig``: everything that, with a seed, fully determines a synthetic world."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mashvlm.errors import UsageError
from mashvlm.synth.labels import ACTIONS, SCENES, TYPICAL_SCENE
from mashvlm.synth.scenes import SCENE_DRAWERS
from mashvlm.validation import check_field_types

__all__ = ["WorldConfig", "SPLITS"]

# Split names, in the order they are generated.
SPLITS: tuple[str, ...] = ("train", "test_usual", "test_unusual", "test_scene_only")


@dataclass(frozen=True)
class WorldConfig:
    """Sizes, rates and label sets of a world. Motion ranges live in ``actors.py``, scenes in ``scenes.py``."""

    height: int = 64
    width: int = 64
    frames: int = 16
    fps: float = 8.0
    pan: bool = True  # allow slow camera pans at all
    pan_prob: float = 0.5  # share of videos (any split, empty scenes too) with a pan
    pan_speed: tuple[float, float] = (0.08, 0.16)  # frame heights per second
    rho: float = 0.9  # train: probability that an action is shown in its typical scene
    empty_frac: float = 0.1  # train: share of scene-only (no actor) videos
    n_train: int = 1200
    n_test_usual: int = 160
    n_test_unusual: int = 160
    n_test_scene_only: int = 80
    actions: tuple[str, ...] = ACTIONS
    scenes: tuple[str, ...] = SCENES
    typical_scene: dict[str, str] = field(default_factory=lambda: dict(TYPICAL_SCENE))
    qa_per_video: int = 6  # instruction QA entries per training video: 5 yes/no + open ones
    crf: int = 18  # H.264 quality of the written mp4s

    def __post_init__(self) -> None:
        check_field_types(self, "WorldConfig")
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "scenes", tuple(self.scenes))
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
        if not 0 <= self.rho <= 1 or not 0 <= self.empty_frac <= 1 or not 0 <= self.pan_prob <= 1:
            problems.append("rho, empty_frac and pan_prob must lie in [0, 1]")
        if len(self.actions) < 2 or len(set(self.actions)) != len(self.actions):
            problems.append("need at least 2 distinct actions")
        if len(self.scenes) < 2 or len(set(self.scenes)) != len(self.scenes):
            problems.append("need at least 2 distinct scenes")
        problems += [f"unknown action {a!r}" for a in self.actions if a not in MOTIONS]
        problems += [f"unknown scene {s!r}" for s in self.scenes if s not in SCENE_DRAWERS]
        for a in self.actions:
            if self.typical_scene.get(a) not in self.scenes:
                problems.append(f"action {a!r} needs a typical scene among the world's scenes")
        if min(self.n_train, self.n_test_usual, self.n_test_unusual, self.n_test_scene_only) < 0:
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
        }[split]

    def typical_actions(self, scene: str) -> list[str]:
        """Actions whose typical scene is ``scene`` (empty for a neutral scene), in action order."""
        return [a for a in self.actions if self.typical_scene[a] == scene]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["actions"], d["scenes"], d["pan_speed"] = list(self.actions), list(self.scenes), list(self.pan_speed)
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
        return dataclasses.replace(self, n_train=96, n_test_usual=16, n_test_unusual=16, n_test_scene_only=8)
