"""The controlled action-scene study behind ``mashvlm demo`` (see docs/synth.md).

A recipe that wires the components together: the synthetic world (``mashvlm.synth``), a frame-level
pre-training of the tiny vision tower (``tower``), instruction tuning (``mashvlm.training``) and the
UNSCENE runner and scorer (``mashvlm.unscene``), for the variants of ``config.VARIANTS``.
"""

from mashvlm.study.config import ABLATION_TABLES, PRESETS, VARIANTS, StudyConfig
from mashvlm.study.run import run_study

__all__ = ["ABLATION_TABLES", "PRESETS", "VARIANTS", "StudyConfig", "run_study"]
