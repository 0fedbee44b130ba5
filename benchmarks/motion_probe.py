"""Can the action be read from motion in a study's world, and through its frozen vision tower?

Trains small MLP probes (8-way action classification) on the training split's videos with an actor and
tests them on the usual-context and motion-control videos, from:

- ``true centres``: the actor's true positions at the T sampled frames and their differences (the
  world's upper bound: is the motion at T frames enough?);
- ``tower, all``: the tower's per-frame CLS and mean patch features (what the temporal tokens are
  built from), scene included;
- ``tower, differences``: frame-to-frame differences of those features (scene mostly cancelled);
- ``tower -> centres``: a ridge readout of the centres from the features (fitted on the training
  frames), then the probe on the read-out centres; with the readout's centre RMSE per test split;
- ``..., neutral-trained``: the same probe trained only on the videos of neutral scenes, where the scene
  says nothing about the action, so it can only learn the motion;
- with ``--model DIR`` (a trained study model, e.g. ``runs/demo/runs/baseline/seed0/train/final``):
  ``model, temporal tokens``, the temporal tokens exactly as that model's LLM receives them (after its
  projector), which says whether the motion survives the projector.

It measures what the data allow, not the LLM: a probe that sees the scene learns it first, as the LLM
does. docs/synth.md quotes its output.

    python benchmarks/motion_probe.py runs/demo [--tower runs/demo/vision_tower.safetensors] [--frames 8]
        [--model runs/demo/runs/baseline/seed0/train/final]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from torch import nn

from mashvlm.modeling.tiny import tiny_processor_and_config
from mashvlm.synth import load_world, render_spec
from mashvlm.video import read_video_frames, segment_middle_indices


def features(world, split, processor, tower, layer, frames, model=None):
    """Per video with an actor: tower features [T, 2D] (CLS, mean patch), true centres [T, 2], action index,
    the model's temporal tokens [M, D] (None without ``model``) and whether the scene is a neutral one."""
    feats, centres, labels, tokens, neutral = [], [], [], [], []
    idx = segment_middle_indices(world.config.frames, frames)
    for spec in world.split(split):
        if spec.action is None:
            continue
        pixels = processor.image_processor(images=list(read_video_frames(world.path(spec), frames)),
                                           return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            hidden = tower(pixels, output_hidden_states=True).hidden_states[layer]
            if model is not None:
                tokens.append(model.model.get_video_features(pixels[None].to(model.dtype))[0][0].float())
        feats.append(torch.cat([hidden[:, 0], hidden[:, 1:].mean(1)], -1))
        centres.append(torch.tensor(render_spec(world.config, world.seed, spec).centers[idx] / world.config.height,
                                    dtype=torch.float32))
        labels.append(world.config.actions.index(spec.action))
        neutral.append(spec.scene in world.config.neutral_scenes)
    return (torch.stack(feats), torch.stack(centres), torch.tensor(labels), torch.stack(tokens) if tokens else None,
            torch.tensor(neutral))


def with_differences(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x[:, 1:] - x[:, :-1]], 1)


def differences(x: torch.Tensor) -> torch.Tensor:
    return x[:, 1:] - x[:, :-1]


def probe(train_x, train_y, tests, classes, steps=3000, seed=0):
    """An MLP on standardised, flattened inputs; accuracy on each test set."""
    torch.manual_seed(seed)
    train_x = train_x.flatten(1)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    net = nn.Sequential(nn.Linear(train_x.shape[1], 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(),
                        nn.Linear(256, classes))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
    for _ in range(steps):
        batch = torch.randint(0, len(train_y), (128,))
        loss = nn.functional.cross_entropy(net((train_x[batch] - mean) / std), train_y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return {name: (net((x.flatten(1) - mean) / std).argmax(-1) == y).float().mean().item()
                for name, (x, y) in tests.items()}


def ridge(x, y, lam=1e-2):
    x1 = torch.cat([x, torch.ones(len(x), 1)], 1)
    return torch.linalg.solve(x1.T @ x1 + lam * torch.eye(x1.shape[1]), x1.T @ y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", type=Path, help="a study folder (world/, vision_tower.safetensors, study_config.json)")
    parser.add_argument("--tower", type=Path, default=None, help="tower weights (default: the study's)")
    parser.add_argument("--frames", type=int, default=8, help="frames sampled per video (the model's T)")
    parser.add_argument("--model", type=Path, default=None, help="a trained study model: also probe its temporal tokens")
    args = parser.parse_args()
    from safetensors.torch import load_file
    from transformers import AutoModel

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    tiny = dict(json.loads((args.study / "study_config.json").read_text())["tiny"], num_frames=args.frames)
    processor, config = tiny_processor_and_config(["a"], **tiny)
    tower = AutoModel.from_config(config.vision_config)
    tower.load_state_dict(load_file(args.tower or args.study / "vision_tower.safetensors"))
    tower.eval()
    world = load_world(args.study / "world")
    layer, classes = config.vision_feature_layer, len(world.config.actions)
    model = None
    if args.model is not None:
        from mashvlm.modeling import MashVlmForConditionalGeneration

        model = MashVlmForConditionalGeneration.from_pretrained(args.model).eval()
    data = {split: features(world, split, processor, tower, layer, args.frames, model)
            for split in ("train", "test_usual", "test_motion")}
    print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; {args.study}, "
          f"T = {args.frames}; probe accuracy (chance {1 / classes:.3f})")
    print(f"{'input':28}{'usual context':>16}{'motion control':>16}")

    def row(name, transform, neutral_only=False):
        x, _, y, _, neutral = data["train"]
        tests = {split: (transform(data[split][0], split), data[split][2]) for split in ("test_usual", "test_motion")}
        train_x = transform(x, "train")
        if neutral_only:  # trained where the scene tells nothing about the action
            train_x, y = train_x[neutral], y[neutral]
        acc = probe(train_x, y, tests, classes)
        print(f"{name:28}{acc['test_usual']:>16.3f}{acc['test_motion']:>16.3f}")

    truth = {split: data[split][1] for split in data}
    row("true centres", lambda x, split: with_differences(truth[split]))
    row("tower, all", lambda x, split: x)
    row("tower, differences", lambda x, split: differences(x))
    weights = ridge(data["train"][0].flatten(0, 1), data["train"][1].flatten(0, 1))
    read = {split: (torch.cat([d[0].flatten(0, 1), torch.ones(d[0].shape[0] * d[0].shape[1], 1)], 1) @ weights)
            .view_as(d[1]) for split, d in data.items()}
    row("tower -> centres", lambda x, split: with_differences(read[split]))
    row("tower, all, neutral-trained", lambda x, split: x, neutral_only=True)
    if model is not None:
        row("model, temporal tokens", lambda x, split: data[split][3])
        row("model, tokens, neutral-tr.", lambda x, split: data[split][3], neutral_only=True)
    rmse = {split: ((read[split] - data[split][1]) ** 2).mean().sqrt().item() for split in ("test_usual", "test_motion")}
    print(f"{'centre RMSE (frame heights)':28}{rmse['test_usual']:>16.3f}{rmse['test_motion']:>16.3f}")


if __name__ == "__main__":
    main()
