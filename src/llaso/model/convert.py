"""Load original LLaSO checkpoints (the LLaVA-fork release) into `LlasoForConditionalGeneration`.

Original state-dict names → ours:

| original | ours |
|---|---|
| `model.audio_tower.audio_tower.*` (Whisper encoder) | `audio_tower.*` |
| `model.mm_audio_aligner.projector.{0,2}.*` (`mlp2x_gelu`; `.weight/.bias` for `linear`) | `projector.net.{0,2}.*` (`net.0.*`) |
| `model.embed_tokens.*`, `model.layers.*`, `model.norm.*` (Llama) | `language_model.model.*` |
| `lm_head.weight` (absent when tied) | `language_model.lm_head.weight` |

The original `config.json` is a Llama config plus LLaVA-style keys: `mm_audio_tower` (a local path),
`audio_projector_type` / `mm_audio_projector_type` / `mm_projector_type`, `mm_hidden_size`,
`mm_audio_select_layer`, `mm_use_audio_start_end`, ... `config_from_original` turns it into a
`LlasoConfig`; the encoder config comes from an explicit `audio_config`, else a local `mm_audio_tower`
folder, else the encoder weights' shapes (never from a substring of the path).

A Stage-1 output (`mm_audio_aligner.bin`, projector only) is loaded into a `base_model` you pass.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from safetensors.torch import load_file
from transformers import AutoConfig, PretrainedConfig, WhisperConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from llaso.model.config import LLAMA3_AUDIO_TOKEN, LlasoConfig
from llaso.model.modeling import LlasoForConditionalGeneration

ENCODER_PREFIX = "model.audio_tower.audio_tower."
ALIGNER_PREFIX = "model.mm_audio_aligner.projector."
# Keys of the LLaVA fork that are not part of the audio model (vision parts, rotary caches).
_IGNORED = re.compile(r"^(model\.vision_tower\.|model\.mm_projector\.|.*rotary_emb\.inv_freq$)")
# Config keys that belong to LLaVA/LLaSO training, not to the text model.
_NON_TEXT_PREFIXES = (
    "mm_",
    "audio_",
    "image_",
    "tune_",
    "freeze_",
    "unfreeze_",
    "pretrain_",
    "tokenizer_",
    "use_mm",
)
_LLAMA3_VOCAB = 128256


def original_to_ours(key: str) -> str | None:
    """Our parameter name for an original state-dict key (None for keys we drop)."""
    if _IGNORED.match(key):
        return None
    if key.startswith(ENCODER_PREFIX):
        return "audio_tower." + key[len(ENCODER_PREFIX) :]
    if key.startswith(ALIGNER_PREFIX):
        rest = key[len(ALIGNER_PREFIX) :]
        return "projector.net." + (f"0.{rest}" if rest in ("weight", "bias") else rest)
    if key.startswith("model."):
        return "language_model." + key
    if key.startswith("lm_head."):
        return "language_model." + key
    raise KeyError(f"unknown original checkpoint key {key!r}")


def ours_to_original(key: str) -> str:
    """The inverse of `original_to_ours` (for writing fixtures and exporting)."""
    if key.startswith("audio_tower."):
        return ENCODER_PREFIX + key[len("audio_tower.") :]
    if key.startswith("projector.net."):
        return ALIGNER_PREFIX + key[len("projector.net.") :]
    if key.startswith("language_model."):
        return key[len("language_model.") :]
    raise KeyError(key)


# ---- config -------------------------------------------------------------------------------------
def _audio_config_from_weights(sd: Mapping[str, torch.Tensor]) -> WhisperConfig:
    conv1 = sd.get(ENCODER_PREFIX + "conv1.weight")
    if conv1 is None:
        raise ValueError(
            "no encoder weights and no audio_config: pass audio_config= (a WhisperConfig or dict)"
        )
    d_model, n_mels = int(conv1.shape[0]), int(conv1.shape[1])
    layers = {
        int(m.group(1)) for k in sd if (m := re.match(re.escape(ENCODER_PREFIX) + r"layers\.(\d+)\.", k))
    }
    ffn = int(sd[ENCODER_PREFIX + "layers.0.fc1.weight"].shape[0])
    positions = int(sd[ENCODER_PREFIX + "embed_positions.weight"].shape[0])
    return WhisperConfig(
        d_model=d_model,
        num_mel_bins=n_mels,
        encoder_layers=len(layers),
        encoder_attention_heads=max(1, d_model // 64),  # every Whisper size uses 64-dim heads
        encoder_ffn_dim=ffn,
        max_source_positions=positions,
    )


def config_from_original(
    original: Mapping[str, Any],
    *,
    audio_config: PretrainedConfig | Mapping[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    tokenizer: Any = None,
) -> LlasoConfig:
    """A `LlasoConfig` from an original (LLaVA-style) `config.json` dict."""
    cfg = dict(original)
    # -- audio encoder
    audio: PretrainedConfig
    if isinstance(audio_config, Mapping):
        audio = WhisperConfig(**{k: v for k, v in audio_config.items() if k != "model_type"})
    elif audio_config is not None:
        audio = audio_config
    elif (tower := cfg.get("mm_audio_tower")) and Path(str(tower), "config.json").is_file():
        audio = AutoConfig.from_pretrained(str(tower))
        if audio.model_type != "whisper":
            raise ValueError(f"mm_audio_tower {tower} is a {audio.model_type!r} model, not Whisper")
    elif state_dict is not None:
        audio = _audio_config_from_weights(state_dict)
    else:
        raise ValueError("cannot tell the audio encoder: pass audio_config= or a state dict with its weights")
    # -- text model
    text = {k: v for k, v in cfg.items() if not k.startswith(_NON_TEXT_PREFIXES)}
    for k in ("architectures", "transformers_version", "_name_or_path", "auto_map"):
        text.pop(k, None)
    mt = str(text.get("model_type", "llama"))
    text["model_type"] = mt if mt in CONFIG_MAPPING and not mt.startswith("llava") else "llama"
    projector = (
        cfg.get("audio_projector_type")
        or cfg.get("mm_audio_projector_type")
        or cfg.get("mm_projector_type")
        or "mlp2x_gelu"
    )
    out = LlasoConfig(
        audio_config=audio,
        text_config=text,
        projector_type=str(projector),
        audio_select_layer=int(cfg.get("mm_audio_select_layer", -1)),
        use_audio_start_end=bool(cfg.get("mm_use_audio_start_end", True)),
        audio_token_mode="llaso-base",
    )
    hidden = cfg.get("mm_audio_hidden_size", cfg.get("mm_hidden_size"))
    d_model = int(audio.d_model)
    if hidden is not None and int(hidden) not in (d_model, out.text_hidden_size):
        raise ValueError(f"mm_hidden_size {hidden} does not match the Whisper encoder's d_model {d_model}")
    _set_token_ids(out, tokenizer)
    return out


def _set_token_ids(config: LlasoConfig, tokenizer: Any) -> None:
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        if config.audio_token is None:
            config.audio_token = LLAMA3_AUDIO_TOKEN if LLAMA3_AUDIO_TOKEN in vocab else "<|audio|>"
        names = [*config.llaso_tokens, config.audio_token]
        missing = [t for t in names if t not in vocab]
        if missing:
            raise ValueError(f"the checkpoint's tokenizer lacks {missing}")
        config.token_ids = {t: int(vocab[t]) for t in names}
    elif int(config._text().vocab_size) == _LLAMA3_VOCAB + 5:
        # LLaSO-Base: Llama-3 vocabulary + the 5 tokens in the original's order (`<unk>`=128256,
        # `<Audio>`, `</Audio>`, `<audio_start>`, `<audio_end>`=128260).
        config.audio_token = LLAMA3_AUDIO_TOKEN
        config.token_ids = {t: _LLAMA3_VOCAB + i for i, t in enumerate(config.llaso_tokens)}
        config.token_ids[LLAMA3_AUDIO_TOKEN] = 128002
    else:
        raise ValueError(
            "not a Llama-3 vocabulary of 128261: pass the checkpoint's tokenizer= to find the token ids"
        )
    config.audio_token_id = config.token_ids[str(config.audio_token)]


# ---- weights ------------------------------------------------------------------------------------
def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return dict(load_file(str(path)))
    return dict(torch.load(str(path), map_location="cpu", weights_only=True))


def load_original_state_dict(src: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """All weights of an original checkpoint folder (safetensors or .bin shards, `mm_audio_aligner.bin`)."""
    p = Path(src)
    if p.is_file():
        return _read_weights(p)
    files = sorted(p.glob("*.safetensors")) or sorted(p.glob("pytorch_model*.bin"))
    files += [f for f in [p / "mm_audio_aligner.bin"] if f.is_file() and f not in files]
    if not files:
        raise FileNotFoundError(f"{p}: no *.safetensors, pytorch_model*.bin or mm_audio_aligner.bin")
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        sd.update(_read_weights(f))
    return sd


def convert_original_checkpoint(
    src: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    config_json: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    audio_config: PretrainedConfig | Mapping[str, Any] | None = None,
    tokenizer: Any = None,
    base_model: LlasoForConditionalGeneration | None = None,
) -> LlasoForConditionalGeneration:
    """An original LLaSO checkpoint as a `LlasoForConditionalGeneration`.

    Args:
        src: the checkpoint folder, one weights file, or a state dict with the original names.
        config_json: the original `config.json` (path or dict); default `src/config.json`.
        audio_config: the Whisper config, when the folder named by `mm_audio_tower` is not here.
        tokenizer: the checkpoint's tokenizer, to read the token ids (not needed for a 128261 Llama-3 vocab).
        base_model: for a projector-only checkpoint (`mm_audio_aligner.bin`): the model whose projector
            is replaced (returned, changed in place).

    Full checkpoints are built without allocating random weights first (parameters on the meta device,
    then the checkpoint tensors assigned), so LLaSO-Base needs only its own memory. Unknown keys and
    missing weights are errors.
    """
    sd = dict(src) if isinstance(src, Mapping) else load_original_state_dict(src)
    mapped: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        ours = original_to_ours(k)
        if ours is not None:
            mapped[ours] = v
    if mapped and all(k.startswith("projector.") for k in mapped):
        if base_model is None:
            raise ValueError(
                "a projector-only checkpoint (mm_audio_aligner.bin) needs base_model= to load into"
            )
        base_model.projector.load_state_dict(
            {k[len("projector.") :]: v for k, v in mapped.items()}, strict=True
        )
        return base_model

    if config_json is None:
        if isinstance(src, Mapping):
            raise ValueError("pass config_json= with a state dict")
        config_json = Path(src) / "config.json" if Path(src).is_dir() else Path(src).with_name("config.json")
    original = (
        config_json if isinstance(config_json, Mapping) else json.loads(Path(config_json).read_text("utf-8"))
    )
    config = config_from_original(original, audio_config=audio_config, state_dict=sd, tokenizer=tokenizer)

    with init_empty_weights(include_buffers=False):
        model = LlasoForConditionalGeneration(config)
    expected = set(model.state_dict())
    unexpected = sorted(set(mapped) - expected)
    if unexpected:
        raise ValueError(f"unexpected keys in the original checkpoint: {unexpected[:10]}")
    model.load_state_dict(mapped, strict=False, assign=True)
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if still_meta:
        raise ValueError(f"the original checkpoint lacks {len(still_meta)} weights, e.g. {still_meta[:5]}")
    if config.freeze_encoder:
        model.audio_tower.requires_grad_(False)
    return model
