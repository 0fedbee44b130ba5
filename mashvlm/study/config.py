"""What the action-scene study trains and compares: presets, model variants, and the ablation grid.

Every variant is a set of MASH options (``MashVlmConfig`` fields). The two that ``mashvlm demo``
compares are the LLaVA-style baseline (causal attention over all video tokens, standard RoPE) and
MASH-VLM (DST-attention, Harmonic-RoPE). ``--full`` adds the cells of the paper's Tables 5-9: Tables 5-8
vary the MASH options, Table 9 the LLM tuning scheme (``VARIANT_TUNING``); Table 10 is an inference option
every MASH-VLM run reports.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mashvlm.errors import UsageError
from mashvlm.training.config import MASH_OPTIONS
from mashvlm.validation import check_field_types

__all__ = ["ABLATION_TABLES", "PRESETS", "StudyConfig", "VARIANTS", "VARIANT_TUNING", "run_directory",
           "variant_options", "variant_tuning"]


def _options(**options: Any) -> dict[str, Any]:
    """A variant's MASH options: every one of ``MASH_OPTIONS`` set by name (none left to a default)."""
    if set(options) != set(MASH_OPTIONS):
        raise ValueError(f"a study variant sets exactly {list(MASH_OPTIONS)}, got {sorted(options)}")
    return options


def _variant(label: str, temporal: str, spatial: str, spatial_attends_temporal: bool,
             temporal_attends_spatial: bool, rope: str, temporal_tokens: tuple[str, ...] = ("cls", "pooled", "frame_diff"),
             spatial_tokens: bool = True) -> tuple[str, dict[str, Any]]:
    """One row of the grid, in the ablation tables' column order (video tokens: Table 8's, default all)."""
    return label, _options(temporal_attention=temporal, spatial_attention=spatial,
                           spatial_attends_temporal=spatial_attends_temporal,
                           temporal_attends_spatial=temporal_attends_spatial, rope_variant=rope,
                           temporal_tokens=list(temporal_tokens), spatial_tokens=spatial_tokens)


# name -> (label, MASH options). Attention switches follow DESIGN §3 / Table 6's reading: a ✓ in the
# paper's "Spatial -> Temporal" column (key -> query) disables temporal queries attending spatial keys.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "baseline": _variant("Baseline (causal, RoPE)", "causal", "causal", True, False, "distinct"),
    "mash": _variant("MASH-VLM (DST, Harmonic-RoPE)", "causal", "bidirectional", False, False, "harmonic"),
    # Table 5: attention type per token type (no disentangling, standard RoPE).
    "t5_bidir_bidir": _variant("temporal bi-dir / spatial bi-dir", "bidirectional", "bidirectional", True, False,
                               "distinct"),
    "t5_bidir_causal": _variant("temporal bi-dir / spatial causal", "bidirectional", "causal", True, False,
                                "distinct"),
    "t5_causal_bidir": _variant("temporal causal / spatial bi-dir", "causal", "bidirectional", True, False,
                                "distinct"),
    # Table 6: disentangling (temporal causal, spatial bi-directional, standard RoPE).
    "t6_none": _variant("no disentangling", "causal", "bidirectional", True, True, "distinct"),
    "t6_spatial_only": _variant("spatial <- temporal off", "causal", "bidirectional", False, True, "distinct"),
    "t6_both": _variant("both directions off (DST)", "causal", "bidirectional", False, False, "distinct"),
    # Table 7: positions under DST-attention.
    "t7_balanced": _variant("balanced only", "causal", "bidirectional", False, False, "balanced"),
    # Table 8: the video tokens (MASH attention and Harmonic-RoPE; SP spatial pooling, TP temporal pooling).
    "t8_spatial_only": _variant("spatial tokens only (TP)", "causal", "bidirectional", False, False, "harmonic",
                                temporal_tokens=(), spatial_tokens=True),
    "t8_sp": _variant("temporal SP", "causal", "bidirectional", False, False, "harmonic",
                      temporal_tokens=("pooled",), spatial_tokens=False),
    "t8_sp_cls": _variant("temporal SP + CLS", "causal", "bidirectional", False, False, "harmonic",
                          temporal_tokens=("cls", "pooled"), spatial_tokens=False),
    "t8_sp_cls_fdiff": _variant("temporal SP + CLS + F-Diff", "causal", "bidirectional", False, False, "harmonic",
                                temporal_tokens=("cls", "pooled", "frame_diff"), spatial_tokens=False),
    # Table 9: MASH-VLM with another LLM tuning scheme (VARIANT_TUNING); its full fine-tuning row is "mash".
    "t9_frozen_llm": _variant("frozen LLM", "causal", "bidirectional", False, False, "harmonic"),
    "t9_lora": _variant("LoRA", "causal", "bidirectional", False, False, "harmonic"),
}

# name -> TrainConfig tuning fields, for the variants that do not fully fine-tune the LLM. The scheme holds in
# every training stage (the motion warm-up too); a LoRA stage is merged before the next starts. LLaVA-1.5's
# LoRA recipe (r 128, alpha 2r) is for 4096-wide LLMs; the study's is 128 wide, so r is 16 (alpha 2r).
VARIANT_TUNING: dict[str, dict[str, Any]] = {
    "t9_frozen_llm": {"tuning": "frozen_llm", "lora": {}},
    "t9_lora": {"tuning": "lora", "lora": {"r": 16, "alpha": 32}},
}

# The paper's ablation tables as (row label, variant name); a variant shared by two tables is trained once.
ABLATION_TABLES: dict[str, list[tuple[str, str]]] = {
    "Table 5: attention type (temporal / spatial)": [
        ("causal / causal", "baseline"),
        ("bi-dir / bi-dir", "t5_bidir_bidir"),
        ("bi-dir / causal", "t5_bidir_causal"),
        ("causal / bi-dir", "t5_causal_bidir"),
    ],
    "Table 6: disentangling (S->T off, T->S off)": [
        ("yes / no", "t5_causal_bidir"),
        ("no / yes", "t6_spatial_only"),
        ("no / no", "t6_none"),
        ("yes / yes", "t6_both"),
    ],
    "Table 7: positions": [
        ("distinct only", "t6_both"),
        ("balanced only", "t7_balanced"),
        ("distinct & balanced (harmonic)", "mash"),
    ],
    "Table 8: video tokens (temporal / spatial)": [
        ("- / TP", "t8_spatial_only"),
        ("SP / -", "t8_sp"),
        ("SP + CLS / -", "t8_sp_cls"),
        ("SP + CLS + F-Diff / -", "t8_sp_cls_fdiff"),
        ("SP + CLS + F-Diff / TP", "mash"),
    ],
    "Table 9: LLM tuning": [
        ("frozen", "t9_frozen_llm"),
        ("LoRA", "t9_lora"),
        ("full fine-tuning", "mash"),
    ],
}


def run_directory(out_dir: Path, variant: str, seed: int) -> Path:
    """Where one (variant, seed) run of a study keeps its training output, predictions and record."""
    return Path(out_dir) / "runs" / variant / f"seed{seed}"


def variant_options(name: str) -> dict[str, Any]:
    if name not in VARIANTS:
        raise KeyError(f"unknown study variant {name!r}; known: {sorted(VARIANTS)}")
    return dict(VARIANTS[name][1])


def variant_tuning(name: str) -> dict[str, Any]:
    """The TrainConfig ``tuning`` and ``lora`` of a variant (full fine-tuning unless Table 9 says otherwise)."""
    variant_options(name)  # an unknown name fails here
    return copy.deepcopy(VARIANT_TUNING.get(name, {"tuning": "full", "lora": {}}))


@dataclass
class StudyConfig:
    """Everything one study run depends on; saved beside its results."""

    world: dict[str, Any] = field(default_factory=dict)  # WorldConfig overrides
    world_seed: int = 0
    # The tiny model (mashvlm.modeling.tiny.tiny_processor_and_config keyword arguments).
    # text_initializer_range ~ 1/sqrt(text_hidden): Llama's 0.02 suits 4096-wide models; at width 128 it
    # leaves attention near uniform and the yes/no comparison is learned late or never (docs/synth.md).
    tiny: dict[str, Any] = field(default_factory=lambda: dict(
        image_size=32, patch_size=8, num_frames=8, vision_hidden=64, vision_layers=3, text_hidden=128,
        text_layers=3, heads=4, text_initializer_range=0.088))
    # Steps of the default are sized for `make demo`'s 15 minutes on 2 CPU cores (docs/synth.md, Time).
    tower_steps: int = 2000
    tower_seed: int = 0
    # Extra clips of the actor in every scene for the tower's frames (mashvlm.study.tower); without them
    # the tower locates the person poorly in a scene the training videos never show one in.
    tower_clips_per_scene: int = 40
    # Text-only pre-training of the Llama (mashvlm.study.language); 0 starts instruction tuning from random.
    language_steps: int = 600
    language_seed: int = 0
    # Motion warm-up, before the training split, on the world's train_motion split (actions in neutral scenes,
    # where only the motion tells them): first steps asking only what the person does, then steps on all its
    # questions; 0 skips a phase (docs/synth.md, "Making actions learnable").
    motion_open_steps: int = 0
    motion_steps: int = 0
    # The first phase's learning rate (None: learning_rate, which the second phase and instruction tuning
    # use). --long trains the first at 3e-3 and the rest at 1e-3: at 3e-3 the second phase learned the yes/no
    # comparison for some seeds only (docs/synth.md, "A lower learning rate after the open question").
    motion_open_learning_rate: float | None = None
    # Keep the warm-up's videos in instruction tuning: the training split and train_motion together, so that
    # reading motion is not unlearned while the scene shortcut is learned.
    motion_in_training: bool = False
    learning_rate: float = 3e-3
    weight_decay: float = 0.1
    max_steps: int = 1500
    batch_size: int = 32
    warmup_ratio: float = 0.05
    seeds: list[int] = field(default_factory=lambda: [0])
    variants: list[str] = field(default_factory=lambda: ["baseline", "mash"])
    max_new_tokens: int = 24
    # Attention scores (Fig. 6/8) of baseline and MASH-VLM: at most this many action and scene questions
    # of each question set per seed (0: off).
    attention_questions: int = 24

    def __post_init__(self) -> None:
        from mashvlm.synth.config import WorldConfig

        check_field_types(self, "study setting")
        world = WorldConfig.from_dict(self.world)  # a bad world setting is named now, not after the study started
        for name in ("motion_open_steps", "motion_steps"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.motion_open_learning_rate is not None and self.motion_open_learning_rate <= 0:
            raise UsageError("motion_open_learning_rate must be > 0 (or null: learning_rate), "
                             f"got {self.motion_open_learning_rate}")
        uses = {"motion_open_steps > 0": self.motion_open_steps > 0, "motion_steps > 0": self.motion_steps > 0,
                "motion_in_training": self.motion_in_training}
        for setting, used in uses.items():
            if used and not world.n_train_motion:
                raise UsageError(f"{setting} trains on the world's train_motion videos, and the world has none: "
                                 "set its n_train_motion (mashvlm demo --long does)")
        unknown = [name for name in self.variants if name not in VARIANTS]
        if unknown:
            raise UsageError(f"unknown study variant(s) {unknown}; known: {sorted(VARIANTS)}")
        if not self.variants:
            raise UsageError("need at least one variant")
        if not self.seeds:
            raise UsageError("need at least one seed")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _full_variants() -> list[str]:
    names = ["baseline", "mash"]
    for rows in ABLATION_TABLES.values():
        names += [v for _, v in rows if v not in names]
    return names


PRESETS: dict[str, dict[str, Any]] = {
    # ~3 minutes: a small world, short training; enough to see the pipeline work, not to compare models.
    "quick": dict(world=dict(n_train=320, n_test_usual=48, n_test_unusual=48, n_test_scene_only=24,
                             n_test_motion=48),
                  tower_steps=150, tower_clips_per_scene=4, language_steps=100, max_steps=250),
    "default": {},
    # The default with a motion warm-up before instruction tuning, its videos kept in instruction tuning, twice
    # the instruction tuning, which the mixture needs, and a third of the learning rate after the warm-up's
    # open question (docs/synth.md, "Making actions learnable").
    "long": dict(world=dict(n_train_motion=1200), motion_open_steps=800, motion_steps=3000, motion_in_training=True,
                 max_steps=3000, learning_rate=1e-3, motion_open_learning_rate=3e-3),
    "full": dict(seeds=[0, 1, 2], variants=_full_variants()),
}
