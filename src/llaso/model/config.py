"""`LlasoConfig`: the whole speech-language model (Whisper encoder + projector + causal LM) as one config.

The config holds two sub-configs, `audio_config` (a `WhisperConfig`; only its encoder is used) and
`text_config` (any causal-LM config transformers knows, with its `model_type`), plus everything that
decides how audio becomes LLM positions:

* `projector_type`: `"linear"` (one Linear) or `"mlp{N}x_gelu"` (N Linears with GELU between), as the
  original release; `stack_factor` k > 1 first concatenates k consecutive encoder frames (Ultravox /
  SLAM-LLM style), so the projector input is k × d_model and there are k times fewer audio positions.
* `audio_token_mode`: `"llaso-base"` keeps every encoder frame of every window (1500 per 30 s window,
  padding included, exactly as the original); `"lean"` keeps only the frames that cover real audio.
* `max_audio_windows` (20, as the original): audio longer than one window is cut into windows; the window
  length comes from the encoder (`max_source_positions` × 2 mel frames × 10 ms = 30 s for Whisper).

The token strings and ids (the 4 LLaSO tags, the pad token, the audio placeholder), the system prompt and
the prompt format are stored here too, so a saved folder is self-describing. `load_model_config(path)`
reads a YAML/JSON file of plain values (`configs/model/llaso-base.yaml`) without touching the Hub.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

# The original's system prompt, verbatim, including its missing space before "The audio".
LLASO_SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant is able to "
    "understand the audio content that the user provides, and assist the user with a variety of tasks using "
    "natural language.The audio content will be provided with the following format: <Audio>audio content</Audio>."
)

AUDIO_TOKEN_MODES = ("llaso-base", "lean")
PROMPT_FORMATS = ("llama3", "chat_template")
# The placeholder the processor repeats once per audio position. Llama-3 tokenizers already have this
# reserved token, so LLaSO-Base keeps the original vocabulary of 128256 + 5 = 128261.
LLAMA3_AUDIO_TOKEN = "<|reserved_special_token_0|>"
DEFAULT_AUDIO_TOKEN = "<|audio|>"  # added when the tokenizer has no reserved token to reuse
_PROJECTOR_RE = re.compile(r"^(linear|mlp(\d+)x_gelu)$")

MEL_HOP_LENGTH = 160  # Whisper: 10 ms mel hop at 16 kHz
SAMPLE_RATE = 16000


def parse_projector_type(projector_type: str) -> int:
    """The number of Linear layers of a projector type: 1 for `linear`, N for `mlp{N}x_gelu`."""
    m = _PROJECTOR_RE.match(projector_type)
    if not m:
        raise ValueError(f"unknown projector_type {projector_type!r}; expected 'linear' or 'mlp{{N}}x_gelu'")
    depth = 1 if m.group(1) == "linear" else int(m.group(2))
    if depth < 1:
        raise ValueError(f"projector_type {projector_type!r} needs at least one layer")
    return depth


def encoder_frames_for_mel_frames(mel_frames: int) -> int:
    """Encoder output frames covering `mel_frames` real mel frames (Whisper's conv2 has stride 2)."""
    return (mel_frames + 1) // 2


def audio_positions(mel_frames: int, *, window_frames: int, mode: str, stack_factor: int = 1) -> int:
    """LLM positions one audio window yields. `mel_frames` is its real (unpadded) mel length.

    `llaso-base`: every encoder frame of the window (`window_frames / 2`, 1500 for 30 s), padding included;
    `lean`: only the encoder frames that cover real audio. Then ceil(/ stack_factor).
    The processor and the model both call this, so their counts cannot drift apart.
    """
    if mode == "llaso-base":
        enc = encoder_frames_for_mel_frames(window_frames)
    elif mode == "lean":
        enc = encoder_frames_for_mel_frames(min(max(mel_frames, 1), window_frames))
    else:
        raise ValueError(f"unknown audio_token_mode {mode!r}; expected one of {AUDIO_TOKEN_MODES}")
    return math.ceil(enc / stack_factor)


class LlasoConfig(PretrainedConfig):
    r"""Configuration of `LlasoForConditionalGeneration`.

    Args:
        audio_config: a `WhisperConfig` or its dict (only the encoder part is used).
        text_config: any causal-LM config or its dict with a `model_type` (Llama, Qwen2, SmolLM2 ...).
        projector_type: `"linear"` or `"mlp{N}x_gelu"` (`"mlp2x_gelu"` for LLaSO-Base).
        stack_factor: frames concatenated before the projector (1 = none, as the original; 4 = Ultravox-like).
        audio_token_mode: `"llaso-base"` (1500 positions per 30 s window incl. padding) or `"lean"`
            (trimmed to the real audio with the feature attention mask).
        freeze_encoder: the Whisper encoder gets no gradients and runs under `torch.no_grad`.
        audio_select_layer: which encoder hidden state feeds the projector (-1 = the final, normed one).
        max_audio_windows: audio windows kept per audio file (20 as the original; more are dropped with a
            warning).
        audio_token / audio_token_id: the placeholder repeated once per audio position (filled by the
            processor; the model scatters projected features into exactly these positions).
        pad_token, audio_tag_open, audio_tag_close, audio_start_token, audio_end_token: the 5 tokens LLaSO
            adds, in that order (pad/unk, then the two tags and the two audio markers); `token_ids` maps each string to its id once known.
        use_audio_start_end: wrap audio as `<Audio><audio_start>…<audio_end></Audio>` (mm_use_audio_start_end).
        system_prompt: the LLaSO system prompt (None or "" for none).
        prompt_format: `"llama3"` (the original `llama32_audio_v1_mmtag` rendering, byte for byte) or
            `"chat_template"` (the tokenizer's own Jinja template, e.g. SmolLM2's ChatML).
        eot_token: the end-of-turn token that ends an answer (`<|eot_id|>`; None = the tokenizer's eos).
        model_max_length: the longest LLM sequence the processor lets through (None = the text model's
            `max_position_embeddings`).
    """

    model_type: ClassVar[str] = "llaso"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "audio_config": SubConfigSpec(config_class=AutoConfig, model_type="whisper"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    audio_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    projector_type: str = "mlp2x_gelu"
    stack_factor: int = 1
    audio_token_mode: str = "llaso-base"
    freeze_encoder: bool = True
    audio_select_layer: int = -1
    max_audio_windows: int = 20
    audio_token: str | None = None
    audio_token_id: int | None = None
    pad_token: str = "<unk>"
    audio_tag_open: str = "<Audio>"
    audio_tag_close: str = "</Audio>"
    audio_start_token: str = "<audio_start>"
    audio_end_token: str = "<audio_end>"
    use_audio_start_end: bool = True
    token_ids: dict[str, int] | None = None
    system_prompt: str | None = LLASO_SYSTEM_PROMPT
    prompt_format: str = "llama3"
    eot_token: str | None = "<|eot_id|>"
    model_max_length: int | None = None
    ignore_index: int = -100

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        parse_projector_type(self.projector_type)
        if self.audio_token_mode not in AUDIO_TOKEN_MODES:
            raise ValueError(
                f"audio_token_mode must be one of {AUDIO_TOKEN_MODES}, got {self.audio_token_mode!r}"
            )
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        if int(self.stack_factor) < 1:
            raise ValueError(f"stack_factor must be >= 1, got {self.stack_factor}")
        if int(self.max_audio_windows) < 1:
            raise ValueError(f"max_audio_windows must be >= 1, got {self.max_audio_windows}")

    # ---- derived values -----------------------------------------------------------------------
    @property
    def llaso_tokens(self) -> list[str]:
        """The 5 tokens LLaSO adds, in the original order (pad/unk first, as the released checkpoints number them)."""
        return [
            self.pad_token,
            self.audio_tag_open,
            self.audio_tag_close,
            self.audio_start_token,
            self.audio_end_token,
        ]

    @property
    def window_mel_frames(self) -> int:
        """Mel frames of one encoder window: 3000 (30 s) for Whisper's `max_source_positions=1500`."""
        return int(self._audio().max_source_positions) * 2

    @property
    def window_samples(self) -> int:
        return self.window_mel_frames * MEL_HOP_LENGTH

    @property
    def audio_window_seconds(self) -> float:
        return self.window_samples / SAMPLE_RATE

    @property
    def projector_input_size(self) -> int:
        return int(self._audio().d_model) * int(self.stack_factor)

    @property
    def text_hidden_size(self) -> int:
        return int(self._text().hidden_size)

    def _audio(self) -> PretrainedConfig:
        assert isinstance(self.audio_config, PretrainedConfig)
        return self.audio_config

    def _text(self) -> PretrainedConfig:
        assert isinstance(self.text_config, PretrainedConfig)
        return self.text_config

    def max_sequence_length(self) -> int | None:
        if self.model_max_length:
            return int(self.model_max_length)
        n = getattr(self._text(), "max_position_embeddings", None)
        return int(n) if n else None

    def positions_per_window(self, mel_frames: int) -> int:
        return audio_positions(
            mel_frames,
            window_frames=self.window_mel_frames,
            mode=self.audio_token_mode,
            stack_factor=self.stack_factor,
        )


def load_model_config(path: str | os.PathLike[str], **overrides: Any) -> LlasoConfig:
    """A `LlasoConfig` from a YAML or JSON file of plain values (no Hub access), e.g. `llaso-base.yaml`.

    Keyword overrides replace top-level keys (`audio_token_mode="lean"`, `stack_factor=4`, ...).
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if p.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a model config must be a mapping, got {type(data).__name__}")
    data.pop("model_type", None)
    data.pop("description", None)
    data.update(overrides)
    return LlasoConfig(**data)


def _register() -> None:
    with contextlib.suppress(ValueError):  # already registered
        AutoConfig.register("llaso", LlasoConfig)


_register()
