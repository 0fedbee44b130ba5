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

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mashvlm.files import atomic_path
from mashvlm.modeling import MashVlmConfig, MashVlmProcessor
from mashvlm.study.optimise import fit
from mashvlm.synth import World, render_spec
from mashvlm.video import read_video_frames

__all__ = ["TowerTargets", "frame_targets", "pretrain_vision_tower"]


@dataclass
class TowerTargets:
    pixels: torch.Tensor  # [F, 3, S, S] CLIP-normalised frames
    scene: torch.Tensor  # [F] scene index
    present: torch.Tensor  # [F] 1.0 if a person is in the frame
    center: torch.Tensor  # [F, 2] actor centre in [-1, 1] (0 when absent)
    patch_mask: torch.Tensor  # [F, g*g] 1.0 where the actor's centre lies in a patch


def frame_targets(world: World, split: str, processor: MashVlmProcessor, grid: int) -> TowerTargets:
    """Every frame of ``split`` (decoded from its mp4, as the model will see it) with its per-frame labels.

    Labels come from re-rendering each video (``render_spec`` is deterministic), so nothing is stored
    beside the world.
    """
    scenes = list(world.config.all_scenes)
    frames_per_video = world.config.frames
    pixels, scene, present, center, patch = [], [], [], [], []
    for spec in world.split(split):
        frames = read_video_frames(world.path(spec), frames_per_video)
        pixels.append(processor.image_processor(images=list(frames), return_tensors="pt")["pixel_values"])
        scene += [scenes.index(spec.scene)] * frames_per_video
        clip = render_spec(world.config, world.seed, spec) if spec.action is not None else None
        for t in range(frames_per_video):
            if clip is None:
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
    progress: bool = True,
) -> dict[str, float]:
    """Train a ``CLIPVisionModel`` of ``config.vision_config`` on the world's train frames and save its
    weights (safetensors, the key layout of ``model.model.vision_tower``) to ``out_file``.

    Returns held-out (usual-context test frames) probe metrics: scene accuracy, person-present accuracy,
    centre RMSE in half-frames. Written atomically; an existing file is reused by the caller.
    """
    from safetensors.torch import save_file
    from transformers import AutoModel

    torch.manual_seed(seed)
    grid = config.vision_config.image_size // config.vision_config.patch_size
    train = frame_targets(world, "train", processor, grid)
    held_out = frame_targets(world, "test_usual", processor, grid)
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
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_file) as tmp:
        save_file({k: v.contiguous() for k, v in tower.state_dict().items()}, str(tmp))
    return metrics
