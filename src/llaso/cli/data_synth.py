"""`llaso data synth`: a complete LLaSO-style corpus made offline, with labels true by construction."""

from __future__ import annotations

import argparse
import sys

from llaso.builders.synth import (
    DEFAULT_WORKERS,
    FREE_SHARE,
    SIZES,
    TASKS,
    VOCABULARIES,
    SynthOptions,
    synthesize,
)
from llaso.builders.tts import DEFAULT_BACKEND, TTSError
from llaso.cli._shared import add_no_progress, add_seed, add_workers
from llaso.utils.config import from_dict

DESCRIPTION = (
    "Build a synthetic LLaSO corpus offline (espeak-ng/flite/festival speech and synthesized notes; labels "
    "true by construction): 16 tasks, three modality configurations, train/eval split, data card."
)
EXAMPLES = """\
  llaso data synth --out data/synth --size tiny             # 150 records in seconds: a smoke test
  llaso data synth --out data/synth --size small            # ~3,900 training records in a few minutes
  llaso data synth --out data/synth --size medium --workers 2 --seed 1
  llaso data synth --out data/synth --size small --tts flite   # flite voices for generic speech
  llaso data synth --out data/six --tasks ASR,AQA,AC,IC,SCR,IP --eval-items 64   # a task subset, 64 eval items per stratum
"""

OUT_HELP = "output folder (created; an unfinished build there is continued)"
SIZE_HELP = (
    "tiny: 5 training items per task, 2 eval items per stratum (seconds; smoke tests); small: ~200 training "
    "items per task (a few minutes on 2 cores); medium: ~1000"
)
WORKERS_HELP = (
    "parallel synthesis threads; the work is in TTS subprocesses, so 2 per core pays "
    f"(default {DEFAULT_WORKERS})"
)
TTS_HELP = (
    "backend for generic speech and spoken instructions (accents, variants and phonemes always use espeak-ng)"
)
FREE_SHARE_HELP = (
    "share of free (open-vocabulary) sentences among the spoken texts, the rest templated over a "
    f"closed vocabulary; 0 gives a closed-vocabulary corpus (default {FREE_SHARE})"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.add_argument("--size", default="small", choices=list(SIZES), help=SIZE_HELP)
    add_seed(p, "everything (texts, voices, notes, splits) follows it")
    add_workers(p, WORKERS_HELP, metavar=None, default=DEFAULT_WORKERS)
    tts_choices = ["espeak-ng", "flite", "festival"]
    p.add_argument("--tts", default=DEFAULT_BACKEND, choices=tts_choices, help=TTS_HELP)
    p.add_argument("--free-share", type=float, default=FREE_SHARE, help=FREE_SHARE_HELP)
    p.add_argument("--tasks", type=_task_list, default=list(TASKS), help=TASKS_HELP)
    for what, help_ in (
        ("train", "training items per task"),
        ("eval", "eval items per task and modality configuration (stratum)"),
        ("align", "stage-1 ASR alignment items"),
    ):
        p.add_argument(
            f"--{what}-items", type=int, default=None, metavar="N", help=f"{help_} (default: the size's)"
        )
    p.add_argument("--vocabulary", default="full", choices=list(VOCABULARIES), help=VOCABULARY_HELP)
    p.add_argument("--no-stats", action="store_true", help="skip stats/ and the donut")
    add_no_progress(p, "no progress bars")


VOCABULARY_HELP = (
    "closed vocabulary of the templated sentences: full (about 135 words) or small (about 55: more examples "
    "per word, quicker to learn)"
)
TASKS_HELP = f"comma-separated tasks to make (default: all {len(TASKS)}: {','.join(TASKS)})"


def _task_list(text: str) -> list[str]:
    tasks = [t.strip().upper() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(
            f"not synthesizable: {', '.join(unknown) or '(none given)'}; choose from {','.join(TASKS)}"
        )
    return list(dict.fromkeys(tasks))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    flags = {
        "size": args.size,
        "seed": args.seed,
        "free_share": args.free_share,
        "workers": max(1, args.workers),
        "tts": args.tts,
        "tasks": args.tasks,
        "train_items": args.train_items,
        "eval_items": args.eval_items,
        "align_items": args.align_items,
        "vocabulary": args.vocabulary,
        "progress": not args.no_progress,
        "stats": not args.no_stats,
    }
    try:
        report = synthesize(args.out, from_dict(SynthOptions, flags, ""), log=_log)
    except TTSError as e:
        _log(f"error: {e}")
        return 2
    except ValueError as e:
        _log(f"error: llaso data synth: {e}")
        return 2
    print(
        f"{report.out}: {report.total_records:,} records, {len(report.files)} files, "
        f"{sum(report.skipped.values())} skipped, {report.wall_seconds:.1f} s (see README.md and synth_report.yaml)"
    )
    return 0
