"""`llaso train --estimate-memory`: what one training step needs per device, from the model's shapes alone.

The model of a run is built on the meta device (shapes, dtypes and `requires_grad`, no weights, no download):
`build_meta_model` resolves the model as the run would (`--shape FILE`, else `model.tiny`, `model.path` or
the `model.encoder` + `model.language_model` folders' config.json) and applies the run's LoRA and trainable
patterns with the trainer's own `_prepare_parameters`. `profile_model` reads what the estimate needs from that
model into a `ModelProfile`; `estimate(profile, workload, parallel)` is then plain arithmetic (microseconds),
so `largest_batch` can search batch sizes freely.

The analytic model, per device (bytes; h hidden size, I intermediate size, V vocabulary, ab the compute element
size: 2 under bf16/fp16 autocast, else the parameter's; rb the residual stream's element size):

* **static**: parameters (each in its own dtype; peft keeps LoRA adapters in fp32), gradients (trained
  parameters, in their dtype), AdamW state. torch's AdamW keeps `exp_avg` and `exp_avg_sq` as `zeros_like(p)`:
  in the parameter's dtype (bf16 moments for bf16 weights, not fp32), plus a 4-byte `step` per tensor that
  it keeps on the host (not counted on the GPU). Under DDP (several processes, no sharding) the reducer keeps
  one more copy of the gradients in its buckets. Sharding: `fsdp` (FSDP2 as accelerate prepares it: with
  mixed precision it upcasts the trained parameters to fp32, so fp32 master weights, gradients and moments, all
  1/N, frozen ones 1/N in their dtype, plus the gathered working set: the root and embedding units and two
  layers in the compute dtype, and one layer's unsharded gradients); `zero2` (DeepSpeed: 16-bit parameters
  whole, 16-bit gradients 1/N plus one reduce bucket of min(5e8, trained) elements, fp32 master + moments
  1/N); `zero3` (as zero2 with the parameters 1/N plus the gathered working set). The optimizer step adds a
  transient copy: foreach AdamW's `sqrt(v)` over all local trained parameters (and DeepSpeed's fp32 gradient
  partition).
* **activations**, saved for backward, per token of the LLM sequence (text tokens + audio positions: 1500 per
  30 s window in `llaso-base` mode, padding included; only the real frames in `lean`; / stack_factor): per
  decoder layer the RMSNorm's fp32 input (4h) and normalized output (rb·h, when its weight trains) twice, the
  inputs of trained Linears (ab·h before q/k/v and before gate/up, ab·I before down), SDPA's q, k, v, output
  and log-sum-exp (a memory-efficient kernel: no S×S scores; once a padding mask is passed, i.e. batch > 1,
  k/v repeated to all heads and the mask as an additive [batch, S, S] bias in ab, one per layer), the gated
  MLP's gate, up and SiLU outputs (3·ab·I), and each LoRA adapter's
  dropout mask, input and rank-r intermediate. With gradient checkpointing a layer keeps only its input
  (rb·h), and the backward recomputes one layer at a time. The projector keeps its inputs over every encoder
  frame of every window (it runs before the lean trim). The loss: `labelled_loss` applies the LM head to the
  labelled positions only, so the logits are [labelled tokens, V] (fp32 log-softmax kept: 4V each; a model
  without the fast loss builds [batch × sequence, V]). The frozen encoder runs under no_grad before the LLM:
  only its peak working set counts (about (4·d_model + 2·ffn) per frame of every window at once), and not
  at the same time as the LLM's activations. Backward workspace: the gradients through one layer
  (ab·(I + 2h) + 4h per token) or the loss's (8 bytes per logit), whichever is larger, plus the largest
  trained weight's fresh gradient (the LM head's). With a tied, trained embedding the LM head's gradient
  waits through the backward for the embedding's, and the two are summed out of place: 3 × (V, h) at the
  end of backward.
* **peak** = static + max(encoder phase, forward/backward phase, end of backward with a tied embedding,
  optimizer-step phase).

Checked on CPU against real steps of small models (tests/test_train_memory.py): the static part to the byte;
the peak activation bytes within 20 % (fp32 and bf16, with and without checkpointing, LoRA, padded batches, a
large vocabulary). Not yet checked on a GPU, where the kernels (flash / memory-efficient SDPA) differ. Left out: the CUDA context and kernels (about 0.5-1 GiB, not torch allocations),
cuBLAS/cuDNN workspaces, allocator fragmentation and caching (reserved exceeds allocated, often by 5-15%),
NCCL buffers, the eager attention path (S×S scores), DataLoader pinned host memory, and the feature cache
(stage 1 then skips the encoder for cached samples).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llaso.train.config import ConfigError, TrainConfig, load_config

GIB = 1 << 30
SHARDS = ("none", "zero2", "zero3", "fsdp")
TOKEN_MODES = ("llaso-base", "lean")
DS_REDUCE_BUCKET = 500_000_000  # DeepSpeed's default reduce_bucket_size, in elements
# The LLaSO tokens build_llaso adds to a Llama-3 vocabulary (pad + 4 tags; the audio placeholder reuses a
# reserved token): what a language-model folder's config.json does not know yet.
ADDED_TOKENS = 5
MEL_PER_SECOND = 100  # Whisper: 10 ms hop

LEFT_OUT = (
    "the CUDA context and kernel images (about 0.5-1 GiB per GPU, outside torch's allocator)",
    "cuBLAS/cuDNN workspaces and allocator fragmentation/caching (reserved exceeds allocated, often by 5-15%)",
    "NCCL communication buffers",
    "eager attention (the estimate assumes SDPA/flash kernels: no S x S scores kept)",
    "DataLoader pinned host memory and the feature cache (stage 1 skips the encoder for cached samples)",
)


class ShapeError(ValueError):
    """A model shape file (--shape) that cannot be read; the message names the file."""


# ---- inputs ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """One micro-batch per device: `batch` samples of `seconds` of audio and `text_tokens` text tokens, of
    which `answer_tokens` are labelled (None: all of them, an upper bound)."""

    batch: int = 1
    seconds: float = 30.0
    text_tokens: int = 256
    answer_tokens: int | None = None
    audio_token_mode: str | None = None  # None: the model's

    def __post_init__(self) -> None:
        if self.batch < 1 or self.text_tokens < 1 or self.seconds < 0:
            raise ValueError("batch and text tokens must be >= 1 and seconds >= 0")
        if self.answer_tokens is not None and not 0 <= self.answer_tokens <= self.text_tokens:
            raise ValueError("answer tokens must be between 0 and the text tokens")
        if self.audio_token_mode is not None and self.audio_token_mode not in TOKEN_MODES:
            raise ValueError(f"audio token mode must be one of {TOKEN_MODES}, got {self.audio_token_mode!r}")


@dataclass(frozen=True)
class Parallel:
    """`world_size` processes; `shard` says how they split parameters, gradients and optimizer state."""

    world_size: int = 1
    shard: str = "none"

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ValueError(f"world size must be >= 1, got {self.world_size}")
        if self.shard not in SHARDS:
            raise ValueError(f"shard must be one of {SHARDS}, got {self.shard!r}")


# ---- what the estimate reads from the model ------------------------------------------------------------------
@dataclass(frozen=True)
class PartParams:
    trainable: int = 0
    frozen: int = 0
    trainable_bytes: int = 0
    frozen_bytes: int = 0


@dataclass(frozen=True)
class LoraLinear:
    in_features: int
    r: int
    dropout: float


@dataclass(frozen=True)
class DecoderLayer:
    """Which parts of one decoder layer train (all layers of a run are alike)."""

    norms_train: bool
    qkv_train: bool  # any base weight of q/k/v
    gate_up_train: bool
    down_train: bool
    lora: tuple[LoraLinear, ...] = ()


@dataclass(frozen=True)
class ModelProfile:
    source: str
    dtype: str
    param_bytes: int  # element size of the run's dtype
    mixed_precision: str
    gradient_checkpointing: bool
    fast_loss: bool
    parts: dict[str, PartParams]
    bytes_by_dtype: dict[str, int]
    trainable_tensors: int
    # language model
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    layer: DecoderLayer
    final_norm_trains: bool
    head_trains: bool
    tied_embedding_bytes: int  # the (V, h) matrix that is both the embedding and the LM head, when it trains
    # bytes of the largest trained parameter (its fresh gradient exists before it is accumulated)
    largest_trained_tensor: int
    # audio
    encoder_trains: bool
    projector_trains: bool
    d_model: int
    encoder_ffn: int
    encoder_layers: int
    mel_bins: int
    window_mel_frames: int
    max_windows: int
    stack_factor: int
    projector_depth: int
    audio_token_mode: str
    select_layer: int
    # shard units (parameters)
    largest_layer: int
    largest_trainable_layer: int
    embedding: int
    rest: int
    model_max_length: int | None = None
    max_positions: int | None = None

    @property
    def total_params(self) -> int:
        return sum(p.trainable + p.frozen for p in self.parts.values())

    @property
    def trainable_params(self) -> int:
        return sum(p.trainable for p in self.parts.values())

    @property
    def trainable_bytes(self) -> int:
        return sum(p.trainable_bytes for p in self.parts.values())

    @property
    def frozen_bytes(self) -> int:
        return sum(p.frozen_bytes for p in self.parts.values())


# ---- the result -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One component of the estimate: a stable key (for --json and tests), a label, its bytes."""

    key: str
    label: str
    bytes: int


@dataclass(frozen=True)
class SampleShape:
    """What one sample is to the language model."""

    windows: int  # audio windows per sample
    audio_positions: int  # per sample
    text_tokens: int
    labelled: int  # per sample
    length: int  # LLM positions per sample


@dataclass
class MemoryEstimate:
    workload: Workload
    parallel: Parallel
    sequence: SampleShape
    audio_token_mode: str
    static: list[Line]
    activations: list[Line]
    phases: dict[str, int]  # transient peak of each phase, on top of the static part
    peak_phase: str
    total: int
    notes: list[str] = field(default_factory=list)

    @property
    def static_bytes(self) -> int:
        return sum(x.bytes for x in self.static)

    @property
    def peak_activations(self) -> int:
        return self.phases[self.peak_phase]

    def line(self, key: str) -> int:
        """The bytes of the component called `key` (0 when the run has none)."""
        return sum(x.bytes for x in [*self.static, *self.activations] if x.key == key)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["static_bytes"] = self.static_bytes
        out["peak_activations"] = self.peak_activations
        return out


# ---- building the model on the meta device -------------------------------------------------------------------
def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """`load_config`, except that the model may be left for --shape to give: instruct.yaml ships with
    model.encoder and model.language_model unset. Every other setting is still validated."""
    try:
        return load_config(path, overrides)
    except ConfigError as e:
        if not str(e).startswith("model:"):
            raise
        original = e
    try:  # validate the rest with a stand-in model source, then take the stand-in away again
        cfg = load_config(path, [*overrides, "model.tiny={}"])
    except ConfigError as e:
        # a model error now is the config's own (say, an encoder without a language model); any other
        # is about the rest of the config, which the model error had hidden
        raise (original if str(e).startswith("model:") else e) from None
    cfg.model.tiny = None
    return cfg


def load_shape(path: str | Path, **overrides: Any) -> Any:
    """The `LlasoConfig` of a model shape file (configs/model/*.yaml or a config.json), or a ShapeError that
    names the file."""
    from llaso.model import load_model_config

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if p.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise ShapeError(f"--shape {p}: cannot read it as a model config ({e})") from None
    missing = [k for k in ("audio_config", "text_config") if not isinstance(data, dict) or k not in data]
    if missing:
        raise ShapeError(
            f"--shape {p}: not a LLaSO model config (no {' or '.join(missing)}; see configs/model/llaso-base.yaml)"
        )
    try:
        return load_model_config(p, **overrides)
    except (TypeError, ValueError, KeyError) as e:
        raise ShapeError(f"--shape {p}: {e}") from None


def _config_from_folders(cfg: TrainConfig) -> tuple[Any, str] | None:
    """The LlasoConfig a run builds from its model folders, read from their config.json (no weights)."""
    from transformers import AutoConfig

    from llaso.model import LlasoConfig

    m = cfg.model
    if m.path is not None and (Path(m.path) / "config.json").is_file():
        return LlasoConfig.from_pretrained(m.path), f"model.path {m.path}"
    if m.encoder is None or m.language_model is None:
        return None
    if not (
        (Path(m.encoder) / "config.json").is_file() and (Path(m.language_model) / "config.json").is_file()
    ):
        return None
    enc = AutoConfig.from_pretrained(m.encoder)
    lm = AutoConfig.from_pretrained(m.language_model)
    lm.vocab_size = int(lm.vocab_size) + ADDED_TOKENS
    source = f"config.json of {m.encoder} and {m.language_model} (+{ADDED_TOKENS} LLaSO tokens)"
    return LlasoConfig(audio_config=enc, text_config=lm, **m.config), source


@contextlib.contextmanager
def _quiet_trainer_log() -> Iterator[None]:
    """The trainer's set-up line ("stage instruct: N of M parameters train") is for real runs."""
    lg = logging.getLogger("llaso.train.trainer")
    old = lg.level
    lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        lg.setLevel(old)


def _no_model_error(cfg: TrainConfig, origin: str) -> ShapeError:
    m = cfg.model
    named = {k: v for k, v in (("model.path", m.path), ("model.encoder", m.encoder)) if v is not None}
    if m.language_model is not None:
        named["model.language_model"] = m.language_model
    where = (
        "names no model folder"
        if not named
        else "names model folders that are not here (" + ", ".join(f"{k}={v}" for k, v in named.items()) + ")"
    )
    return ShapeError(f"{origin} {where}: give the model's shape with --shape configs/model/llaso-base.yaml")


def gpu_autocast(cfg: TrainConfig) -> str:
    """`loop.mixed_precision` on the GPU the estimate is for, where `auto` is bf16 (llaso.utils.precision:
    native there)."""
    return "bf16" if cfg.loop.mixed_precision == "auto" else cfg.loop.mixed_precision


def build_meta_model(
    cfg: TrainConfig, shape: str | Path | None = None, origin: str = "the training config"
) -> tuple[Any, str]:
    """The run's model on the meta device, LoRA and `requires_grad` applied as the trainer does; and where
    its shape came from. An explicit `shape` wins over the config's model source; `origin` names the
    config in errors."""
    import torch

    from llaso.model import LlasoForConditionalGeneration, build_tiny_llaso
    from llaso.train.trainer import AUTOCAST_DTYPES, _prepare_parameters, store_frozen

    m = cfg.model
    dtype = getattr(torch, m.dtype)
    with torch.device("meta"):
        if shape is not None:
            model = LlasoForConditionalGeneration(load_shape(shape, **m.config))
            source = str(shape)
        elif m.tiny is not None:
            model, _ = build_tiny_llaso(**{**m.tiny, **m.config})
            source = "model.tiny"
        else:
            found = _config_from_folders(cfg)
            if found is None:
                raise _no_model_error(cfg, origin)
            model = LlasoForConditionalGeneration(found[0])
            source = found[1]
        model.to(dtype)
        with _quiet_trainer_log():
            _prepare_parameters(model, cfg)
        autocast = gpu_autocast(cfg)
        if cfg.loop.frozen_in_autocast and autocast in AUTOCAST_DTYPES:
            store_frozen(model, AUTOCAST_DTYPES[autocast])
    return model, source


# ---- reading the profile -------------------------------------------------------------------------------------
def _part_params(model: Any) -> tuple[dict[str, PartParams], dict[str, int], int]:
    """Parameters per part (tied weights once), bytes per dtype, and the number of trained tensors."""
    acc: dict[str, list[int]] = {}
    by_dtype: dict[str, int] = {}
    tensors = 0
    for name, p in model.named_parameters():
        part = name.split(".", 1)[0]
        a = acc.setdefault(part, [0, 0, 0, 0])
        nbytes = p.numel() * p.element_size()
        k = 0 if p.requires_grad else 1
        a[k] += p.numel()
        a[k + 2] += nbytes
        dtype = str(p.dtype).removeprefix("torch.")
        by_dtype[dtype] = by_dtype.get(dtype, 0) + nbytes
        tensors += int(p.requires_grad)
    parts = {k: PartParams(v[0], v[1], v[2], v[3]) for k, v in acc.items()}
    return parts, by_dtype, tensors


def _linear_info(layer: Any, path: str) -> tuple[bool, LoraLinear | None]:
    """Whether the base weight of the Linear at `path` trains, and its LoRA adapter if it has one."""
    try:
        mod = layer.get_submodule(path)
    except AttributeError:
        return any(p.requires_grad for p in layer.parameters()), None
    base = getattr(mod, "base_layer", mod)
    trains = bool(base.weight.requires_grad)
    lora_a = getattr(mod, "lora_A", None)
    if not lora_a:
        return trains, None
    name = next(iter(lora_a))
    drop = mod.lora_dropout[name]
    p = float(getattr(drop, "p", 0.0))
    return trains, LoraLinear(int(base.in_features), int(mod.r[name]), p)


def _decoder_layer(layer: Any) -> DecoderLayer:
    flags: dict[str, bool] = {}
    loras: list[LoraLinear] = []
    for path in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    ):
        trains, lora = _linear_info(layer, path)
        flags[path.rsplit(".", 1)[1]] = trains
        if lora is not None:
            loras.append(lora)
    norms = any(p.requires_grad for n, p in layer.named_parameters() if "norm" in n)
    return DecoderLayer(
        norms_train=norms,
        qkv_train=flags["q_proj"] or flags["k_proj"] or flags["v_proj"],
        gate_up_train=flags["gate_proj"] or flags["up_proj"],
        down_train=flags["down_proj"],
        lora=tuple(loras),
    )


def _units(model: Any) -> dict[str, int]:
    """Parameter counts of the shard units: the largest layer (decoder or encoder), the largest trained
    one, the (tied) embedding, and the rest (the root unit)."""
    layers = [*model.language_model.get_decoder().layers, *model.audio_tower.layers]
    sizes = [sum(p.numel() for p in layer.parameters()) for layer in layers]
    trained = [sum(p.numel() for p in layer.parameters() if p.requires_grad) for layer in layers]
    emb = int(model.get_input_embeddings().weight.numel())
    total = sum(p.numel() for p in model.parameters())
    return {
        "largest_layer": max(sizes),
        "largest_trainable_layer": max(trained),
        "embedding": emb,
        "rest": total - sum(sizes) - emb,
    }


def _text_dims(tc: Any) -> dict[str, int]:
    heads = int(tc.num_attention_heads)
    return {
        "layers": int(tc.num_hidden_layers),
        "hidden": int(tc.hidden_size),
        "intermediate": int(tc.intermediate_size),
        "heads": heads,
        "kv_heads": int(getattr(tc, "num_key_value_heads", None) or heads),
        "head_dim": int(getattr(tc, "head_dim", None) or int(tc.hidden_size) // heads),
    }


def profile_model(model: Any, cfg: TrainConfig, source: str = "") -> ModelProfile:
    """What the estimate needs from a (meta) model prepared for the run `cfg`."""
    import torch

    from llaso.model.config import parse_projector_type
    from llaso.train.trainer import has_fast_loss

    c = model.config
    ac = c.audio_config
    parts, by_dtype, tensors = _part_params(model)
    dec = model.language_model.get_decoder()
    head = model.get_output_embeddings()
    return ModelProfile(
        source=source,
        dtype=cfg.model.dtype,
        param_bytes=torch.empty((), dtype=getattr(torch, cfg.model.dtype)).element_size(),
        mixed_precision=gpu_autocast(cfg),
        gradient_checkpointing=cfg.loop.gradient_checkpointing,
        fast_loss=has_fast_loss(model),
        parts=parts,
        bytes_by_dtype=by_dtype,
        trainable_tensors=tensors,
        **_text_dims(c.text_config),
        vocab=int(head.weight.shape[0]),
        layer=_decoder_layer(dec.layers[0]),
        final_norm_trains=any(p.requires_grad for p in getattr(dec, "norm", torch.nn.Module()).parameters()),
        head_trains=bool(head.weight.requires_grad),
        tied_embedding_bytes=head.weight.numel() * head.weight.element_size()
        if head.weight.requires_grad and head.weight is model.get_input_embeddings().weight
        else 0,
        largest_trained_tensor=max(
            (p.numel() * p.element_size() for p in model.parameters() if p.requires_grad), default=0
        ),
        encoder_trains=any(p.requires_grad for p in model.audio_tower.parameters()),
        projector_trains=any(p.requires_grad for p in model.projector.parameters()),
        d_model=int(ac.d_model),
        encoder_ffn=int(ac.encoder_ffn_dim),
        encoder_layers=int(ac.encoder_layers),
        mel_bins=int(ac.num_mel_bins),
        window_mel_frames=int(c.window_mel_frames),
        max_windows=int(c.max_audio_windows),
        stack_factor=int(c.stack_factor),
        projector_depth=parse_projector_type(c.projector_type),
        audio_token_mode=str(c.audio_token_mode),
        select_layer=int(c.audio_select_layer),
        **_units(model),
        model_max_length=cfg.model.model_max_length,
        max_positions=cfg.model.max_positions,
    )


def profile_run(
    cfg: TrainConfig, shape: str | Path | None = None, origin: str = "the training config"
) -> ModelProfile:
    """`build_meta_model` + `profile_model`: the one call the command makes (a few seconds for 3.8B)."""
    model, source = build_meta_model(cfg, shape, origin)
    return profile_model(model, cfg, source)


# ---- the arithmetic ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sizes:
    """Element sizes of one estimate: parameters (pb), compute (ab), residual stream (rb)."""

    pb: int
    ab: int
    rb: int
    autocast: bool


def _sizes(p: ModelProfile, par: Parallel) -> _Sizes:
    autocast = p.mixed_precision != "no"
    ab = 2 if autocast else p.param_bytes
    # DeepSpeed and FSDP's mixed-precision policy compute with 16-bit copies of the weights
    rb = ab if par.shard != "none" else p.param_bytes
    return _Sizes(p.param_bytes, ab, rb, autocast)


def sequence(p: ModelProfile, w: Workload) -> tuple[SampleShape, str]:
    """LLM positions of one sample, with the model's own `audio_positions` rule; and the token mode."""
    from llaso.model.config import audio_positions

    mode = w.audio_token_mode or p.audio_token_mode
    mel_total = round(w.seconds * MEL_PER_SECOND)
    windows = min(math.ceil(mel_total / p.window_mel_frames), p.max_windows) if mel_total else 0
    positions = 0
    for i in range(windows):
        mel = min(p.window_mel_frames, mel_total - i * p.window_mel_frames)
        positions += audio_positions(
            mel, window_frames=p.window_mel_frames, mode=mode, stack_factor=p.stack_factor
        )
    text = min(w.text_tokens, p.model_max_length) if p.model_max_length else w.text_tokens
    labelled = min(text, w.answer_tokens if w.answer_tokens is not None else text)
    return SampleShape(windows, positions, text, labelled, text + positions), mode


def _layer_saved(p: ModelProfile, s: _Sizes, batch: int, length: int) -> int:
    """Bytes one decoder layer saves for backward over the micro-batch, without checkpointing."""
    h, inter, lay = p.hidden, p.intermediate, p.layer
    q_dim = p.heads * p.head_dim
    padded = batch > 1  # right-padded batches pass a mask, and attention changes with it
    kv_dim = q_dim if padded else p.kv_heads * p.head_dim  # transformers repeats k/v for a masked SDPA

    def norm(group_trains: bool) -> int:
        return 4 * h + (s.rb * h if lay.norms_train else 0) + (s.ab * h if group_trains else 0)

    attention = s.ab * (2 * q_dim + 2 * kv_dim) + 4 * p.heads
    mlp = 3 * s.ab * inter + (s.ab * inter if lay.down_train else 0)
    lora = sum((1 if x.dropout > 0 else 0) * x.in_features + s.ab * (x.in_features + x.r) for x in lay.lora)
    per_token = norm(lay.qkv_train) + attention + norm(lay.gate_up_train) + mlp + lora
    # SDPA turns the boolean mask into an additive one in the query's dtype at every call, and keeps it
    bias = batch * length * length * s.ab if padded else 0
    return batch * length * per_token + bias


def _encoder(p: ModelProfile, s: _Sizes, windows: int) -> tuple[int, int, int]:
    """(frozen working set, saved for backward, one layer's recompute) of the encoder for `windows`."""
    frames = p.window_mel_frames // 2
    mel = p.mel_bins * p.window_mel_frames
    d, ffn = p.d_model, p.encoder_ffn
    ab = s.ab
    if not p.encoder_trains:
        working = frames * (4 * d + 2 * ffn) * ab + (mel * ab if ab != 4 else 0)
        if p.select_layer != -1:  # output_hidden_states keeps every layer's output
            working += (p.encoder_layers + 1) * frames * d * ab
        return windows * working, 0, 0
    layer = frames * (9 * d + 2 * ffn) * ab
    conv = (mel + 2 * d * p.window_mel_frames + 2 * d * frames) * ab
    if p.gradient_checkpointing:
        return 0, windows * (conv + p.encoder_layers * frames * d * s.rb), windows * layer
    return 0, windows * (conv + p.encoder_layers * layer), 0


def _activation_lines(p: ModelProfile, s: _Sizes, w: Workload, seq: SampleShape) -> tuple[list[Line], int]:
    """The components saved for backward (and the frozen encoder's working set), and the backward
    workspace on top of them."""
    b, h = w.batch, p.hidden
    tokens = b * seq.length
    win = b * seq.windows
    enc_working, enc_saved, enc_recompute = _encoder(p, s, win)
    frames = math.ceil(p.window_mel_frames // 2 / p.stack_factor)
    proj_width = p.d_model * p.stack_factor + 2 * (p.projector_depth - 1) * h
    projector = win * frames * proj_width * s.ab if p.projector_trains else 0
    full_layer = _layer_saved(p, s, b, seq.length)
    per_layer = tokens * s.rb * h if p.gradient_checkpointing else full_layer
    logit_rows = b * seq.labelled if p.fast_loss else tokens
    logits = logit_rows * p.vocab * (4 if p.fast_loss else 4 + s.ab)
    head = (b * seq.labelled * s.ab * h if p.head_trains else 0) + tokens * (
        4 * h + (s.rb * h if p.final_norm_trains else 0)
    )
    misc = 2 * tokens * p.head_dim * s.rb + (b * seq.length**2 if b > 1 else 0)
    inputs = win * p.mel_bins * p.window_mel_frames * 4 + 3 * tokens * 8
    lines = [
        Line("inputs", "batch tensors (mel features fp32, ids, masks)", inputs),
        Line("encoder_working_set", "frozen encoder working set (no_grad, before the LLM)", enc_working),
        Line("encoder_saved", "encoder activations (it trains)", enc_saved),
        Line("projector_saved", "projector inputs (all encoder frames)", projector),
        Line(
            "llm_layers",
            f"LLM {p.layers} layers x {'layer input (checkpointed)' if p.gradient_checkpointing else 'saved activations'}",
            p.layers * per_layer,
        ),
        Line("rope_and_mask", "rotary cos/sin, attention mask", misc),
        Line("final_norm_and_head", "final norm, LM head inputs", head),
        Line(
            "logits",
            f"logits ({'labelled positions only' if p.fast_loss else 'every position'} x {p.vocab:,})",
            logits,
        ),
    ]
    recompute = max(full_layer, enc_recompute) if p.gradient_checkpointing else 0
    layer_grads = tokens * (s.ab * (p.intermediate + 2 * h) + 4 * h)
    # the log-softmax's incoming gradient and its result, both fp32, while its saved output still lives
    loss_grads = logit_rows * p.vocab * 8
    # a weight's fresh gradient exists before it is accumulated into .grad; the largest is the LM head's
    workspace = recompute + max(layer_grads, loss_grads) + p.largest_trained_tensor
    return [x for x in lines if x.bytes], workspace


def _tied_gradient_sum(p: ModelProfile, by_key: dict[str, int]) -> int:
    """The end of backward with a tied, trained embedding: the LM head's gradient has waited through the
    whole backward for the embedding's; autograd adds the two out of place (measured on CPU), so three
    (V, h) gradients live at once, next to the projector's inputs and the batch."""
    if not p.tied_embedding_bytes:
        return 0
    return 3 * p.tied_embedding_bytes + by_key.get("projector_saved", 0) + by_key.get("inputs", 0)


def _static_lines(p: ModelProfile, par: Parallel, s: _Sizes) -> tuple[list[Line], int]:
    """Parameters, gradients, optimizer state (and DDP/ZeRO/FSDP buffers) per device; and the optimizer
    step's transient bytes."""
    n, t_count, t_bytes = par.world_size, p.trainable_params, p.trainable_bytes
    dtypes = "+".join(sorted(p.bytes_by_dtype))
    if par.shard == "none":
        lines = [
            Line("parameters", f"parameters ({dtypes})", p.trainable_bytes + p.frozen_bytes),
            Line("gradients", "gradients (trained parameters, their dtype)", t_bytes),
            Line("optimizer_state", "AdamW moments (2 per trained parameter, its dtype)", 2 * t_bytes),
        ]
        if n > 1:
            lines.append(Line("ddp_buckets", "DDP gradient buckets (a second copy)", t_bytes))
        return lines, t_bytes
    cb = 2 if s.autocast else p.param_bytes  # the 16-bit compute copies
    master = 4 if s.autocast else p.param_bytes
    gathered = (2 * p.largest_layer + p.embedding) * cb
    if par.shard == "fsdp":
        gathered += p.rest * cb + p.largest_trainable_layer * cb
        lines = [
            Line(
                "parameters",
                f"parameters, 1/{n} (trained ones fp32 master)",
                (t_count * master + p.frozen_bytes) // n,
            ),
            Line("gathered", "gathered units (root, embedding, 2 layers) + 1 layer's grads", gathered),
            Line("gradients", f"gradients, 1/{n}", t_count * master // n),
            Line("optimizer_state", f"AdamW moments, 1/{n}", 2 * t_count * master // n),
        ]
        return lines, t_count * master // n
    params = p.total_params * cb
    lines = [
        Line(
            "parameters",
            f"parameters ({cb * 8}-bit)" + (f", 1/{n}" if par.shard == "zero3" else ""),
            params // n if par.shard == "zero3" else params,
        )
    ]
    if par.shard == "zero3":
        lines.append(Line("gathered", "gathered parameters (embedding, 2 layers)", gathered))
    lines += [
        Line("gradients", f"gradients, 1/{n}", t_count * cb // n),
        Line("reduce_bucket", "DeepSpeed reduce bucket", min(DS_REDUCE_BUCKET, t_count) * cb),
        Line(
            "optimizer_state",
            f"fp32 master + AdamW moments, 1/{n}",
            t_count * (8 + (4 if s.autocast else 0)) // n,
        ),
    ]
    return lines, 2 * t_count * 4 // n


def estimate(p: ModelProfile, w: Workload, par: Parallel | None = None) -> MemoryEstimate:
    """Memory per device for one training step of `w` (see the module docstring for the model)."""
    par = par or Parallel()
    s = _sizes(p, par)
    seq, mode = sequence(p, w)
    static, opt_step = _static_lines(p, par, s)
    acts, workspace = _activation_lines(p, s, w, seq)
    by_key = {x.key: x.bytes for x in acts}
    inputs = by_key.get("inputs", 0)
    saved = sum(x.bytes for x in acts if x.key not in ("inputs", "encoder_working_set"))
    phases = {
        "encoder": inputs + by_key.get("encoder_working_set", 0),
        "forward/backward": inputs + saved + workspace,
        "embedding gradients": _tied_gradient_sum(p, by_key),
        "optimizer step": opt_step,
    }
    phases = {k: v for k, v in phases.items() if v or k == "forward/backward"}
    acts.append(
        Line("backward_workspace", "backward workspace (recompute, gradients of one layer/loss)", workspace)
    )
    peak = max(phases, key=lambda k: phases[k])
    notes = _notes(p, w, seq)
    static_bytes = sum(x.bytes for x in static)
    return MemoryEstimate(w, par, seq, mode, static, acts, phases, peak, static_bytes + phases[peak], notes)


def _notes(p: ModelProfile, w: Workload, seq: SampleShape) -> list[str]:
    notes = []
    if seq.text_tokens < w.text_tokens:
        notes.append(f"text capped at model.model_max_length = {p.model_max_length} tokens, as the run does")
    if w.seconds * MEL_PER_SECOND > p.max_windows * p.window_mel_frames:
        notes.append(f"audio capped at {p.max_windows} windows (max_audio_windows), as the model does")
    if p.max_positions and seq.length > p.max_positions:
        notes.append(
            f"{seq.length} positions exceed model.max_positions = {p.max_positions}: the run skips such samples"
        )
    return notes


def largest_batch(
    p: ModelProfile, w: Workload, memory: int, par: Parallel | None = None, limit: int = 65536
) -> int:
    """The largest per-device batch whose estimate fits in `memory` bytes (0: not even one sample;
    `limit` caps the search). The estimate grows with the batch, so a doubling then bisection finds it."""

    def fits(b: int) -> bool:
        return estimate(p, dataclasses.replace(w, batch=b), par).total <= memory

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)  # lo fits; hi does not, or lies past the limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


# ---- sizes and rendering -------------------------------------------------------------------------------------
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes of `80GiB`, `80GB`, `81920MiB`, `80` (GiB when no unit is given)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a memory size (e.g. 80GiB, 80GB, 81920MiB)")
    unit = (m.group(2) or "").lower()
    if not unit:
        scale = GIB
    elif unit == "b":
        scale = 1
    else:  # k, m, g, t: powers of 1000, or of 1024 with an i (KiB, MiB, GiB, TiB)
        power = "kmgt".index(unit[0]) + 1
        scale = (1024 if "i" in unit else 1000) ** power
    return int(float(m.group(1)) * scale)


def format_bytes(n: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def format_count(n: int) -> str:
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.{3 if unit == 'B' else 2}f}{unit}"
    return str(n)


_PART_NAMES = {"audio_tower": "encoder", "projector": "projector", "language_model": "language model"}


def describe_model(p: ModelProfile) -> str:
    parts = []
    for key, name in _PART_NAMES.items():
        x = p.parts.get(key, PartParams())
        if x.frozen and x.trainable:
            what = f"({format_count(x.trainable)} trained)"
        else:
            what = "frozen" if x.frozen else "trained"
        parts.append(f"{name} {format_count(x.trainable + x.frozen)} {what}")
    return f"{format_count(p.total_params)} parameters ({', '.join(parts)}), {p.dtype}"


def describe_run(p: ModelProfile, e: MemoryEstimate) -> list[str]:
    w, seq, par = e.workload, e.sequence, e.parallel
    audio = (
        f"{w.seconds:g} s audio ({seq.windows} window(s) -> {seq.audio_positions} positions, {e.audio_token_mode}"
        + (f", stack {p.stack_factor}" if p.stack_factor > 1 else "")
        + ")"
    )
    precision = "no autocast" if p.mixed_precision == "no" else f"{p.mixed_precision} autocast"
    shard = "no sharding" if par.shard == "none" else par.shard
    return [
        f"batch {w.batch} per device: {audio} + {seq.text_tokens} text tokens ({seq.labelled} labelled) "
        f"= {seq.length} positions per sample",
        f"{precision}; gradient checkpointing {'on' if p.gradient_checkpointing else 'off'}; "
        f"{par.world_size} process(es), {shard}",
    ]


_PHASE_LABELS = {
    "encoder": "encoder phase (frozen encoder under no_grad, before the LLM)",
    "forward/backward": "forward/backward phase (saved activations + workspace)",
    "embedding gradients": "end of backward (tied embedding: 3 (V, h) gradients)",
    "optimizer step": "optimizer step phase (foreach AdamW's sqrt(v) copy)",
}


def render(p: ModelProfile, e: MemoryEstimate, memory: int | None = None) -> str:
    """The estimate as a readable table: the static part, then each phase's transient memory (the total
    is the static part plus the largest phase)."""
    width = 64
    rows = [f"model: {describe_model(p)}", f"shape: {p.source}", *describe_run(p, e), ""]

    def row(label: str, n: int, indent: int = 2) -> str:
        return f"{' ' * indent}{label:<{width - indent}} {format_bytes(n):>11}"

    rows += [row(x.label, x.bytes) for x in e.static]
    rows += [row("static (all phases)", e.static_bytes), ""]
    for phase, n in e.phases.items():
        mark = "  <- peak" if phase == e.peak_phase else ""
        rows.append(row(_PHASE_LABELS[phase], n) + mark)
        if phase == "forward/backward":
            rows += [row(x.label, x.bytes, 6) for x in e.activations if x.key != "encoder_working_set"]
    rows += ["", row("total per device (static + peak phase)", e.total, 0)]
    if memory is not None:
        left = memory - e.total
        verdict = (
            f"fits in {format_bytes(memory)}" if left >= 0 else f"does NOT fit in {format_bytes(memory)}"
        )
        rows.append(f"{verdict} ({format_bytes(abs(left))} {'left' if left >= 0 else 'short'})")
    rows += [f"note: {x}" for x in e.notes]
    return "\n".join(rows)


def render_largest(table: dict[float, dict[str, int]], memory: int, text_tokens: int) -> str:
    """Largest batch per duration (rows) and token mode (columns)."""
    modes = list(next(iter(table.values())))
    head = f"largest per-device batch in {format_bytes(memory)} ({text_tokens} text tokens per sample):"
    lines = [head, "  " + f"{'seconds':>8}" + "".join(f"{m:>12}" for m in modes)]
    for seconds, row in table.items():
        lines.append("  " + f"{seconds:>8g}" + "".join(f"{row[m]:>12}" for m in modes))
    return "\n".join(lines)


def render_left_out() -> str:
    return "not included:\n" + "\n".join(f"  - {x}" for x in LEFT_OUT)


# ---- the command's report ------------------------------------------------------------------------------------
@dataclass
class EstimateReport:
    """What `llaso train --estimate-memory` prints: one estimate per duration, and with a GPU memory size
    the largest batch per duration and token mode."""

    profile: ModelProfile
    estimates: list[MemoryEstimate]
    gpu_memory: int | None = None
    largest: dict[float, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": dataclasses.asdict(self.profile),
            "estimates": [e.to_dict() for e in self.estimates],
            "gpu_memory": self.gpu_memory,
            "largest_batch": {f"{k:g}": v for k, v in self.largest.items()},
            "left_out": list(LEFT_OUT),
        }

    def render(self) -> str:
        parts = [render(self.profile, e, self.gpu_memory) for e in self.estimates]
        if self.gpu_memory is not None and self.largest:
            tokens = self.estimates[0].sequence.text_tokens
            parts.append(render_largest(self.largest, self.gpu_memory, tokens))
        parts.append(render_left_out())
        return "\n\n".join(parts)


def estimate_report(
    profile: ModelProfile,
    *,
    batch: int,
    seconds: tuple[float, ...] | list[float],
    text_tokens: int,
    answer_tokens: int | None = None,
    parallel: Parallel | None = None,
    gpu_memory: int | None = None,
) -> EstimateReport:
    """The estimate for each duration at `batch`, and the largest batch of each token mode in `gpu_memory`."""
    works = [Workload(batch, s, text_tokens, answer_tokens) for s in seconds]
    report = EstimateReport(profile, [estimate(profile, w, parallel) for w in works], gpu_memory)
    if gpu_memory is not None:
        for w in works:
            report.largest[w.seconds] = {
                mode: largest_batch(
                    profile, dataclasses.replace(w, audio_token_mode=mode), gpu_memory, parallel
                )
                for mode in TOKEN_MODES
            }
    return report
