"""`llaso train`: stage 1 (align) or stage 2 (instruct) from a YAML config plus `key=value` overrides."""

from __future__ import annotations

import argparse
import logging
import os

from llaso.train.config import dump_config, load_config

DESCRIPTION = """\
Train a LLaSO model with the original two-stage recipe: `align` (stage 1, only the projector trains)
then `instruct` (stage 2, language model + projector, from the base LLM plus the stage-1 projector).
Settings come from a YAML config (configs/train/*.yaml) and KEY=VALUE overrides (dotted keys:
optim.lr=1e-4, loop.max_steps=10, data.train=[a.json,b.json]). Rerunning the same command resumes from
the newest checkpoint in the output folder that verifies (a damaged one is skipped, named), at the same
step and data order. Runs unchanged
under `accelerate launch` (DDP, FSDP, DeepSpeed; configs/accelerate/) and torchrun."""

EXAMPLES = """\
  llaso data synth --out data/synth --size tiny
  llaso train --config configs/train/align-tiny.yaml --out runs/align-tiny
  llaso train --config configs/train/instruct-tiny.yaml --out runs/instruct-tiny \\
      model.projector=runs/align-tiny/final/mm_audio_aligner.bin
  llaso train --config configs/train/align.yaml model.encoder=/models/whisper-large-v3 \\
      model.language_model=/models/Llama-3.2-3B-Instruct data.train=[LLaSO-Align/ASR_stage1_train.json]
  accelerate launch --config_file configs/accelerate/ddp.yaml -m llaso.cli train --config configs/train/instruct.yaml
  llaso train --config configs/train/instruct.yaml --print-config optim.lr=1e-5
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="YAML training config (configs/train/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (dotted keys)")
    p.add_argument("--out", help="output folder (same as output_dir=...)")
    p.add_argument("--skip-preflight", action="store_true", help="do not validate the training data first")
    p.add_argument("--no-resume", action="store_true", help="start from step 0 even if checkpoints exist")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"output_dir={args.out}")
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
