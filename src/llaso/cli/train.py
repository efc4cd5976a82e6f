"""`llaso train`: stage 1 (align) or stage 2 (instruct) from a YAML config plus `key=value` overrides."""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass

from llaso.cli._shared import usage_error
from llaso.train.config import dump_config, load_config
from llaso.train.memory import SHARDS, parse_size  # light: it imports torch only to build the model

DESCRIPTION = """\
Train a LLaSO model with the original two-stage recipe: `align` (stage 1, only the projector trains)
then `instruct` (stage 2, language model + projector, from the base LLM plus the stage-1 projector).
Settings come from a YAML config (configs/train/*.yaml) and KEY=VALUE overrides (dotted keys:
optim.lr=1e-4, loop.max_steps=10, data.train=[a.json,b.json]). Rerunning the same command resumes from
the newest checkpoint in the output folder that verifies (a damaged one is skipped, named), at the same
step and data order. Runs unchanged
under `accelerate launch` (DDP, FSDP, DeepSpeed; configs/accelerate/) and torchrun.

--estimate-memory trains nothing: it builds the run's model on the meta device (no weights, no GPU, no
download; the shape from --shape or the config's model folders' config.json) and prints the memory one
training step needs per device (parameters, gradients, AdamW state, activations at the peak), and with
--gpu-memory the largest per-device batch that fits, in each audio token mode. An analytic estimate: the
CUDA context, allocator fragmentation and NCCL buffers come on top (docs/training.md)."""

EXAMPLES = """\
  llaso data synth --out data/synth --size tiny
  llaso train --config configs/train/align-tiny.yaml --out runs/align-tiny
  llaso train --config configs/train/instruct-tiny.yaml --out runs/instruct-tiny \\
      model.projector=runs/align-tiny/final/mm_audio_aligner.bin
  llaso train --config configs/train/align.yaml model.encoder=/models/whisper-large-v3 \\
      model.language_model=/models/Llama-3.2-3B-Instruct data.train=[LLaSO-Align/ASR_stage1_train.json]
  accelerate launch --config_file configs/accelerate/ddp.yaml -m llaso.cli train --config configs/train/instruct.yaml
  llaso train --config configs/train/instruct.yaml --print-config optim.lr=1e-5
  llaso train --config configs/train/instruct.yaml --estimate-memory --shape configs/model/llaso-base.yaml \\
      --gpu-memory 80GiB
  llaso train --config configs/train/instruct.yaml --estimate-memory --shape configs/model/llaso-base.yaml \\
      --batch 8 --seconds 10,30 --world-size 8 --shard zero2 --json
"""

ESTIMATE_FLAGS = (
    "shape",
    "batch",
    "seconds",
    "text_tokens",
    "answer_tokens",
    "world_size",
    "shard",
    "gpu_memory",
    "json",
)
DEFAULT_SECONDS = 30.0
DEFAULT_TEXT_TOKENS = 256


@dataclass(frozen=True)
class EstimateOptions:
    """What --estimate-memory was asked for, typed."""

    config: str
    overrides: tuple[str, ...]
    shape: str | None
    batch: int | None  # None: loop.per_device_batch_size
    seconds: tuple[float, ...]
    text_tokens: int
    answer_tokens: int | None
    world_size: int
    shard: str
    gpu_memory: int | None
    json: bool


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="YAML training config (configs/train/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (dotted keys)")
    p.add_argument("--out", help="output folder (same as output_dir=...)")
    p.add_argument("--skip-preflight", action="store_true", help="do not validate the training data first")
    p.add_argument("--no-resume", action="store_true", help="start from step 0 even if checkpoints exist")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_estimate_arguments(p.add_argument_group("memory estimate (no training)"))


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _durations(text: str) -> tuple[float, ...]:
    # a comma list, not nargs="+": that would swallow the KEY=VALUE overrides after it
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds, e.g. 30 or 5,10,30") from None


def add_estimate_arguments(g: argparse._ArgumentGroup) -> None:
    # Defaults are None so that run() can tell these flags were given without --estimate-memory;
    # _estimate_options fills in the real defaults.
    g.add_argument("--estimate-memory", action="store_true", help="print the memory per device and exit")
    g.add_argument(
        "--shape",
        metavar="YAML",
        help="model shape (configs/model/llaso-base.yaml); default: the config's model "
        "(its folders' config.json, or model.tiny)",
    )
    g.add_argument(
        "--batch", type=int, metavar="N", help="per-device batch (default: loop.per_device_batch_size)"
    )
    g.add_argument(
        "--seconds",
        type=_durations,
        metavar="S[,S...]",
        help=f"audio per sample, one duration or a comma list (default: {DEFAULT_SECONDS:g}, one full window)",
    )
    g.add_argument(
        "--text-tokens",
        type=int,
        metavar="N",
        help=f"text tokens per sample, prompt + answer (default: {DEFAULT_TEXT_TOKENS})",
    )
    g.add_argument(
        "--answer-tokens", type=int, metavar="N", help="labelled tokens per sample (default: all text tokens)"
    )
    g.add_argument("--world-size", type=int, metavar="N", help="processes (default: 1)")
    g.add_argument(
        "--shard",
        choices=SHARDS,
        help="how the processes share the model (default: none, i.e. DDP when --world-size > 1)",
    )
    g.add_argument(
        "--gpu-memory",
        type=_size,
        metavar="SIZE",
        help="GPU memory (80GiB, 80GB, 81920MiB): also print the largest batch that fits",
    )
    g.add_argument("--json", action="store_true", help="machine-readable output (with --estimate-memory)")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"output_dir={args.out}")
    if args.estimate_memory:
        return _estimate(args, overrides)
    given = [f"--{k.replace('_', '-')}" for k in ESTIMATE_FLAGS if getattr(args, k) not in (None, False)]
    if given:
        return usage_error(f"{', '.join(given)} only go(es) with --estimate-memory")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    # torch, transformers and accelerate load only to train: --print-config and flag errors stay fast
    from llaso.train.trainer import train

    result = train(cfg, skip_preflight=args.skip_preflight, resume=not args.no_resume)
    logging.getLogger(__name__).info("%s", result.log_line())
    if int(os.environ.get("RANK", "0")) == 0:
        print(result.short_line())
    return 0


def _estimate_options(args: argparse.Namespace, overrides: list[str]) -> EstimateOptions | str:
    """The typed options, or what is wrong with the flags."""
    text_tokens = DEFAULT_TEXT_TOKENS if args.text_tokens is None else args.text_tokens
    seconds = tuple(args.seconds or (DEFAULT_SECONDS,))
    for flag, value, least in (
        ("--batch", args.batch, 1),
        ("--text-tokens", text_tokens, 1),
        ("--answer-tokens", args.answer_tokens, 0),
        ("--world-size", args.world_size, 1),
    ):
        if value is not None and value < least:
            return f"{flag} must be at least {least}"
    if args.answer_tokens is not None and args.answer_tokens > text_tokens:
        return "--answer-tokens cannot exceed --text-tokens"
    if any(x < 0 for x in seconds):
        return "--seconds must not be negative"
    return EstimateOptions(
        config=args.config,
        overrides=tuple(overrides),
        shape=args.shape,
        batch=args.batch,
        seconds=seconds,
        text_tokens=text_tokens,
        answer_tokens=args.answer_tokens,
        world_size=args.world_size or 1,
        shard=args.shard or "none",
        gpu_memory=args.gpu_memory,
        json=args.json,
    )


def _estimate(args: argparse.Namespace, overrides: list[str]) -> int:
    opts = _estimate_options(args, overrides)
    if isinstance(opts, str):
        return usage_error(opts)
    from llaso.train import memory

    cfg = memory.load_train_config(opts.config, list(opts.overrides))
    profile = memory.profile_run(cfg, opts.shape, origin=opts.config)
    report = memory.estimate_report(
        profile,
        batch=opts.batch or cfg.loop.per_device_batch_size,
        seconds=opts.seconds,
        text_tokens=opts.text_tokens,
        answer_tokens=opts.answer_tokens,
        parallel=memory.Parallel(opts.world_size, opts.shard),
        gpu_memory=opts.gpu_memory,
    )
    print(json.dumps(report.to_dict(), indent=2) if opts.json else report.render())
    return 0
