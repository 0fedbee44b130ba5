"""The synthetic action-scene world: a controlled, bias-planted stand-in for real video data.

Scenes are drawn procedurally (one frame tells the scene); actions are performed by one actor whose look
is the same for every action (only motion over time tells the action). In the training split each action
appears in its typical scene with probability ``rho``; the test splits mirror UNSCENE (usual context,
unusual context, scene only) plus two controls (usual context; the motion control, actions in neutral
scenes they are never shown in during training). See ``docs/synth.md``.
"""

from mashvlm.synth.config import SPLITS, WorldConfig
from mashvlm.synth.contact import contact_sheet
from mashvlm.synth.labels import ACTIONS, ALL_SCENES, NEUTRAL_SCENES, SCENES, TYPICAL_SCENE
from mashvlm.synth.render import Clip, render_video, video_seed
from mashvlm.synth.world import (
    CONTROL_SETS,
    FORMAT_VERSION,
    UNSCENE_SETS,
    VideoSpec,
    World,
    WorldMismatchError,
    build_world,
    hallucination_candidates,
    instruct_entry,
    load_world,
    plan_split,
    plan_world,
    render_spec,
    unscene_record,
)

__all__ = [
    "ACTIONS",
    "ALL_SCENES",
    "CONTROL_SETS",
    "Clip",
    "FORMAT_VERSION",
    "NEUTRAL_SCENES",
    "SCENES",
    "SPLITS",
    "TYPICAL_SCENE",
    "UNSCENE_SETS",
    "VideoSpec",
    "World",
    "WorldConfig",
    "WorldMismatchError",
    "build_world",
    "contact_sheet",
    "hallucination_candidates",
    "instruct_entry",
    "load_world",
    "plan_split",
    "plan_world",
    "render_spec",
    "render_video",
    "unscene_record",
    "video_seed",
]
