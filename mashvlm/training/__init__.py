"""Instruction tuning: VideoChat2-format data, the Trainer recipe and its configuration."""

from .config import TrainConfig
from .data import (
    DataFormatError,
    InstructionRecord,
    VideoInstructionCollator,
    VideoInstructionDataset,
    load_videochat2_json,
)
from .trainer import TrainResult, build_model_and_processor, train

__all__ = [
    "DataFormatError",
    "InstructionRecord",
    "TrainConfig",
    "TrainResult",
    "VideoInstructionCollator",
    "VideoInstructionDataset",
    "build_model_and_processor",
    "load_videochat2_json",
    "train",
]
