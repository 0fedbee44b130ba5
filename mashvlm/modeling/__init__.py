"""MASH-VLM model: configuration, modeling, processing and LLaVA conversion."""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_mash_vlm import MashVlmConfig
from .modeling_mash_vlm import (
    MashVlmForConditionalGeneration,
    MashVlmModel,
    MashVlmPreTrainedModel,
)
from .processing_mash_vlm import MashVlmProcessor

AutoConfig.register("mash_vlm", MashVlmConfig, exist_ok=True)
AutoModel.register(MashVlmConfig, MashVlmModel, exist_ok=True)
AutoModelForImageTextToText.register(MashVlmConfig, MashVlmForConditionalGeneration, exist_ok=True)
AutoProcessor.register(MashVlmConfig, MashVlmProcessor, exist_ok=True)

__all__ = [
    "MashVlmProcessor",
    "MashVlmConfig", "MashVlmModel", "MashVlmPreTrainedModel", "MashVlmForConditionalGeneration"]
