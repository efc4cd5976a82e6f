"""The LLaSO model in transformers style: config, processor, model, weight import and conversion.

Imports are lazy, because light modules (`llaso.model.weights`) import this package and torch and
transformers are heavy: `from llaso.model import LlasoForConditionalGeneration` loads the modeling module
on first use, and importing any of these modules registers the Auto classes (AutoConfig "llaso",
AutoModelForCausalLM, AutoModel, AutoProcessor), so `from_pretrained` on a saved folder works afterwards.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LlasoConfig": "config",
    "LLASO_SYSTEM_PROMPT": "config",
    "load_model_config": "config",
    "audio_positions": "config",
    "LlasoForConditionalGeneration": "modeling",
    "build_llaso": "modeling",
    "build_tiny_llaso": "modeling",
    "add_llaso_tokens": "modeling",
    "count_parameters": "modeling",
    "LlasoProcessor": "processing",
    "LlasoInputError": "processing",
    "make_toy_tokenizer": "processing",
    "AudioProjector": "projector",
    "convert_original_checkpoint": "convert",
    "config_from_original": "convert",
}

__all__ = [
    "LLASO_SYSTEM_PROMPT",
    "AudioProjector",
    "LlasoConfig",
    "LlasoForConditionalGeneration",
    "LlasoInputError",
    "LlasoProcessor",
    "add_llaso_tokens",
    "audio_positions",
    "build_llaso",
    "build_tiny_llaso",
    "config_from_original",
    "convert_original_checkpoint",
    "count_parameters",
    "load_model_config",
    "make_toy_tokenizer",
]

if TYPE_CHECKING:
    from llaso.model.config import LLASO_SYSTEM_PROMPT, LlasoConfig, audio_positions, load_model_config
    from llaso.model.convert import config_from_original, convert_original_checkpoint
    from llaso.model.modeling import (
        LlasoForConditionalGeneration,
        add_llaso_tokens,
        build_llaso,
        build_tiny_llaso,
        count_parameters,
    )
    from llaso.model.processing import LlasoInputError, LlasoProcessor, make_toy_tokenizer
    from llaso.model.projector import AudioProjector


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'llaso.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"llaso.model.{mod}"), name)
    globals()[name] = value
    return value
