"""GPU figures on the LLaSO-Base shape: stage-2 and stage-1 training steps, batched inference, serving.

The model is `configs/model/llaso-base.yaml` (whisper-large-v3 encoder, mlp2x_gelu, Llama-3.2-3B with its
128,261-entry vocabulary) with random weights in bf16, built on the GPU: nothing is downloaded. The tokenizer
has Llama-3's vocabulary size and special-token ids with byte-level text tokens, so a text of N ASCII
characters is N tokens: the benchmark sets text lengths directly. Clips are noise with LLaSO-Eval-like
durations (log-normal, median 5 s, a few of 20-30 s). Measured side by side in one run:

1. stage 2 (language model + projector train, encoder frozen, gradient checkpointing, AdamW), batch 1, 4
   and 8, in three token modes (`llaso-base`: 1500 positions per 30 s window; `lean`; `lean` + stack 4):
   step time, peak GPU memory, tokens/s, model FLOPs utilization; then the largest batch of 30 s clips
   that fits, per mode;
2. stage 1 (projector only): encoder features read from the feature cache against recomputed;
3. `llaso infer`'s batched greedy path (`run_inference`) at batch 1, 16 and 64 with a fixed answer
   length: items/s, RTFx (audio seconds per wall second), and how many batch-64 answers equal batch 1's;
4. `llaso serve`'s app (in this process, uvicorn on loopback) under 64 concurrent clients: requests/s, p95;
5. a few steps of the tiny model under DeepSpeed ZeRO-2 (`accelerate launch`, configs/accelerate/zero2.yaml),
   where deepspeed is installed (prepare_wheels.sh builds it as a pure-Python wheel; its ops compile on use).

Every figure goes to one JSON file (rewritten atomically after each section, so a cut-off run keeps what
it measured) and a table is printed. `--tiny` runs the same code on the CPU with a shrunken shape in well
under a minute (`make test` runs it, so this script cannot rot). Sized for about 5 minutes on one
H200-class GPU; `--budget-s` stops starting new work once spent.

    PYTHONPATH=src python benchmarks/gpu/bench_llaso_base.py --out gpu.json          # on a GPU
    PYTHONPATH=src python benchmarks/gpu/bench_llaso_base.py --tiny --out tiny.json  # anywhere, < 1 min
    bash benchmarks/gpu/run.sh                                                       # everything, one go
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import math
import os
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[2]
SHAPE = ROOT / "configs" / "model" / "llaso-base.yaml"
SR = 16000
MODES = {
    "llaso-base": {"audio_token_mode": "llaso-base", "stack_factor": 1},
    "lean": {"audio_token_mode": "lean", "stack_factor": 1},
    "lean+stack4": {"audio_token_mode": "lean", "stack_factor": 4},
}
# dense bf16 peak of the chips a user is likely to have (vendor figures, no sparsity), TFLOP/s
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}
# the tiny shape: the same config file, its sizes shrunk (the vocabulary kept), 10 s windows
TINY_AUDIO = {"d_model": 64, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 128,
              "max_source_positions": 500}  # fmt: skip
TINY_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """How much of each section to run; `full` fits one H200-class GPU in minutes, `tiny` a CPU."""

    train_batches: tuple[int, ...] = (1, 4, 8)
    train_steps: int = 3
    fit_batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    stage1_batch: int = 8
    stage1_rounds: int = 2
    infer_batches: tuple[int, ...] = (1, 16, 64)
    infer_items: int = 64
    infer_modes: tuple[str, ...] = ("llaso-base", "lean")
    new_tokens: int = 32
    serve_clients: int = 64
    serve_requests: int = 192
    prompt_chars: int = 64  # ≈ an LLaSO-Eval instruction in Llama-3 tokens
    answer_chars: int = 24

    @classmethod
    def tiny(cls) -> Plan:
        return cls(train_batches=(1, 2), train_steps=1, fit_batches=(1, 2), stage1_batch=2, stage1_rounds=1,
                   infer_batches=(1, 4), infer_items=4, new_tokens=4, serve_clients=4, serve_requests=8,
                   prompt_chars=16, answer_chars=8)  # fmt: skip


@dataclass
class Run:
    """The run's settings and everything measured so far (the JSON file)."""

    device: str
    dtype: str
    tiny: bool
    versions: dict[str, str]
    plan: dict[str, Any]
    started: float = field(default_factory=time.time)
    stage2: dict[str, Any] = field(default_factory=dict)
    largest_batch: dict[str, Any] = field(default_factory=dict)
    stage1: dict[str, Any] = field(default_factory=dict)
    infer: dict[str, Any] = field(default_factory=dict)
    serve: dict[str, Any] = field(default_factory=dict)
    zero2: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    section_s: dict[str, float] = field(default_factory=dict)


# ---- model, tokenizer, data ------------------------------------------------------------------------------
def llama3_sized_tokenizer() -> Any:
    """Llama-3's vocabulary size (128,256) and special-token ids, byte-level text tokens (no merges)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({f"<|filler_{i}|>": i for i in range(len(vocab), 128000)})
    named = {128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128006: "<|start_header_id|>",
             128007: "<|end_header_id|>", 128009: "<|eot_id|>"}  # fmt: skip
    specials = [named.get(i, f"<|reserved_special_token_{i - 128002}|>") for i in range(128000, 128256)]
    vocab.update({t: 128000 + k for k, t in enumerate(specials)})
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens([AddedToken(t, special=True) for t in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"
    )


def build(mode: str, tiny: bool, device: torch.device, dtype: torch.dtype, tok: Any) -> tuple[Any, Any]:
    """The random LLaSO-Base-shaped model (or its tiny twin) in `mode`, built on `device`, and its processor."""
    from llaso.model import LlasoForConditionalGeneration, LlasoProcessor, add_llaso_tokens, load_model_config

    config = load_model_config(SHAPE, **MODES[mode])
    if tiny:
        for k, v in TINY_AUDIO.items():
            setattr(config.audio_config, k, v)
        for k, v in TINY_TEXT.items():
            setattr(config.text_config, k, v)
    torch.manual_seed(0)
    with device:  # the weights are made where they run: 3.8B parameters never pass through the CPU
        model = LlasoForConditionalGeneration(config)
    model.to(dtype)
    free_memory(device)
    ids = add_llaso_tokens(tok, model.config)  # the ids the config names: the tokenizer has Llama-3's layout
    if ids != {t: ids[t] for t in model.config.token_ids}:
        raise AssertionError(f"token ids differ from {SHAPE.name}: {ids} against {model.config.token_ids}")
    return model, LlasoProcessor.from_model_config(model.config, tok)


def durations(n: int, seed: int, longest: float = 30.0) -> list[float]:
    """LLaSO-Eval-like clip lengths: log-normal, median 5 s (σ 0.8: about 4 % over 20 s), 0.5-30 s."""
    rng = np.random.default_rng(seed)
    return [float(np.clip(d, 0.5, longest)) for d in rng.lognormal(math.log(5.0), 0.8, n)]


def write_corpus(root: Path, secs: list[float], plan: Plan, name: str) -> Path:
    """Noise clips and (t,a) records with `plan`'s text lengths, as a corpus file under `root`."""
    rng = np.random.default_rng(len(secs))
    (root / "audio").mkdir(parents=True, exist_ok=True)
    recs = []
    for i, s in enumerate(secs):
        wav = root / "audio" / f"{name}-{i}.wav"
        if not wav.exists():
            sf.write(wav, (0.1 * rng.standard_normal(int(SR * s))).astype("float32"), SR)
        prompt = ("Listen and answer. " * 8)[: plan.prompt_chars]
        recs.append({"id": f"{name}-{i}", "voice": [f"audio/{wav.name}"],
                     "conversations": [{"from": "human", "value": f"{prompt}\n<audio>"},
                                       {"from": "gpt", "value": ("yes " * 16)[: plan.answer_chars]}]})  # fmt: skip
    path = root / f"{name}.json"
    path.write_text(json.dumps(recs), encoding="utf-8")
    return path


def samples_of(path: Path) -> list[Any]:
    from llaso.corpus.jsonio import iter_samples

    return list(iter_samples(path))


# ---- measuring -------------------------------------------------------------------------------------------
class Clock:
    """Wall time and peak device memory of a block (CUDA: synchronized; CPU: no memory figure)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    @contextlib.contextmanager
    def measure(self, out: dict[str, float]) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
        out["seconds"] = time.perf_counter() - t0
        if self.cuda:
            out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def free_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def step_flops(model: Any, batch: dict[str, Any], trains_lm: bool) -> float:
    """Model FLOPs of one training step (`flops_parts` summed)."""
    return sum(flops_parts(model, batch, trains_lm).values())


def flops_parts(model: Any, batch: dict[str, Any], trains_lm: bool) -> dict[str, float]:
    """Model FLOPs of one training step by part (recomputation not counted, as MFU is usually defined).

    The LLM's body forward + backward: 6 per non-embedding parameter and token (4 when the LLM is frozen,
    stage 1: its backward still runs to reach the projector), attention 6·layers·width·T² per sequence. The
    LM head runs on the labelled positions only (the trainer's loss): 6·V·h per labelled token. The
    projector: 6 per parameter and stacked frame of every window (it runs before `lean` drops the padding),
    4 for the first layer's weights (nothing flows back into the frozen frames). The frozen encoder: its
    forward only, 2 per parameter and position (the first convolution at twice the rate) plus
    4·layers·width·positions² per window. Tested against torch's FlopCounterMode (tests/test_bench_gpu.py)."""
    cfg, t, a = model.config, model.config.text_config, model.config.audio_config
    vocab_h = int(t.vocab_size) * int(t.hidden_size)
    lm_params = sum(p.numel() for p in model.language_model.parameters())
    body = lm_params - vocab_h * (1 if t.tie_word_embeddings else 2)  # the embedding and head are not body
    per = 6 if trains_lm else 4
    lengths = batch["attention_mask"].sum(1).double()
    width = int(t.num_attention_heads) * int(
        getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    )
    proj = sum(p.numel() for p in model.projector.parameters())
    first = model.projector.net[0].weight.numel()  # no gradient flows on to the frozen encoder's frames
    windows = batch["input_features"].shape[0] if "input_features" in batch else 0
    pos = int(a.max_source_positions)  # encoder positions per window: 1500 for 30 s
    tower = model.audio_tower
    # the positional table is looked up, not multiplied; the first convolution runs at twice the frame rate
    enc_params = sum(p.numel() for p in tower.parameters()) - tower.embed_positions.weight.numel()
    enc_params += tower.conv1.weight.numel()
    return {
        "lm_body": float(per * body * lengths.sum()),
        # forward 2·layers·width·T² (QKᵀ and AV over the causal half), backward twice that
        "lm_attention": float(6 * int(t.num_hidden_layers) * width * (lengths**2).sum()),
        "lm_head": float(6 * vocab_h * int((batch["labels"] != -100).sum())),
        "projector": float((6 * proj - 2 * first) * windows * (pos // int(cfg.stack_factor))),
        "encoder": float(windows * 2 * enc_params * pos),
        "encoder_attention": float(windows * 4 * int(a.encoder_layers) * int(a.d_model) * pos**2),
    }


# ---- 1. stage 2 ------------------------------------------------------------------------------------------
class Stepper:
    """Training steps through the code `llaso train` runs (TrainDataset, Collator, TrainingModule)."""

    def __init__(self, model: Any, processor: Any, root: Path, trainable: list[str], ckpt: bool, device: torch.device,
                 dtype: torch.dtype, cache: Any = None) -> None:  # fmt: skip
        from llaso.train.data import Collator
        from llaso.train.trainer import TrainingModule, set_trainable

        set_trainable(model, trainable, [])
        if ckpt:  # as the trainer does for loop.gradient_checkpointing
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        self.model, self.processor, self.root, self.device, self.dtype = model, processor, root, device, dtype
        self.cache = cache
        self.module = TrainingModule(model).train()
        model.audio_tower.eval()
        self.opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        self.collate = Collator(processor.tokenizer.pad_token_id)
        self._dataset: Any = None
        self.profile: Any = None  # the memory estimate's view of the model (stage 2)

    def batch(self, samples: list[Any]) -> dict[str, Any]:
        from llaso.train.data import TrainDataset
        from llaso.train.trainer import _to_device

        # one dataset for the whole run, the samples appended as they come: making a dataset hashes the
        # processor's settings (its 128k-entry vocabulary: a second on a CPU)
        if self._dataset is None:
            self._dataset = TrainDataset([], self.processor, audio_root=self.root, cache=self.cache)
        ds, start = self._dataset, len(self._dataset.samples)
        ds.samples.extend(samples)
        return _to_device(self.collate([ds[i] for i in range(start, len(ds))]), self.device)

    def step(self, b: dict[str, Any]) -> list[torch.Tensor] | None:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            loss, new_frames = self.module(b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return new_frames

    def close(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.opt.state.clear()


def stage2(run: Run, plan: Plan, ctx: Context) -> None:
    for mode in MODES:
        if ctx.out_of_time(f"stage 2 in {mode}"):
            return
        model, proc = ctx.build(mode)
        stepper = Stepper(
            model, proc, ctx.root, ["projector.*", "language_model.*"], True, ctx.device, ctx.dtype
        )
        stepper.profile = memory_profile(model, ctx)
        rows = {}
        for bs in plan.train_batches:
            rows[str(bs)] = timed_steps(stepper, ctx, bs, plan.train_steps, trains_lm=True)
            print(f"  stage 2 {mode} batch {bs}: {fmt_row(rows[str(bs)])}", flush=True)
        run.stage2[mode] = rows
        run.largest_batch[mode] = largest_batch(stepper, ctx, plan.fit_batches)
        print(f"  stage 2 {mode}: largest batch of 30 s clips {run.largest_batch[mode]}", flush=True)
        stepper.close()
        del stepper, model
        free_memory(ctx.device)
        ctx.save(run)


def timed_steps(stepper: Stepper, ctx: Context, bs: int, steps: int, trains_lm: bool) -> dict[str, Any]:
    """Median step time over `steps` steps (one warm-up first) on fresh LLaSO-Eval-like batches of `bs`."""
    times, tokens, audio, flops, peak, est = [], 0, 0, 0.0, 0.0, 0.0
    try:
        for k in range(steps + 1):
            b = stepper.batch(ctx.samples(bs, seed=1000 * bs + k))
            est = max(est, estimate_gib(stepper, b, max(ctx.seconds(bs, seed=1000 * bs + k))))
            m: dict[str, float] = {}
            with ctx.clock.measure(m):
                stepper.step(b)
            if k:  # the first step allocates the optimizer state and warms the kernels
                times.append(m["seconds"])
                tokens += int(b["attention_mask"].sum())
                audio += int((b["input_ids"] == stepper.model.config.audio_token_id).sum())
                flops += step_flops(stepper.model, b, trains_lm)
            peak = max(peak, m.get("peak_gib", 0.0))
    except Exception as e:
        if not is_oom(e):
            raise
        stepper.opt.zero_grad(set_to_none=True)
        free_memory(ctx.device)
        return {"oom": True}
    secs = sum(times)
    tflops = peak_tflops(ctx.device, ctx.peak)
    return {"step_s": statistics.median(times), "tokens_per_step": tokens / steps, "audio_share": audio / tokens,
            "tokens_per_s": tokens / secs, "peak_gib": peak or None, "estimate_gib": est,
            "model_tflops_per_s": flops / secs / 1e12,
            "mfu": flops / secs / (tflops * 1e12) if tflops else None}  # fmt: skip


def largest_batch(stepper: Stepper, ctx: Context, batches: tuple[int, ...]) -> dict[str, Any]:
    """The largest batch of 30 s clips (one full window each: the worst case of one window) that trains a
    step, trying `batches` in order until one runs out of memory."""
    fits, peak, est = None, None, None
    for bs in batches:
        if ctx.out_of_time("the largest-batch search"):
            break
        try:
            m: dict[str, float] = {}
            b = stepper.batch(ctx.samples(bs, seed=7, longest=True))
            with ctx.clock.measure(m):
                stepper.step(b)
            fits, peak, est = bs, m.get("peak_gib"), estimate_gib(stepper, b, 30.0)
        except Exception as e:
            if not is_oom(e):
                raise
            stepper.opt.zero_grad(set_to_none=True)
            free_memory(ctx.device)
            return {"fits": fits, "peak_gib": peak, "estimate_gib": est, "oom_at": bs}
    return {"fits": fits, "peak_gib": peak, "estimate_gib": est, "oom_at": None}


def memory_profile(model: Any, ctx: Context) -> Any:
    """What `llaso train --estimate-memory` reads from this model, prepared as the stage-2 run here is."""
    from llaso.train.config import load_config
    from llaso.train.memory import profile_model

    cfg = load_config(None, ["model.tiny={seed: 0}", "data.train=[unused.json]", "loop.gradient_checkpointing=true",
                             f"loop.mixed_precision={'no' if ctx.tiny else 'bf16'}",
                             f"model.dtype={str(ctx.dtype).removeprefix('torch.')}"])  # fmt: skip
    return profile_model(model, cfg, source="bench")


def estimate_gib(stepper: Stepper, b: dict[str, Any], seconds: float) -> float:
    """Our estimate of the step's peak for a batch like `b` (each sample as long as its longest clip and text)."""
    from llaso.train.memory import Workload, estimate

    audio = (b["input_ids"] == stepper.model.config.audio_token_id).sum(1)
    text = int((b["attention_mask"].sum(1) - audio).max())
    answer = int((b["labels"] != -100).sum(1).max())
    w = Workload(batch=len(audio), seconds=seconds, text_tokens=text, answer_tokens=min(answer, text))
    return float(estimate(stepper.profile, w).total) / 2**30


# ---- 2. stage 1 ------------------------------------------------------------------------------------------
def stage1(run: Run, plan: Plan, ctx: Context) -> None:
    """Projector-only steps with encoder frames from the feature cache against recomputed, alternating on
    the same batches (the cache filled by a first pass, as epoch 1 of a cached run fills it)."""
    from llaso.train.cache import FeatureCache, encoder_fingerprint
    from llaso.train.trainer import _store_frames

    if ctx.out_of_time("stage 1"):
        return
    model, proc = ctx.build("llaso-base")
    cache = FeatureCache(ctx.root / "cache", encoder_fingerprint(model, "no" if ctx.tiny else "bf16"))
    plain = Stepper(model, proc, ctx.root, ["projector.*"], False, ctx.device, ctx.dtype)
    cached = Stepper(model, proc, ctx.root, ["projector.*"], False, ctx.device, ctx.dtype, cache=cache)
    groups = [ctx.samples(plan.stage1_batch, seed=50 + k) for k in range(3)]
    for g in groups:  # fills the cache (and warms both paths)
        b = cached.batch(g)
        _store_frames(cache, b, cached.step(b) or [])
    times: dict[str, list[float]] = {"recomputed": [], "cached": []}
    for _ in range(plan.stage1_rounds):
        for g in groups:
            for name, st in (("recomputed", plain), ("cached", cached)):
                m: dict[str, float] = {}
                with ctx.clock.measure(m):
                    st.step(st.batch(g))  # data preparation included: reading frames is the point
                times[name].append(m["seconds"])
    run.stage1 = {"batch": plan.stage1_batch, "cache_hits": cache.hits,
                  **{f"{k}_step_s": statistics.median(v) for k, v in times.items()}}  # fmt: skip
    run.stage1["speedup"] = run.stage1["recomputed_step_s"] / run.stage1["cached_step_s"]
    print(f"  stage 1: {fmt_row(run.stage1)}", flush=True)
    del plain, cached, model
    free_memory(ctx.device)
    ctx.save(run)


# ---- 3. inference ----------------------------------------------------------------------------------------
def infer(run: Run, plan: Plan, ctx: Context) -> None:
    from llaso.infer.run import InferOptions, run_inference

    secs = durations(plan.infer_items, seed=3)
    data = write_corpus(ctx.root, secs, plan, "eval")
    for mode in plan.infer_modes:
        if ctx.out_of_time(f"inference in {mode}"):
            return
        model, proc = ctx.build(mode)
        model.eval()
        # a fixed answer length: random weights would otherwise stop at random
        model.generation_config.min_new_tokens = plan.new_tokens
        warm = InferOptions(batch_size=2, max_new_tokens=plan.new_tokens, audio_root=str(ctx.root), limit=2,
                            progress=False)  # fmt: skip
        run_inference(model, proc, [data], ctx.root / f"warm-{mode}", warm)  # kernels and allocator warmed
        rows, answers = {}, {}
        for bs in plan.infer_batches:
            out = ctx.root / f"pred-{mode}-{bs}"
            opts = InferOptions(batch_size=bs, max_new_tokens=plan.new_tokens, audio_root=str(ctx.root),
                                progress=False)  # fmt: skip
            m: dict[str, float] = {}
            with ctx.clock.measure(m):
                run_inference(model, proc, [data], out, opts)
            answers[bs] = [r.get("answer") for r in map(json.loads, (out / "eval.jsonl").open())]
            rows[str(bs)] = {"items_per_s": len(secs) / m["seconds"], "rtfx": sum(secs) / m["seconds"],
                             "peak_gib": m.get("peak_gib")}  # fmt: skip
            print(f"  infer {mode} batch {bs}: {fmt_row(rows[str(bs)])}", flush=True)
        first, last = plan.infer_batches[0], plan.infer_batches[-1]
        same = sum(a == b and a is not None for a, b in zip(answers[first], answers[last], strict=True))
        answered = min(sum(a is not None for a in v) for v in answers.values())
        run.infer[mode] = {"batches": rows, "items": len(secs), "audio_s": sum(secs), "new_tokens": plan.new_tokens,
                           "answered_in_every_run": answered, "same_answers": same,
                           "same_answers_of": f"batch {last} against batch {first}"}  # fmt: skip
        del model
        free_memory(ctx.device)
        ctx.save(run)


# ---- 4. serving ------------------------------------------------------------------------------------------
def serve(run: Run, plan: Plan, ctx: Context) -> None:
    """The app `llaso serve` runs, on loopback in this process, under `serve_clients` concurrent clients."""
    try:
        import uvicorn

        from llaso.serve.app import create_app
        from llaso.serve.config import ServeConfig
        from llaso.serve.engine import Engine
    except ImportError as e:  # fastapi/uvicorn not on the machine: say so, keep the other figures
        run.skipped.append(f"serve: {e}")
        return
    if ctx.out_of_time("serving"):
        return
    model, proc = ctx.build("lean")
    model.eval()
    model.generation_config.min_new_tokens = plan.new_tokens
    app = create_app(Engine(model, proc).run, ServeConfig("bench", max_batch=plan.serve_clients))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_up(port)
        bodies = [_chat_body(s, plan) for s in durations(plan.serve_requests, seed=9, longest=20.0)]
        run.serve = _load(f"http://127.0.0.1:{port}/v1/chat/completions", bodies, plan.serve_clients)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    print(f"  serve: {fmt_row(run.serve)}", flush=True)
    del model, app
    free_memory(ctx.device)
    ctx.save(run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(port: int, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2),
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not come up in {seconds} s")


def _chat_body(seconds: float, plan: Plan) -> bytes:
    buf = io.BytesIO()
    wav = 0.1 * np.random.default_rng(int(seconds * 1000)).standard_normal(int(SR * seconds))
    sf.write(buf, wav.astype("float32"), SR, format="WAV")
    audio = {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(buf.getvalue()).decode(), "format": "wav"},
    }
    content = [{"type": "text", "text": ("Listen and answer. " * 8)[: plan.prompt_chars]}, audio]
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": plan.new_tokens,
    }
    return json.dumps(body).encode()


def _load(url: str, bodies: list[bytes], clients: int) -> dict[str, Any]:
    def send(body: bytes) -> tuple[int, float]:
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                r.read()
                return r.status, time.perf_counter() - t0
        except urllib.error.HTTPError as e:
            return e.code, time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(send, bodies))
    wall = time.perf_counter() - t0
    lat = sorted(s for _, s in results)
    return {"clients": clients, "requests": len(bodies), "ok": sum(c == 200 for c, _ in results),
            "requests_per_s": len(bodies) / wall, "p50_s": lat[len(lat) // 2],
            "p95_s": lat[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)]}  # fmt: skip


# ---- 5. DeepSpeed ZeRO-2 ----------------------------------------------------------------------------------
def zero2(run: Run, plan: Plan, ctx: Context) -> None:
    """A few stage-2 steps of the tiny model under `accelerate launch` with configs/accelerate/zero2.yaml (one
    process): whether DeepSpeed runs at all with this trainer, and its losses. GPU and deepspeed only."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("deepspeed") is None or ctx.device.type != "cuda":
        run.skipped.append("zero2: needs deepspeed and a GPU")
        return
    if ctx.out_of_time("ZeRO-2"):
        return
    corpus = write_corpus(ctx.root, durations(16, seed=11), plan, "zero2")
    out = ctx.root / "zero2"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs/accelerate/zero2.yaml"), "--num_processes", "1", "-m", "llaso.cli", "train",
           "--config", str(ROOT / "configs/train/instruct-tiny.yaml"), f"data.train=[{corpus}]",
           f"data.audio_root={ctx.root}", "loop.max_steps=3", "loop.grad_accum=1", "save.steps=1000",
           f"output_dir={out}"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    log = out / "train_log.jsonl"
    steps = [r for r in map(json.loads, log.read_text().splitlines()) if "loss" in r] if log.is_file() else []
    run.zero2 = {"exit": proc.returncode, "seconds": time.perf_counter() - t0,
                 "losses": [r["loss"] for r in steps], "final_saved": (out / "final" / "config.json").is_file(),
                 "stderr_tail": proc.stderr[-2000:] if proc.returncode else ""}  # fmt: skip
    print(f"  zero2: exit {proc.returncode}, losses {run.zero2['losses']}", flush=True)
    ctx.save(run)


# ---- the run ---------------------------------------------------------------------------------------------
class Context:
    """What every section shares: device, dtype, tokenizer, the clips, the clock, the budget, the output."""

    def __init__(self, args: argparse.Namespace, root: Path, plan: Plan) -> None:
        self.device = torch.device(args.device)
        self.dtype = torch.float32 if args.tiny else torch.bfloat16
        self.tiny, self.root, self.plan, self.out = args.tiny, root, plan, Path(args.out)
        self.peak, self.deadline = args.peak_tflops, time.monotonic() + args.budget_s
        self.clock = Clock(self.device)
        self.tokenizer = llama3_sized_tokenizer()
        self._corpora: dict[tuple[int, int, bool], list[Any]] = {}

    def build(self, mode: str) -> tuple[Any, Any]:
        return build(mode, self.tiny, self.device, self.dtype, self.tokenizer)

    def seconds(self, n: int, seed: int, longest: bool = False) -> list[float]:
        return [30.0] * n if longest else durations(n, seed)

    def samples(self, n: int, seed: int, longest: bool = False) -> list[Any]:
        key = (n, seed, longest)
        if key not in self._corpora:
            secs = self.seconds(n, seed, longest)
            self._corpora[key] = samples_of(
                write_corpus(self.root, secs, self.plan, f"train-{n}-{seed}-{longest}")
            )
        return self._corpora[key]

    def out_of_time(self, what: str) -> bool:
        late = time.monotonic() > self.deadline
        if late:
            print(f"  budget spent: {what} not run", flush=True)
        return late

    def save(self, run: Run) -> None:
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        tmp.write_text(json.dumps(asdict(run), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.out)


SECTIONS: dict[str, Callable[[Run, Plan, Context], None]] = {
    "stage2": stage2, "stage1": stage1, "infer": infer, "serve": serve, "zero2": zero2,
}  # fmt: skip


def versions() -> dict[str, str]:
    import transformers

    v = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": str(torch.version.cuda),
    }
    if torch.cuda.is_available():
        v["gpu"] = torch.cuda.get_device_name(0)
    return v


def table(run: Run) -> str:
    """The figures as one Markdown table per section (what BENCHMARKS.md takes)."""

    def num(v: Any, spec: str = ".3g") -> str:
        return "—" if v is None else format(v, spec) if isinstance(v, float) else str(v)

    out = [
        "| stage 2 | batch | step s | tokens/s | peak GiB | estimate GiB | MFU |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, rows in run.stage2.items():
        for bs, r in rows.items():
            out.append(f"| {mode} | {bs} | " + " | ".join(num(r.get(k)) for k in
                       ("step_s", "tokens_per_s", "peak_gib", "estimate_gib", "mfu")) + " |")  # fmt: skip
    for mode, r in run.largest_batch.items():
        out.append(f"| {mode}: largest batch of 30 s clips | {num(r['fits'])} | | | {num(r['peak_gib'])} | "
                   f"{num(r['estimate_gib'])} | |")  # fmt: skip
    if run.stage1:
        out += ["", f"stage 1, batch {run.stage1['batch']}: recomputed {num(run.stage1['recomputed_step_s'])} s, "
                    f"cached {num(run.stage1['cached_step_s'])} s per step ({num(run.stage1['speedup'])}x)"]  # fmt: skip
    if run.infer:
        out += ["", "| infer | batch | items/s | RTFx | same answers as batch 1 |", "|---|---|---|---|---|"]
        for mode, r in run.infer.items():
            for bs, b in r["batches"].items():
                out.append(f"| {mode} | {bs} | {num(b['items_per_s'])} | {num(b['rtfx'])} | "
                           f"{r['same_answers']}/{r['items']} |")  # fmt: skip
    if run.serve:
        sv = run.serve
        out += ["", f"serve: {sv['clients']} clients, {sv['ok']}/{sv['requests']} answered, "
                    f"{num(sv['requests_per_s'])} requests/s, p95 {num(sv['p95_s'])} s"]  # fmt: skip
    return "\n".join(out + [f"skipped: {x}" for x in run.skipped])


def fmt_row(row: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="the shrunken shape on the CPU (the test suite's run)")
    p.add_argument("--out", default="gpu-figures.json", help="the JSON file of figures")
    p.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {','.join(SECTIONS)}")
    p.add_argument("--budget-s", type=float, default=420.0, help="start no new work after this many seconds")
    p.add_argument("--peak-tflops", type=float, default=None, help="the chip's dense bf16 peak, for MFU")
    args = p.parse_args(argv)
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {list(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --tiny on a CPU")
    plan = Plan.tiny() if args.tiny else Plan()
    with tempfile.TemporaryDirectory(prefix="llaso-gpu-bench-") as tmp:
        ctx = Context(args, Path(tmp), plan)
        run = Run(str(ctx.device), str(ctx.dtype), args.tiny, versions(), asdict(plan))
        for name in args.sections.split(","):
            print(f"{name}:", flush=True)
            t0 = time.perf_counter()
            SECTIONS[name](run, plan, ctx)
            run.section_s[name] = time.perf_counter() - t0
        ctx.save(run)
    print("\n" + table(run) + "\n")
    print(f"figures in {args.out} ({time.time() - run.started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
