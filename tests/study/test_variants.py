"""The MASH option names have one list (training.config.MASH_OPTIONS) and it names the model config's fields."""

from __future__ import annotations

import dataclasses

import pytest

from mashvlm.modeling import MashVlmConfig
from mashvlm.modeling.tiny import tiny_processor_and_config
from mashvlm.study.config import VARIANTS
from mashvlm.training.config import MASH_OPTIONS, TrainConfig


def test_every_variant_sets_each_mash_option_and_the_model_config_takes_them():
    assert set(MASH_OPTIONS) <= {f.name for f in dataclasses.fields(MashVlmConfig)}
    for name, (_, options) in VARIANTS.items():
        assert set(options) == set(MASH_OPTIONS), name
        _, config = tiny_processor_and_config(["a"], **options)
        assert {k: getattr(config, k) for k in MASH_OPTIONS} == options, name
    # Each attention switch reaches the DST rule.
    _, config = tiny_processor_and_config(["a"], **VARIANTS["t6_none"][1])
    assert config.dst_attention_kwargs == {"temporal": "causal", "spatial": "bidirectional",
                                           "spatial_attends_temporal": True, "temporal_attends_spatial": True}


def test_an_unknown_mash_option_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown 'mash' option\(s\) \['rope'\].*temporal_attends_spatial"):
        TrainConfig(train_file="t.json", mash={"rope": "harmonic"})
