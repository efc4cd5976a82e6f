"""Training configs: typed dataclasses read from YAML, with `key=value` command-line overrides.

One `TrainConfig` holds every setting of a run, grouped in sections (`model`, `data`, `params`, `lora`,
`optim`, `loop`, `save`, `log`); every default lives here. A YAML file may start from another one with
`base: other.yaml` (a path relative to the file; the two are merged key by key). Overrides use dotted keys:
`optim.lr=1e-4 loop.max_steps=10 data.train=[a.json,b.json]`. Values are parsed as YAML and then checked
against the field's type, so a typo (`optim.lrr=1`) or a wrong type (`loop.epochs=many`) is an error that
names the key, not a silent default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from llaso.utils.config import ConfigError, from_dict, load_options, parse_override

__all__ = ["ConfigError", "TrainConfig", "dump_config", "from_dict", "load_config", "parse_override"]

STAGES = ("align", "instruct")


@dataclass
class ModelSection:
    """Where the starting model comes from (exactly one of `path`, `encoder`+`language_model`, `tiny`)."""

    path: str | None = None  # a saved llaso model folder (from_pretrained)
    encoder: str | None = None  # a local Whisper folder (stage 1 and 2 of the original: whisper-large-v3)
    language_model: str | None = None  # a local causal-LM folder (Llama-3.2-3B-Instruct)
    tokenizer: str | None = None  # default: the language model's folder
    # build_tiny_llaso(**tiny): a random tiny model for tests and smoke runs
    tiny: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)  # LlasoConfig overrides when building from parts
    # stage-1 projector: our projector.safetensors, mm_audio_aligner.bin or a folder
    projector: str | None = None
    # weights as loaded (autocast is loop.mixed_precision)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # text tokens per sample (the original's cap); longer text is truncated
    model_max_length: int | None = 2048
    # whole LLM sequence incl. audio; longer samples are skipped (None: model limit)
    max_positions: int | None = None


@dataclass
class DataSection:
    train: list[str] = field(default_factory=list)  # corpus files or folders (.json/.jsonl)
    audio_root: str | None = None  # voice paths are relative to this folder
    preflight: bool = True  # `llaso data validate` over the training files before the first step
    preflight_audio: bool = False  # also probe every audio file in the pre-flight (slow on big corpora)
    # the original's length-grouped sampler (`group_by_modality_length`): each optimizer step takes samples
    # of similar text length, in a random step order (data.epoch_order)
    group_by_length: bool = False
    # pad each batch's length up to a multiple of this (None: to its longest sample); on CPU, fewer distinct
    # shapes cost less memory and time than the extra padding (BENCHMARKS.md, Training)
    pad_to_multiple_of: int | None = None
    num_workers: int = 0  # DataLoader workers (audio decoding and features)
    feature_cache: bool = False  # cache the frozen encoder's outputs on disk (stage 1)
    cache_dir: str | None = None  # default: OUTPUT_DIR/feature-cache


@dataclass
class ParamsSection:
    """Which parameters train, by glob patterns on names (`projector.*`, `language_model.*`, `*lora_*`).

    The stage gives the default `trainable` list; `frozen` patterns win over `trainable` ones; a pattern
    that matches no parameter is an error (it is almost always a typo).
    """

    trainable: list[str] | None = None
    frozen: list[str] = field(default_factory=list)
    train_encoder: bool = False  # add `audio_tower.*` (the original could not without edits)


@dataclass
class LoraSection:
    enabled: bool = False
    r: int = 64  # the original's (unused) LoRA options: r 64, alpha 16, dropout 0.05
    alpha: int = 16
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    modules: list[str] = field(default_factory=lambda: ["language_model"])  # and/or "audio_tower"


@dataclass
class OptimSection:
    lr: float = 1e-3
    # the projector's own learning rate (None: `lr`); the original's `mm_projector_lr`, which only matched
    # the vision projector's name and so never applied to the audio one
    projector_lr: float | None = None
    weight_decay: float = 0.0  # never on biases and norms
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    scheduler: str = "cosine"  # any transformers get_scheduler name
    warmup_ratio: float = 0.0
    warmup_steps: int | None = None  # wins over warmup_ratio
    max_grad_norm: float | None = 1.0  # applied at every optimizer step (None or 0: no clipping)
    # how a batch's token losses are averaged: "token" (every answer token weighs the same, the original's
    # and transformers' rule) or "sample" (each sample's mean token loss, then the mean over samples: a
    # 3-token label answer weighs as much as a 150-token one in a multi-task batch)
    loss_average: Literal["token", "sample"] = "token"


@dataclass
class LoopSection:
    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimizer steps (the schedule still spans them)
    per_device_batch_size: int = 2
    grad_accum: int = 32
    # auto: bf16 where the device computes it natively (a GPU with bf16, a CPU with AVX512-BF16 or AMX),
    # else none; on an AVX2 CPU a bf16-autocast step takes several times an fp32 one (BENCHMARKS.md)
    mixed_precision: Literal["no", "bf16", "fp16", "auto"] = "bf16"
    gradient_checkpointing: bool = False
    # store the frozen parameters in the autocast dtype (bf16/fp16) so that no step casts them again; the
    # trainable ones stay in model.dtype and saved folders are written in it. No effect without autocast;
    # one process or DDP only (a sharding engine wants one dtype per flat parameter)
    frozen_in_autocast: bool = False
    seed: int = 42
    find_unused_parameters: bool = True  # DDP: a text-only batch leaves the projector without gradient


@dataclass
class SaveSection:
    steps: int = 100
    total_limit: int | None = 20  # keep the newest N checkpoints
    final: bool = True  # OUTPUT_DIR/final/ at the end


@dataclass
class LogSection:
    steps: int = 1
    tensorboard: bool | None = None  # None: when tensorboard is installed
    progress: bool = True


@dataclass
class TrainConfig:
    stage: Literal["align", "instruct"] = "align"
    output_dir: str = "runs/train"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    params: ParamsSection = field(default_factory=ParamsSection)
    lora: LoraSection = field(default_factory=LoraSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loop: LoopSection = field(default_factory=LoopSection)
    save: SaveSection = field(default_factory=SaveSection)
    log: LogSection = field(default_factory=LogSection)

    def trainable_patterns(self) -> list[str]:
        """The `trainable` patterns in force: the explicit list, or the stage's default."""
        if self.params.trainable is not None:
            pats = list(self.params.trainable)
        elif self.stage == "align":
            pats = ["projector.*"]
        elif self.lora.enabled:
            pats = ["projector.*", "*lora_*"]
        else:
            pats = ["projector.*", "language_model.*"]
        if self.params.train_encoder and not self.lora.enabled:
            pats.append("audio_tower.*")
        return pats

    def validate(self) -> None:
        m = self.model
        sources = [
            m.path is not None,
            m.encoder is not None or m.language_model is not None,
            m.tiny is not None,
        ]
        if sum(sources) != 1:
            raise ConfigError(
                "model: give exactly one of model.path, model.encoder+model.language_model, model.tiny"
            )
        if (m.encoder is None) != (m.language_model is None):
            raise ConfigError("model: model.encoder and model.language_model go together")
        if not self.data.train:
            raise ConfigError("data.train: no training files (set data.train=[FILE,...])")
        for name, value in (
            ("loop.per_device_batch_size", self.loop.per_device_batch_size),
            ("loop.grad_accum", self.loop.grad_accum),
            ("loop.epochs", self.loop.epochs),
            ("save.steps", self.save.steps),
            ("log.steps", self.log.steps),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.data.pad_to_multiple_of is not None and self.data.pad_to_multiple_of < 1:
            raise ConfigError(
                f"data.pad_to_multiple_of must be >= 1 or null, got {self.data.pad_to_multiple_of}"
            )
        if self.optim.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.optim.lr}")
        if not 0 <= self.optim.warmup_ratio < 1:
            raise ConfigError(f"optim.warmup_ratio must be in [0, 1), got {self.optim.warmup_ratio}")
        if self.lora.enabled:
            bad = [x for x in self.lora.modules if x not in ("language_model", "audio_tower")]
            if bad or not self.lora.modules:
                raise ConfigError(
                    f"lora.modules: expected language_model and/or audio_tower, got {self.lora.modules}"
                )
        if self.data.feature_cache and (self.params.train_encoder or "audio_tower" in self._lora_modules()):
            raise ConfigError(
                "data.feature_cache needs a frozen encoder (params.train_encoder / LoRA on it is on)"
            )

    def _lora_modules(self) -> list[str]:
        return self.lora.modules if self.lora.enabled else []

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- loading ------------------------------------------------------------------------------------------
# `tiny` and `config` are free-form mappings handed to a constructor: a file's value replaces its base's whole
_ATOMIC = frozenset({"tiny", "config"})


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A validated `TrainConfig` from a YAML file (with its `base:` chain) and `key=value` overrides."""
    cfg = load_options(TrainConfig, path, overrides, atomic_keys=_ATOMIC, what="a training config")
    cfg.validate()
    return cfg


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
