"""A short supervised pre-training of the study's tiny CLIP vision tower on the world's frames.

The paper's tower is a CLIP ViT pre-trained on images and then frozen. Here, in place of CLIP's image
pre-training (a frozen random tower gives the LLM no reason to see a few-pixel actor; see docs/synth.md
for what was tried), the tower learns per frame what a single image shows, read from the
features at ``vision_feature_layer`` (the ones the LLM sees): the scene (from the patch features),
whether a person is there and where (from the CLS feature and, linearly, from the mean patch feature, so
that the paper's frame-difference tokens carry the person's velocity), and which patch holds the person.
It never sees a video or an action label; actions stay for the LLM to learn from motion across frames.
The tower is then frozen for instruction tuning, as in the paper.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mashvlm.files import atomic_path
from mashvlm.modeling import MashVlmConfig, MashVlmProcessor
from mashvlm.study.optimise import fit
from mashvlm.synth import Clip, World, render_spec, render_video
from mashvlm.video import read_video_frames, write_video

# Seed stream of the tower's extra clips (any constant apart from the world's split codes).
_TOWER_CORPUS = 7

__all__ = ["TowerTargets", "frame_targets", "pretrain_vision_tower"]


@dataclass
class TowerTargets:
    pixels: torch.Tensor  # [F, 3, S, S] CLIP-normalised frames
    scene: torch.Tensor  # [F] scene index
    present: torch.Tensor  # [F] 1.0 if a person is in the frame
    center: torch.Tensor  # [F, 2] actor centre in [-1, 1] (0 when absent)
    patch_mask: torch.Tensor  # [F, g*g] 1.0 where the actor's centre lies in a patch


def _clips_of_split(world: World, split: str) -> Iterator[tuple[np.ndarray, Clip]]:
    for spec in world.split(split):
        yield read_video_frames(world.path(spec), world.config.frames), render_spec(world.config, world.seed, spec)


def _clips_in_every_scene(world: World, per_scene: int, seed: int) -> Iterator[tuple[np.ndarray, Clip]]:
    """``per_scene`` clips of the actor in each scene, neutral and control scenes too, H.264 round-tripped.

    CLIP has seen people in every kind of place. Frames of the world's training videos alone show the
    actor only where the training split puts it, and a tower trained on them alone locates it poorly in a
    scene it never saw it in (the motion control's, docs/synth.md). A single frame says nothing about the
    action (the actor's position and size have the same distribution for every action), so these frames
    add where a person can be, not what a person does.
    """
    config, scenes = world.config, world.config.all_scenes
    rng = np.random.default_rng(np.random.SeedSequence([seed, _TOWER_CORPUS]))
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(per_scene * len(scenes)):
            action = config.actions[int(rng.integers(len(config.actions)))]
            clip = render_video(action, scenes[i % len(scenes)], np.random.SeedSequence([seed, _TOWER_CORPUS, i]),
                                config)
            path = Path(tmp) / "clip.mp4"
            write_video(path, clip.frames, config.fps, crf=config.crf, threads=1)  # threads=1: bit-reproducible
            yield read_video_frames(path, config.frames), clip


def frame_targets(world: World, clips: Iterable[tuple[np.ndarray, Clip]], processor: MashVlmProcessor,
                  grid: int) -> TowerTargets:
    """Every frame of ``clips`` (decoded from mp4, as the model will see it) with its per-frame labels.

    Labels come from rendering each video (``render_spec`` is deterministic), so nothing is stored
    beside the world.
    """
    scenes = list(world.config.all_scenes)
    frames_per_video = world.config.frames
    pixels, scene, present, center, patch = [], [], [], [], []
    for frames, clip in clips:
        pixels.append(processor.image_processor(images=list(frames), return_tensors="pt")["pixel_values"])
        scene += [scenes.index(clip.scene)] * frames_per_video
        for t in range(frames_per_video):
            if clip.centers is None:  # no actor
                present.append(0.0)
                center.append((0.0, 0.0))
                patch.append(np.zeros(grid * grid, np.float32))
                continue
            x, y = clip.centers[t]
            w, h = world.config.width, world.config.height
            present.append(1.0)
            center.append((2 * x / w - 1, 2 * y / h - 1))
            cell = np.zeros(grid * grid, np.float32)
            cell[min(int(y / h * grid), grid - 1) * grid + min(int(x / w * grid), grid - 1)] = 1.0
            patch.append(cell)
    return TowerTargets(
        pixels=torch.cat(pixels),
        scene=torch.tensor(scene),
        present=torch.tensor(present),
        center=torch.tensor(center, dtype=torch.float32),
        patch_mask=torch.tensor(np.stack(patch)),
    )


class _Heads(nn.Module):
    def __init__(self, dim: int, num_scenes: int):
        super().__init__()
        self.scene = nn.Linear(dim, num_scenes)
        self.present = nn.Linear(dim, 1)
        self.center = nn.Linear(dim, 2)
        self.patch = nn.Linear(dim, 1)
        self.pooled_center = nn.Linear(dim, 2)


def _losses(tower, heads, layer: int, batch: TowerTargets) -> tuple[torch.Tensor, dict[str, float]]:
    hidden = tower(batch.pixels, output_hidden_states=True).hidden_states[layer]
    cls, patches = hidden[:, 0], hidden[:, 1:]
    # The CLS feature (a temporal token per frame) learns the person; the patches (pooled into the spatial
    # tokens) learn the scene and where the person is.
    scene_logits = heads.scene(patches).mean(1)
    scene = nn.functional.cross_entropy(scene_logits, batch.scene)
    present = nn.functional.binary_cross_entropy_with_logits(heads.present(cls)[:, 0], batch.present)
    err = ((heads.center(cls) - batch.center) ** 2).sum(-1)
    center = (err * batch.present).sum() / batch.present.sum().clamp(min=1)
    # The mean patch feature is a temporal token, and the frame-difference tokens are differences of it:
    # asking it to hold the position linearly makes those tokens carry the actor's velocity.
    pooled_err = ((heads.pooled_center(patches.mean(1)) - batch.center) ** 2).sum(-1)
    pooled_center = (pooled_err * batch.present).sum() / batch.present.sum().clamp(min=1)
    patch = nn.functional.binary_cross_entropy_with_logits(heads.patch(patches)[..., 0], batch.patch_mask)
    loss = scene + present + 4 * center + 4 * pooled_center + patch
    with torch.no_grad():
        stats = {
            "scene_acc": (scene_logits.argmax(-1) == batch.scene).float().mean().item(),
            "present_acc": ((heads.present(cls)[:, 0] > 0).float() == batch.present).float().mean().item(),
            "center_rmse": math.sqrt(center.item() / 2),
            "pooled_center_rmse": math.sqrt(pooled_center.item() / 2),
        }
    return loss, stats


def _take(t: TowerTargets, idx: torch.Tensor) -> TowerTargets:
    return TowerTargets(t.pixels[idx], t.scene[idx], t.present[idx], t.center[idx], t.patch_mask[idx])


def _cat(a: TowerTargets, b: TowerTargets) -> TowerTargets:
    return TowerTargets(*(torch.cat([x, y]) for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b),
                                                             strict=True)))


def pretrain_vision_tower(
    world: World,
    processor: MashVlmProcessor,
    config: MashVlmConfig,
    out_file: str | os.PathLike,
    *,
    steps: int = 600,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    clips_per_scene: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """Train a ``CLIPVisionModel`` of ``config.vision_config`` on the world's train frames and save its
    weights (safetensors, the key layout of ``model.model.vision_tower``) to ``out_file``.

    ``clips_per_scene`` > 0 adds that many clips of the actor in each scene (``_clips_in_every_scene``).
    Returns held-out (usual-context test frames) probe metrics: scene accuracy, person-present accuracy,
    centre RMSE in half-frames, and the centre RMSE on the motion control's frames. Written atomically; an
    existing file is reused by the caller.
    """
    from safetensors.torch import save_file
    from transformers import AutoModel

    torch.manual_seed(seed)
    grid = config.vision_config.image_size // config.vision_config.patch_size
    train = frame_targets(world, _clips_of_split(world, "train"), processor, grid)
    if clips_per_scene:
        train = _cat(train, frame_targets(world, _clips_in_every_scene(world, clips_per_scene, seed), processor, grid))
    held_out = frame_targets(world, _clips_of_split(world, "test_usual"), processor, grid)
    tower = AutoModel.from_config(config.vision_config)
    heads = _Heads(config.vision_config.hidden_size, len(world.config.all_scenes))

    def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss, stats = _losses(tower, heads, config.vision_feature_layer, _take(train, idx))
        return loss, {"scene": stats["scene_acc"]}

    tower.train()
    fit([*tower.parameters(), *heads.parameters()], batch_loss, num_examples=len(train.scene), steps=steps,
        batch_size=batch_size, lr=lr, seed=seed, desc="vision tower", progress=progress)
    tower.eval()
    with torch.no_grad():
        _, metrics = _losses(tower, heads, config.vision_feature_layer, held_out)
        if world.split("test_motion"):
            # How well the person is located in the motion control's scenes, which may show it only there.
            motion = frame_targets(world, _clips_of_split(world, "test_motion"), processor, grid)
            _, motion_metrics = _losses(tower, heads, config.vision_feature_layer, motion)
            metrics["motion_control_center_rmse"] = motion_metrics["center_rmse"]
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_file) as tmp:
        save_file({k: v.contiguous() for k, v in tower.state_dict().items()}, str(tmp))
    return metrics
