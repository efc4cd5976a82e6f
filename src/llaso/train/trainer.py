"""The training loop: a plain `accelerate` loop, the same code on one CPU and under DDP, FSDP or DeepSpeed.

Per optimizer step: `per_device_batch_size` × `grad_accum` × processes samples; gradients clipped to
`optim.max_grad_norm` at every step (`accelerator.clip_grad_norm_`; under DeepSpeed the engine clips,
with `gradient_clipping` set from the same value when the DeepSpeed config leaves it out or `auto`);
AdamW without weight decay on biases and norms; a transformers schedule (cosine with warmup by default)
stepped once per optimizer step; bf16/fp16 autocast from `loop.mixed_precision`.

`train(cfg)` is the whole run, a `Trainer`: its setup (pre-flight check, model, data, optimizer), then
`run()`: resume from the newest checkpoint of `output_dir` that verifies and loads, the loop, checkpoints,
the final folder. Where the run stands is a `LoopState`, the counters a checkpoint stores. See docs/training.md.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import (
    DistributedDataParallelKwargs,
    DistributedType,
    FullyShardedDataParallelPlugin,
    broadcast_object_list,
    set_seed,
)
from peft import LoraConfig, inject_adapter_in_model
from torch import nn
from tqdm import tqdm
from transformers import get_scheduler
from transformers.utils import logging as hf_logging

from llaso.corpus.jsonio import expand_inputs, iter_samples
from llaso.corpus.validate import validate_paths
from llaso.model.modeling import LlasoForConditionalGeneration, build_llaso, build_tiny_llaso
from llaso.model.processing import LlasoProcessor
from llaso.train.cache import FeatureCache, encode_windows, encoder_fingerprint, project_frames
from llaso.train.checkpoint import (
    ACCELERATE_DIR,
    drop_tied_copies,
    fsync_path,
    list_checkpoints,
    load_projector,
    lora_scaling,
    merge_lora_state_dict,
    publish,
    read_state,
    remove_partial,
    rotate,
    save_projector,
    verify_checkpoint,
    write_manifest,
    write_state,
)
from llaso.train.config import ConfigError, TrainConfig, dump_config
from llaso.train.data import BatchPlan, Collator, ListBatchSampler, Skipped, TrainDataset
from llaso.utils.precision import mixed_precision_for
from llaso.utils.progress import progress_bar

log = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"
SKIPPED_FILE = "skipped.jsonl"


class PreflightError(ValueError):
    """The training data failed the pre-flight check; the message is the validation summary."""


class TrainingOOMError(RuntimeError):
    """Out of memory on a batch; the message names its samples and their lengths."""


class ResumeError(ValueError):
    """No checkpoint could be loaded after a load had already begun to overwrite the model."""


@dataclass
class TrainResult:
    global_step: int = 0
    total_steps: int = 0
    epochs_done: int = 0
    skipped: int = 0
    samples: int = 0
    last_loss: float | None = None
    resumed_from: str | None = None
    output_dir: str = ""
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float | None] = field(default_factory=list)
    # per step: a digest of the sample indices it saw (this process)
    orders: list[str] = field(default_factory=list)
    model: Any = None  # the trained model (LoRA adapters still injected), this process's copy

    def log_line(self) -> str:
        """The one-line account of a finished run, for the log."""
        loss = "n/a" if self.last_loss is None else f"{self.last_loss:.4f}"
        return (
            f"done: {self.global_step} step(s), {self.samples} sample(s), {self.skipped} skipped, "
            f"last loss {loss}; output in {self.output_dir}"
        )

    def short_line(self) -> str:
        """What `llaso train` prints at the end."""
        return (
            f"trained {self.global_step} step(s); skipped {self.skipped} sample(s); output: {self.output_dir}"
        )


@dataclass
class LoopState:
    """Where a run stands between optimizer steps; a checkpoint's trainer_state.json holds these fields
    (plus the run's layout), so a resumed run continues at the same step and position in the data order."""

    global_step: int = 0
    epoch: int = 0  # epochs completed
    micro: int = 0  # this process's micro-batches done in the current epoch (its position in the order)
    samples: int = 0  # samples trained on so far, all processes
    skipped: int = 0  # samples skipped so far, all processes

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> LoopState:
        return cls(
            global_step=saved["global_step"],
            epoch=saved["epoch"],
            micro=saved["micro"],
            samples=saved.get("samples", 0),
            skipped=saved.get("skipped", 0),
        )


@dataclass
class StepTally:
    """This process's sums over the micro-batches of the optimizer step in progress."""

    loss: float = 0.0  # the losses of the micro-batches that had samples
    micro: int = 0  # micro-batches that had samples (an all-skipped one runs a dummy batch)
    items: int = 0  # samples trained on
    skipped: int = 0
    indices: list[int] = field(default_factory=list)  # every sample index the step saw, skipped ones too
    task_loss: dict[int, list[float]] = field(
        default_factory=dict
    )  # task number -> [sum of rows' means, rows]

    def order(self) -> str:
        """A digest of the step's sample indices: two runs with equal digests saw the same data order."""
        return hashlib.sha1(json.dumps(self.indices).encode()).hexdigest()[:12]


# ---- model -----------------------------------------------------------------------------------------
def build_model(cfg: TrainConfig) -> tuple[Any, Any]:
    """The starting model and processor of a run (from a folder, from parts, or tiny), projector loaded."""
    m = cfg.model
    dtype = getattr(torch, m.dtype)
    if m.tiny is not None:
        model, processor = build_tiny_llaso(**{**m.tiny, **m.config})
        model.to(dtype)
    elif m.path is not None:
        model = LlasoForConditionalGeneration.from_pretrained(m.path, dtype=dtype)
        processor = LlasoProcessor.from_pretrained(m.path)
    else:
        assert m.encoder is not None and m.language_model is not None
        model, processor = build_llaso(
            m.encoder, m.language_model, m.tokenizer or m.language_model, dtype=dtype, **m.config
        )
    if m.projector:
        load_projector(model, m.projector)
        log.info("loaded the projector from %s", m.projector)
    if m.max_positions:
        processor.max_length = int(m.max_positions)
    return model, processor


def add_lora(model: nn.Module, cfg: TrainConfig) -> int:
    """Inject LoRA adapters (peft) into the chosen parts; returns the number of wrapped Linears."""
    targets = "|".join(re.escape(t) for t in cfg.lora.targets)
    parts = "|".join(re.escape(x) for x in cfg.lora.modules)
    lcfg = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=rf"^({parts})\..*\.({targets})$",
    )
    inject_adapter_in_model(lcfg, model)
    n = len(lora_scaling(model))
    if not n:
        raise ConfigError(f"lora: no Linear named {cfg.lora.targets} in {cfg.lora.modules}")
    return n


def set_trainable(model: nn.Module, trainable: list[str], frozen: list[str]) -> list[str]:
    """requires_grad by glob patterns on parameter names (frozen wins); returns the trainable names."""
    names = [n for n, _ in model.named_parameters()]
    for pat in [*trainable, *frozen]:
        if not any(fnmatch.fnmatchcase(n, pat) for n in names):
            raise ConfigError(f"params: pattern {pat!r} matches no parameter (names look like {names[0]!r})")
    on = []
    for n, p in model.named_parameters():
        want = any(fnmatch.fnmatchcase(n, pat) for pat in trainable) and not any(
            fnmatch.fnmatchcase(n, pat) for pat in frozen
        )
        p.requires_grad_(want)
        if want:
            on.append(n)
    if not on:
        raise ConfigError("params: no parameter is trainable")
    return on


def _prepare_parameters(model: Any, cfg: TrainConfig) -> tuple[int, bool]:
    """LoRA, `requires_grad` and activation checkpointing as `cfg` says; returns the number of trainable
    parameters and whether the encoder trains."""
    if cfg.lora.enabled:
        n = add_lora(model, cfg)
        log.info("LoRA r=%d on %d Linear layers of %s", cfg.lora.r, n, "+".join(cfg.lora.modules))
    trainable = set_trainable(model, cfg.trainable_patterns(), cfg.params.frozen)
    encoder_trains = any(n.startswith("audio_tower.") for n in trainable)
    model.config.freeze_encoder = not encoder_trains
    if cfg.loop.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    log.info("stage %s: %s of %s parameters train", cfg.stage, f"{n_train:,}", f"{n_all:,}")
    return n_train, encoder_trains


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def store_frozen(model: nn.Module, dtype: torch.dtype) -> int:
    """Cast the frozen floating-point parameters to `dtype` in place (autocast would cast them to it at
    every use anyway); returns how many elements were cast."""
    n = 0
    for p in model.parameters():
        if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
            p.data = p.data.to(dtype)
            n += p.numel()
    return n


def in_dtype(state_dict: dict[str, Any], source: torch.dtype, target: torch.dtype) -> dict[str, Any]:
    """The state dict with its `source`-dtype tensors in `target` (the frozen parameters back in the
    model's dtype before a save, so that merged LoRA deltas are not rounded to bf16)."""
    return {k: v.to(target) if v.dtype == source else v for k, v in state_dict.items()}


def has_fast_loss(model: Any) -> bool:
    """Whether `labelled_loss` computes exactly the language model's own loss: a decoder body plus a plain
    linear head (no logit soft-capping or scaling, as in Gemma or Cohere)."""
    lm = getattr(model, "language_model", None)
    if lm is None or not hasattr(lm, "get_decoder") or not hasattr(lm, "get_output_embeddings"):
        return False
    cfg = getattr(lm, "config", None)
    if any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in ("final_logit_softcapping", "logit_scale")):
        return False
    head = lm.get_output_embeddings()
    return isinstance(head, nn.Linear) and lm.get_decoder() is not None


def labelled_loss(
    model: Any,
    embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    average: str = "token",
    row_losses: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled positions, the LM head applied to those positions
    only. With `average="token"` it equals the language model's own `labels=` loss, but never builds the
    [batch, length, vocab] logits: with SmolLM2's 49k-word head and short answers that is about a third of a
    CPU step. `average="sample"` takes each sample's mean first, then the mean over the samples that have
    labelled positions. `row_losses`, when given, gets each row's mean loss (detached; NaN for a row
    without labelled positions), for the per-task losses of the log."""
    lm = model.language_model
    pos = attention_mask.long().cumsum(-1) - 1
    pos = pos.masked_fill(attention_mask == 0, 0)
    hidden = lm.get_decoder()(
        inputs_embeds=embeds, attention_mask=attention_mask, position_ids=pos, use_cache=False
    ).last_hidden_state
    target = labels[:, 1:]
    keep = target != -100
    logits = lm.get_output_embeddings()(hidden[:, :-1][keep]).float()
    if logits.shape[0] == 0:  # nothing labelled: a zero that still touches the graph
        return hidden.float().sum() * 0.0
    if row_losses is not None:
        with torch.no_grad():
            per = nn.functional.cross_entropy(logits.detach(), target[keep], reduction="none")
            row_losses.append(_row_means(per, keep))
    if average == "token":
        return nn.functional.cross_entropy(logits, target[keep])
    means = _row_means(nn.functional.cross_entropy(logits, target[keep], reduction="none"), keep)
    return means[keep.any(1)].mean()


def _row_means(per_token: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Each row's mean of `per_token` (the values at `keep`'s True positions, row by row); NaN for a row
    without any."""
    row = torch.arange(keep.shape[0], device=keep.device)[:, None].expand_as(keep)[keep]
    sums = torch.zeros(keep.shape[0], dtype=per_token.dtype, device=per_token.device).index_add(
        0, row, per_token
    )
    counts = keep.sum(1)
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))


class TrainingModule(nn.Module):
    """The model plus the loss, as one module for `accelerator.prepare` (DDP/FSDP wrap this).

    With the feature cache the batch carries encoder frames instead of mel features for samples seen
    before; the module projects and scatters them with the model's own `project_audio` and
    `embed_with_audio`, then runs the LM on `inputs_embeds`.
    """

    def __init__(self, model: nn.Module, loss_average: str = "token") -> None:
        super().__init__()
        self.model = model
        self.loss_average = loss_average
        if loss_average != "token" and not has_fast_loss(model):
            raise ConfigError(
                f"optim.loss_average={loss_average!r} needs a language model with a plain linear head"
            )
        # each row's mean loss of the last forward (fast-loss models only): the log's per-task losses
        self.row_losses: torch.Tensor | None = None
        lm = getattr(model, "language_model", None)
        self._no_split_modules = [
            *(getattr(model, "_no_split_modules", None) or []),
            *(getattr(lm, "_no_split_modules", None) or []),
        ]

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        rows: list[torch.Tensor] = []
        loss, new = self._loss(batch, rows)
        self.row_losses = rows[0] if rows else None
        return touch_trainable(self.model, loss), new

    def _loss(
        self, batch: dict[str, Any], rows: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        model: Any = self.model
        if batch.get("dummy"):
            # An empty micro-batch (all its samples skipped): a zero loss that still touches the
            # graph, so every process runs the same collectives.
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
            return out.logits.float().sum() * 0.0, None
        if "cached_frames" not in batch:
            if not has_fast_loss(model):  # loss_average is "token" here (checked in __init__)
                out = model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    labels=batch["labels"],
                    input_features=batch.get("input_features"),
                    input_features_mask=batch.get("input_features_mask"),
                    use_cache=False,
                )
                return out.loss, None
            feats = None
            if batch.get("input_features") is not None:
                feats = model.get_audio_features(batch["input_features"], batch.get("input_features_mask"))
            embeds = model.embed_with_audio(batch["input_ids"], feats)
            loss = labelled_loss(
                model, embeds, batch["attention_mask"], batch["labels"], self.loss_average, rows
            )
            return loss, None
        frames: list[Any] = list(batch["cached_frames"])
        positions: list[int] = batch["window_positions"]
        new: list[torch.Tensor] | None = None
        if batch.get("input_features") is not None:
            miss = [w for w, f in enumerate(frames) if f is None]
            new = encode_windows(model, batch["input_features"], [positions[w] for w in miss])
            for w, f in zip(miss, new, strict=True):
                frames[w] = f
        feats = project_frames(model, frames, positions) if frames else None
        embeds = model.embed_with_audio(batch["input_ids"], feats)
        if has_fast_loss(model):
            loss = labelled_loss(
                model, embeds, batch["attention_mask"], batch["labels"], self.loss_average, rows
            )
            return loss, new
        out = model(
            inputs_embeds=embeds,
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
            use_cache=False,
        )
        return out.loss, new


def touch_trainable(model: Any, loss: torch.Tensor) -> torch.Tensor:
    """`loss`, plus a zero that reaches the trainable parameters when `loss` reaches none of them.

    With only the projector training (stage 1), a text-only or dummy micro-batch never runs the projector,
    so its loss has no gradient path and `backward` would fail. The zero runs the projector on one zero
    frame group: backward then gives the projector zero gradients, the loss value is unchanged, and every
    process of a DDP run still takes part in the same gradient reduction.
    """
    if loss.requires_grad or not torch.is_grad_enabled():
        return loss
    proj = getattr(model, "projector", None)
    if proj is not None and any(p.requires_grad for p in proj.parameters()):
        first = proj.net[0]
        zeros = first.weight.new_zeros(1, proj.stack_factor, first.in_features // proj.stack_factor)
        return loss + proj(zeros).float().sum() * 0.0
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return loss
    return loss + torch.stack([p.float().sum() for p in params]).sum() * 0.0


def param_groups(
    module: nn.Module, weight_decay: float, projector_lr: float | None = None
) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases, norms and other 1-D parameters; with `projector_lr`, the
    projector's parameters (`projector.` in their name) get that learning rate instead of the optimizer's."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for n, p in module.named_parameters():
        if not p.requires_grad:
            continue
        decays = not (p.ndim < 2 or n.endswith(".bias") or "norm" in n.lower())
        own_lr = projector_lr is not None and ".projector." in f".{n}"
        groups.setdefault((decays, own_lr), []).append(p)
    out: list[dict[str, Any]] = []
    for (decays, own_lr), params in sorted(groups.items(), key=lambda kv: (kv[0][1], not kv[0][0])):
        g: dict[str, Any] = {"params": params, "weight_decay": weight_decay if decays else 0.0}
        if own_lr:
            g["lr"] = projector_lr
        out.append(g)
    return out


# ---- data ------------------------------------------------------------------------------------------
def load_samples(paths: list[str]) -> list[Any]:
    files = expand_inputs(paths)
    if not files:
        raise ConfigError(f"data.train: no .json/.jsonl files in {paths}")
    out: list[Any] = []
    for f in files:
        out.extend(iter_samples(f))
    if not out:
        raise ConfigError(f"data.train: {paths} hold no samples")
    return out


def preflight(cfg: TrainConfig) -> str:
    """`llaso data validate` over the training files; raises PreflightError with its summary on errors."""
    report = validate_paths(
        cfg.data.train, check_audio=cfg.data.preflight_audio, audio_root=cfg.data.audio_root, progress=False
    )
    if report.errors:
        raise PreflightError(
            "pre-flight check of the training data failed (fix the data, or pass --skip-preflight):\n"
            + report.summary()
        )
    return report.summary()


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device)
        elif k == "cached_frames":
            out[k] = [f.to(device) if f is not None else None for f in v]
        else:
            out[k] = v
    return out


def _describe(batch: dict[str, Any]) -> str:
    ids = batch.get("sample_ids", [])
    lengths = batch.get("lengths", [])
    windows = batch.get("input_features")
    wtxt = f", {windows.shape[0]} audio window(s)" if isinstance(windows, torch.Tensor) else ""
    return ", ".join(f"{i} ({n} positions)" for i, n in zip(ids, lengths, strict=False)) + wtxt


def _dummy_batch(processor: Any) -> dict[str, Any]:
    """What a process runs for a micro-batch whose samples were all skipped (see TrainingModule)."""
    return {
        "dummy": True,
        "input_ids": torch.full((1, 2), int(processor.tokenizer.pad_token_id), dtype=torch.long),
        "attention_mask": torch.ones((1, 2), dtype=torch.long),
    }


def _store_frames(cache: FeatureCache, batch: dict[str, Any], new_frames: list[torch.Tensor]) -> None:
    k = 0
    for miss in batch["cache_misses"]:
        frames = new_frames[k : k + miss["windows"]]
        k += miss["windows"]
        if miss["key"] is not None:
            cache.put(
                miss["key"],
                input_ids=miss["input_ids"],
                labels=miss["labels"],
                frames=frames,
                positions=miss["positions"],
            )


# ---- logging ---------------------------------------------------------------------------------------
def trim_jsonl(path: Path, keep: Callable[[dict[str, Any]], bool]) -> int:
    """Rewrite a JSONL log with only the records `keep` accepts; a line that is not a JSON object (one
    cut short by a kill) goes too. Atomic: a temporary file, flushed to disk, renamed. Rewrites only when
    something goes or the last line lacks its newline; returns the number of lines dropped."""
    if not path.is_file():
        return 0
    text = path.read_text(encoding="utf-8", errors="replace")
    kept, dropped = [], 0
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict) and keep(rec):
            kept.append(line)
        else:
            dropped += 1
    if dropped or (text and not text.endswith("\n")):
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_path(path.parent)
    return dropped


def _step_at_most(limit: int) -> Callable[[dict[str, Any]], bool]:
    def keep(rec: dict[str, Any]) -> bool:
        step = rec.get("step")
        return not isinstance(step, (int, float)) or step <= limit

    return keep


class _RunLog:
    """train_log.jsonl (one record per logged step and per event), skipped.jsonl, and tensorboard
    scalars; all of it written by the main process only.

    A run that starts at step k (a resume, or 0) first drops what an earlier run logged after step k, the
    steps it is about to redo: train_log.jsonl keeps the records of steps <= k, skipped.jsonl (whose `step`
    counts the steps done before the skip) those of steps < k. Each step is then logged exactly once."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool | None, start_step: int = 0) -> None:
        self.enabled = enabled
        if enabled:
            for name, limit in ((LOG_FILE, start_step), (SKIPPED_FILE, start_step - 1)):
                if n := trim_jsonl(out / name, _step_at_most(limit)):
                    log.info(
                        "%s: dropped %d line(s) unreadable or after step %d (redone now)", name, n, limit
                    )
        self.file = (out / LOG_FILE).open("a", encoding="utf-8") if enabled else None
        self.skips = (out / SKIPPED_FILE).open("a", encoding="utf-8") if enabled else None
        self.tb = None
        if enabled and tensorboard is not False:
            try:
                # imported here: `log.tensorboard: null` means "when tensorboard is installed", so a
                # missing one must only turn this writer off
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                if tensorboard:
                    log.warning(
                        "log.tensorboard is on but tensorboard is not installed (pip install tensorboard)"
                    )

    def record(self, rec: dict[str, Any]) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        if self.tb is not None and "step" in rec:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch") and v is not None:
                    self.tb.add_scalar(f"train/{k}", v, rec["step"])

    def skipped(self, s: Skipped, step: int) -> None:
        if self.skips is not None:
            self.skips.write(
                json.dumps({"step": step, "index": s.index, "id": s.sample_id, "reason": s.reason}) + "\n"
            )
            self.skips.flush()

    def close(self) -> None:
        for f in (self.file, self.skips):
            if f is not None:
                f.close()
        if self.tb is not None:
            self.tb.close()


@dataclass
class _Throughput:
    """Samples per second between two log records."""

    since: float = field(default_factory=time.perf_counter)
    items: int = 0

    def lap(self) -> tuple[float, float]:
        """Seconds and samples per second since the previous lap; starts the next one."""
        now = time.perf_counter()
        elapsed = now - self.since
        rate = self.items / max(elapsed, 1e-9)
        self.since, self.items = now, 0
        return elapsed, rate


# ---- the loop ---------------------------------------------------------------------------------------
class Trainer:
    """One training run. `Trainer(cfg)` is the setup: accelerator, output folder, pre-flight check, model,
    data, optimizer and schedule (prepared by accelerate). `run()` is the rest: `_resume` from the newest
    checkpoint that verifies, then per micro-batch `_accumulate`, per optimizer step `_end_step` (which calls
    `_log`) and `_save` every `save.steps`, and `_finish` (the final folder)."""

    logger: _RunLog  # opened by run()
    bar: tqdm
    throughput: _Throughput

    def __init__(self, cfg: TrainConfig, *, skip_preflight: bool = False) -> None:
        cfg.validate()
        _quiet_libraries()
        self.cfg = cfg
        self.accelerator = _make_accelerator(cfg)
        self.main = self.accelerator.is_main_process
        if not self.main:
            logging.getLogger("llaso").setLevel(logging.WARNING)  # one copy of the INFO lines
        self.out = Path(cfg.output_dir)
        self._prepare_output()
        self._preflight(skip_preflight)
        set_seed(cfg.loop.seed)
        samples = load_samples(cfg.data.train)
        self.model, self.processor = build_model(cfg)
        self.n_trainable, encoder_trains = _prepare_parameters(self.model, cfg)
        self.frozen_dtype = self._store_frozen()
        self.cache = self._feature_cache()  # after the cast: the fingerprint reads the encoder's dtypes
        # tasks by number, for the per-task losses of the log (samples without a task: "-")
        self.task_names = sorted({s.task or "-" for s in samples})
        self.task_of = [self.task_names.index(s.task or "-") for s in samples]
        self.dataset = TrainDataset(
            samples,
            self.processor,
            audio_root=cfg.data.audio_root,
            model_max_length=cfg.model.model_max_length,
            cache=self.cache,
        )
        self.collator = Collator(self.processor.tokenizer.pad_token_id, cfg.data.pad_to_multiple_of)
        self.plan = BatchPlan(
            self.dataset.lengths(),
            self.dataset.types(),
            seed=cfg.loop.seed,
            group_by_length=cfg.data.group_by_length,
            batch_size=cfg.loop.per_device_batch_size,
            grad_accum=cfg.loop.grad_accum,
            world_size=self.accelerator.num_processes,
            rank=self.accelerator.process_index,
        )
        self.total_steps = _total_steps(self.plan, cfg, len(samples))
        self.module, self.optimizer, self.scheduler = self._prepare_optimization(encoder_trains)
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.dummy = _dummy_batch(self.processor)
        self.state = LoopState()
        self.passed_over: list[dict[str, str]] = []  # checkpoints the resume could not use, with the reason
        self.tally = StepTally()
        self.result = TrainResult(total_steps=self.total_steps, output_dir=str(self.out))

    # ---- setup ----
    def _prepare_output(self) -> None:
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_partial(self.out)
            (self.out / "train_config.yaml").write_text(dump_config(self.cfg), encoding="utf-8")

    def _preflight(self, skip: bool) -> None:
        """The pre-flight check on the main process only; the verdict is shared so every process stops
        together."""
        verdict: list[Any] = [None]
        if self.main and self.cfg.data.preflight and not skip:
            try:
                log.info("pre-flight:\n%s", preflight(self.cfg))
            except PreflightError as e:
                verdict = [str(e)]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(verdict)
        if verdict[0]:
            raise PreflightError(verdict[0])

    def _store_frozen(self) -> torch.dtype | None:
        """`loop.frozen_in_autocast`: the frozen parameters stored in the autocast dtype; returns it."""
        if not self.cfg.loop.frozen_in_autocast:
            return None
        dtype = AUTOCAST_DTYPES.get(str(self.accelerator.mixed_precision))
        if dtype is None:
            log.info("loop.frozen_in_autocast: no autocast in force, the frozen parameters stay as loaded")
            return None
        engine = self.accelerator.distributed_type
        if engine in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            raise ConfigError(
                f"loop.frozen_in_autocast works on one process or under DDP, not {engine.value}"
            )
        n = store_frozen(self.model, dtype)
        log.info("loop.frozen_in_autocast: %s frozen parameters stored in %s", f"{n:,}", dtype)
        return dtype

    def _feature_cache(self) -> FeatureCache | None:
        data = self.cfg.data
        if not data.feature_cache:
            return None
        root = Path(data.cache_dir) if data.cache_dir else self.out / "feature-cache"
        # the autocast in force (`auto` resolved): frames made under bf16 are not those of fp32
        cache = FeatureCache(root, encoder_fingerprint(self.model, self.accelerator.mixed_precision))
        log.info("feature cache: %s", cache.dir)
        return cache

    def _prepare_optimization(self, encoder_trains: bool) -> tuple[Any, Any, Any]:
        """The training module, AdamW and the schedule, the first two prepared by accelerate."""
        cfg = self.cfg
        module = TrainingModule(self.model, cfg.optim.loss_average)
        module.train()
        if not encoder_trains:  # frozen: no dropout, so its outputs (and the cache) are deterministic
            self.model.audio_tower.eval()
        optimizer = torch.optim.AdamW(
            param_groups(module, cfg.optim.weight_decay, cfg.optim.projector_lr),
            lr=cfg.optim.lr,
            betas=(cfg.optim.beta1, cfg.optim.beta2),
            eps=cfg.optim.eps,
        )
        # The schedule spans the steps that will really run, so a `max_steps` run still warms up and decays.
        warmup = (
            cfg.optim.warmup_steps
            if cfg.optim.warmup_steps is not None
            else math.ceil(cfg.optim.warmup_ratio * self.total_steps)
        )
        scheduler = get_scheduler(
            cfg.optim.scheduler,
            optimizer,
            num_warmup_steps=warmup,
            num_training_steps=self.total_steps,
        )
        _configure_deepspeed(self.accelerator, cfg)
        module, optimizer = self.accelerator.prepare(module, optimizer)
        self.accelerator.register_for_checkpointing(scheduler)
        return module, optimizer, scheduler

    # ---- the run ----
    def run(self, *, resume: bool = True) -> TrainResult:
        """Train to the last step, from the newest checkpoint of output_dir that verifies with `resume`."""
        ckpt = self._resume() if resume else None
        self.logger = _RunLog(self.out, self.main, self.cfg.log.tensorboard, self.state.global_step)
        event: dict[str, Any] = {
            "event": "resume" if ckpt else "start",
            "step": self.state.global_step,
            "total_steps": self.total_steps,
            "processes": self.plan.world_size,
            "mega_batch": self.plan.mega_batch,
            "trainable_parameters": self.n_trainable,
        }
        if self.passed_over:
            event["skipped_checkpoints"] = self.passed_over
        self.logger.record(event)
        show = self.main and self.cfg.log.progress
        self.bar = progress_bar(
            desc=f"train {self.cfg.stage}", unit="step", total=self.total_steps, disable=not show
        )
        self.bar.update(self.state.global_step)
        self.throughput = _Throughput()
        try:
            while self.state.global_step < self.total_steps and self.state.epoch < self.cfg.loop.epochs:
                self._train_epoch()
            self._finish()
        finally:
            self.bar.close()
            self.logger.close()
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        self.result.model = self.accelerator.unwrap_model(self.module).model
        return self.result

    def _resume(self) -> Path | None:
        """Load the newest checkpoint that verifies against its manifest and loads (weights, optimizer,
        schedule, RNG, loop state), if any. Each one passed over is logged with the reason and kept in
        `passed_over` (the resume event of train_log.jsonl lists them)."""
        load_failed = False
        for ckpt in reversed(list_checkpoints(self.out)):
            why = self._main_says(verify_checkpoint(ckpt) if self.main else None)
            if why is None:
                saved = read_state(ckpt)
                self._check_layout(ckpt, saved)
                why = self._load_state(ckpt)
                load_failed = load_failed or why is not None
            if why is None:
                st = self.state = LoopState.from_saved(saved)
                self.result.resumed_from = str(ckpt)
                log.info(
                    "resuming from %s (step %d, epoch %d, micro-batch %d)",
                    ckpt,
                    st.global_step,
                    st.epoch,
                    st.micro,
                )
                return ckpt
            log.warning("skipping checkpoint %s: %s", ckpt, why)
            self.passed_over.append({"checkpoint": ckpt.name, "reason": why})
        if load_failed:
            raise ResumeError(
                f"no checkpoint in {self.out} could be loaded ("
                + "; ".join(f"{c['checkpoint']}: {c['reason']}" for c in self.passed_over)
                + "), and a failed load has already overwritten part of the model: move those folders "
                "away, or start over with --no-resume"
            )
        if self.passed_over:
            log.warning("no checkpoint in %s verifies: starting from step 0", self.out)
        return None

    def _check_layout(self, ckpt: Path, saved: dict[str, Any]) -> None:
        if saved.get("mega_batch") != self.plan.mega_batch:
            raise ConfigError(
                f"{ckpt} was written with {saved.get('mega_batch')} samples per optimizer step, this run has "
                f"{self.plan.mega_batch} (processes × batch × grad_accum): the data order would differ; use "
                "the same layout or a new output_dir"
            )

    def _load_state(self, ckpt: Path) -> str | None:
        """Load a checkpoint's accelerate state; why it failed, if it failed on any process (then every
        process passes it over together)."""
        why = None
        try:
            self.accelerator.load_state(str(ckpt / ACCELERATE_DIR))
        except Exception as e:  # whatever torch or safetensors raise on a bad file: fall back, named
            first = (str(e).strip().splitlines() or [""])[0][:160]
            why = f"loading failed ({type(e).__name__}: {first})"
        if self.accelerator.num_processes > 1:
            failed = torch.tensor([float(why is not None)], device=self.accelerator.device)
            if float(self.accelerator.reduce(failed, reduction="sum")[0]) > 0 and why is None:
                why = "loading failed on another process"
        return why

    def _main_says(self, value: Any) -> Any:
        """The main process's `value`, on every process."""
        if self.accelerator.num_processes == 1:
            return value
        box = [value]
        broadcast_object_list(box)
        return box[0]

    def _train_epoch(self) -> None:
        """The current epoch's micro-batches from the current position; stops at the run's last step."""
        batches = self.plan.batches(self.state.epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=ListBatchSampler(batches[self.state.micro :]),
            collate_fn=self.collator,
            num_workers=self.cfg.data.num_workers,
        )
        for batch in loader:
            grad_norm = self._accumulate(batch)
            if not self.accelerator.sync_gradients:
                continue
            self._end_step(grad_norm, len(batches))
            done = self.state.global_step >= self.total_steps
            if self.state.global_step % self.cfg.save.steps == 0 or done:
                self._save()
            if done:
                return

    def _accumulate(self, batch: dict[str, Any]) -> float | None:
        """Forward and backward of one micro-batch; the optimizer steps (accelerate skips the step until
        the last micro-batch of the accumulation). Returns the gradient norm on that last one."""
        acc, st, tally = self.accelerator, self.state, self.tally
        for s in batch["skipped"]:
            log.warning("skipping sample %s: %s", s.sample_id, s.reason)
            self.logger.skipped(s, st.global_step)
        tally.skipped += len(batch["skipped"])
        real = batch["items"] > 0
        inputs = _to_device(batch if real else self.dummy, acc.device)
        with acc.accumulate(self.module):
            try:
                with acc.autocast():
                    loss, new_frames = self.module(inputs)
                acc.backward(loss)
            except torch.OutOfMemoryError as e:
                raise TrainingOOMError(
                    f"out of memory on micro-batch {st.micro} of epoch {st.epoch}: {_describe(batch)}; lower "
                    "loop.per_device_batch_size, cap model.max_positions, or turn on "
                    "loop.gradient_checkpointing"
                ) from e
            grad_norm = None
            if acc.sync_gradients:
                grad_norm = _clip(acc, self.params, self.cfg.optim.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        if self.cache is not None and new_frames is not None:
            _store_frames(self.cache, batch, new_frames)
        tally.indices += [*batch.get("indices", []), *(s.index for s in batch["skipped"])]
        if real:
            tally.loss += float(loss.detach())
            tally.micro += 1
            tally.items += batch["items"]
            self._tally_tasks(batch.get("indices", []))
        st.micro += 1
        return grad_norm

    def _tally_tasks(self, indices: list[int]) -> None:
        """Add each row's loss of the last micro-batch to its task's sums (rows follow `indices`)."""
        rows = self.accelerator.unwrap_model(self.module).row_losses
        if rows is None:
            return
        for i, value in zip(indices, rows.tolist(), strict=True):
            if value == value:  # not NaN: the row had labelled positions
                acc = self.tally.task_loss.setdefault(self.task_of[i], [0.0, 0])
                acc[0] += value
                acc[1] += 1

    def _task_sums(self) -> list[float]:
        """This process's per-task loss sums then row counts, in `task_names` order (reduced with the
        step's other counters, in the same collective)."""
        sums = [0.0] * (2 * len(self.task_names))
        for t, (total, n) in self.tally.task_loss.items():
            sums[t], sums[len(self.task_names) + t] = total, n
        return sums

    def _task_means(self, sums: torch.Tensor) -> dict[str, float]:
        """The step's mean loss per task from the summed `_task_sums` of every process."""
        k = len(self.task_names)
        return {
            name: float(sums[t] / sums[k + t]) for t, name in enumerate(self.task_names) if sums[k + t] > 0
        }

    def _end_step(self, grad_norm: float | None, epoch_batches: int) -> None:
        """After an optimizer step: the schedule, the counters summed over processes, the position in the
        data order (the next epoch after its last micro-batch), the result lists, the log."""
        st, tally = self.state, self.tally
        self.scheduler.step()
        st.global_step += 1
        stats = torch.tensor(
            [tally.loss, tally.micro, tally.items, tally.skipped, *self._task_sums()],
            device=self.accelerator.device,
            dtype=torch.float64,
        )
        stats = self.accelerator.reduce(stats, reduction="sum")
        mean_loss = float(stats[0] / stats[1]) if stats[1] > 0 else float("nan")
        st.samples += int(stats[2])
        st.skipped += int(stats[3])
        self.throughput.items += int(stats[2])
        epoch_progress = st.epoch + st.micro / epoch_batches
        if st.micro >= epoch_batches:
            st.epoch, st.micro = st.epoch + 1, 0
        order = tally.order()
        task_loss = self._task_means(stats[4:])
        self.tally = StepTally()
        self.result.losses.append(mean_loss)
        self.result.grad_norms.append(grad_norm)
        self.result.orders.append(order)
        self.bar.update(1)
        if st.global_step % self.cfg.log.steps == 0 or st.global_step == self.total_steps:
            self._log(mean_loss, grad_norm, epoch_progress, order, task_loss)

    def _log(
        self, mean_loss: float, grad_norm: float | None, epoch_progress: float, order: str,
        task_loss: dict[str, float],
    ) -> None:  # fmt: skip
        elapsed, rate = self.throughput.lap()
        lr = self.scheduler.get_last_lr()[0]
        self.bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.2f}", refresh=False)
        self.logger.record(
            {
                "step": self.state.global_step,
                "epoch": round(epoch_progress, 4),
                "loss": mean_loss,
                "lr": lr,
                "grad_norm": grad_norm,
                "samples": self.state.samples,
                "samples_per_s": rate,
                "seconds": elapsed,  # since the previous record
                "skipped": self.state.skipped,
                "order": order,
                # the step's mean per-sample loss of each task it saw (a mixed batch's loss hides them)
                "task_loss": task_loss,
            }
        )

    def _save(self, *, final: bool = False) -> None:
        """OUT/checkpoint-<step> (with the accelerate state and trainer_state.json) or OUT/final, built in a
        temporary folder, its manifest written last, flushed to disk and renamed (see
        llaso.train.checkpoint)."""
        acc = self.accelerator
        name = "final" if final else f"checkpoint-{self.state.global_step}"
        tmp = self.out / f".tmp-{name}"
        if not final:
            acc.save_state(str(tmp / ACCELERATE_DIR))  # every process takes part (sharded engines)
        full = acc.get_state_dict(self.module)
        acc.wait_for_everyone()  # every process's files are written before the manifest reads them
        if acc.is_main_process:
            tmp.mkdir(parents=True, exist_ok=True)
            inner = acc.unwrap_model(self.module).model
            sd = drop_tied_copies({k.removeprefix("model."): v for k, v in full.items()}, inner)
            if self.frozen_dtype is not None:
                sd = in_dtype(sd, self.frozen_dtype, getattr(torch, self.cfg.model.dtype))
            scaling = lora_scaling(inner)
            if scaling:
                sd = merge_lora_state_dict(sd, scaling)
            save_projector(tmp, sd)  # first: save_pretrained empties the dict it is given as it writes
            inner.save_pretrained(str(tmp), state_dict=dict(sd), safe_serialization=True)
            self.processor.save_pretrained(str(tmp))
            write_state(tmp, self._saved_state())
            write_manifest(tmp)
            publish(tmp, self.out / name)
            if not final:
                rotate(self.out, self.cfg.save.total_limit, upto=self.state.global_step)
        acc.wait_for_everyone()

    def _saved_state(self) -> dict[str, Any]:
        """trainer_state.json: the loop state and the layout a resumed run must share."""
        return {
            **dataclasses.asdict(self.state),
            "mega_batch": self.plan.mega_batch,
            "processes": self.plan.world_size,
            "total_steps": self.total_steps,
            "seed": self.cfg.loop.seed,
            "stage": self.cfg.stage,
        }

    def _finish(self) -> None:
        st, res = self.state, self.result
        res.global_step, res.epochs_done = st.global_step, st.epoch
        res.samples, res.skipped = st.samples, st.skipped
        res.last_loss = res.losses[-1] if res.losses else None
        if self.cfg.save.final:
            self._save(final=True)
        self.logger.record(
            {"event": "end", "step": st.global_step, "samples": st.samples, "skipped": st.skipped}
        )
        if self.cache is not None:
            c = self.cache
            log.info("feature cache: %d hits, %d misses, %d written", c.hits, c.misses, c.writes)


def train(cfg: TrainConfig, *, skip_preflight: bool = False, resume: bool = True) -> TrainResult:
    """Run (or resume) a training run described by `cfg`."""
    return Trainer(cfg, skip_preflight=skip_preflight).run(resume=resume)


# ---- helpers of the loop ----------------------------------------------------------------------------
def _quiet_libraries() -> None:
    """Keep the progress bar readable: accelerate's per-save INFO lines and transformers' shard bars off."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    # "Removed shared tensor" (tied weights)
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()


def _make_accelerator(cfg: TrainConfig) -> Accelerator:
    # Several processes and no GPU (torchrun/accelerate launch on CPU): accelerate needs `cpu=True` to
    # pick the gloo backend instead of running each process alone.
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(
        cpu=multi_cpu,
        gradient_accumulation_steps=cfg.loop.grad_accum,
        mixed_precision=mixed_precision_for(
            cfg.loop.mixed_precision, "cuda" if torch.cuda.is_available() else "cpu"
        ),
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=cfg.loop.find_unused_parameters)
        ],
    )
    if multi_cpu and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        _fsdp_on_cpu(accelerator)
    return accelerator


def _fsdp_on_cpu(accelerator: Accelerator) -> None:
    """Make an FSDP launch on CPU processes (gloo) really shard.

    With `cpu=True` accelerate (1.x) sets up MULTI_CPU and ignores ACCELERATE_USE_FSDP and the FSDP_*
    variables that `accelerate launch --config_file configs/accelerate/fsdp.yaml` sets: the run would
    silently be DDP. torch's FSDP (fully_shard) itself works on CPU tensors with gloo, so the state is
    switched to FSDP with the plugin read from those same variables, as accelerate does on GPUs.
    """
    state = accelerator.state
    plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* environment
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    # AcceleratorState() copies PartialState's fields at every construction (accelerate makes new ones
    # all along); accelerate itself records FSDP there too, so it must be recorded in both.
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    if accelerator.is_main_process:
        log.info("FSDP (version %s) on %d CPU processes (gloo)", plugin.fsdp_version, state.num_processes)


def _total_steps(plan: BatchPlan, cfg: TrainConfig, n_samples: int) -> int:
    """Optimizer steps of the run: whole steps per epoch × epochs, capped at `loop.max_steps`."""
    steps_per_epoch = len(plan.batches(0)) // plan.grad_accum
    if steps_per_epoch == 0:
        raise ConfigError(
            f"{n_samples} samples are fewer than one optimizer step ({plan.world_size} process(es) × "
            f"per_device_batch_size {plan.batch_size} × grad_accum {plan.grad_accum})"
        )
    total = steps_per_epoch * cfg.loop.epochs
    if cfg.loop.max_steps:
        total = min(total, cfg.loop.max_steps)
    return total


def _clip(accelerator: Any, params: list[nn.Parameter], max_norm: float | None) -> float | None:
    """Clip to `max_norm` (the total norm before clipping is returned); just measure without a limit."""
    norm = accelerator.clip_grad_norm_(params, max_norm if max_norm else float("inf"))
    if norm is None:
        return None
    return float(norm)


def _configure_deepspeed(accelerator: Any, cfg: TrainConfig) -> None:
    """Make DeepSpeed clip at `optim.max_grad_norm` (the original's zero2.json had no gradient_clipping)."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None:
        return
    ds = plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = cfg.loop.per_device_batch_size
    if ds.get("gradient_accumulation_steps") not in (None, "auto", cfg.loop.grad_accum):
        log.warning(
            "DeepSpeed gradient_accumulation_steps=%s replaced by loop.grad_accum=%d (the data order needs it)",
            ds["gradient_accumulation_steps"],
            cfg.loop.grad_accum,
        )
    ds["gradient_accumulation_steps"] = cfg.loop.grad_accum
    want = float(cfg.optim.max_grad_norm or 0.0)
    have = ds.get("gradient_clipping")
    if have in (None, "auto"):
        ds["gradient_clipping"] = want
    elif float(have) != want:
        log.warning(
            "DeepSpeed gradient_clipping=%s differs from optim.max_grad_norm=%s; DeepSpeed's applies",
            have,
            want,
        )
