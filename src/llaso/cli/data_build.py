"""`llaso data build`: turn a labelled audio corpus into LLaSO samples for its tasks."""

from __future__ import annotations

import argparse
from pathlib import Path

from llaso.builders.build import AUDIO_CHECKS, BuildOptions, build_corpus, manifest_source
from llaso.builders.sources import ADAPTERS
from llaso.cli._shared import add_no_progress, add_seed, add_workers, show_progress, usage_error
from llaso.utils.config import from_dict

DESCRIPTION = """\
Build LLaSO samples from a labelled audio corpus read in its own published layout (see `--list` and
docs/corpus-building.md). Each item gets a modality configuration drawn with --modalities (ASR: always
(t,a), into the Align set); a seeded Eval split, stratified by task x configuration, is held out: it shares
no audio file with the training sets, no speaker for gender, age and accent, no dialogue for SV and no
transcript for ASR and PR (the data card says per task what it held out, measured); (a) records get a
spoken instruction (espeak-ng TTS) joined with the input audio. Missing or unreadable source files are listed in DIR/build_report.json and the rest is
built. DIR also gets a data card (README.md, stats/) and a link DIR/<corpus> -> ROOT, so DIR is the audio
root of the records.
"""

EXAMPLES = """\
  llaso data build vctk --root /data/VCTK-Corpus-0.92 --out built/vctk
  llaso data build cremad --root /data/CREMA-D --task ER --task EIE --out built/cremad --seed 1
  llaso data build common-voice --root /data/cv-corpus-17.0/en --limit 20000 --out built/cv \\
      --modalities text_audio=0.8,pure_audio=0.2 --eval-per-stratum 100
  llaso data build my_labels.csv --out built/mine       # a CSV/TSV manifest: audio,task,answer,...
  llaso data build --list
"""

MODALITIES_HELP = (
    "relative weights of the configurations, e.g. text_audio=0.8,pure_audio=0.2 "
    "(default: text_audio 0.6, audio_text 0.2, pure_audio 0.2; ASR is always text_audio)"
)
AUDIO_CHECK_HELP = "full: decode every source file; exists: only check that it exists; off: trust the corpus"
TASK_HELP = "task to build (repeat, or comma-separated; default: every task of the corpus)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    source_help = "corpus name (see --list), or a CSV/TSV manifest file"
    p.add_argument("source", nargs="?", metavar="SOURCE", help=source_help)
    p.add_argument("--root", metavar="PATH", help="the corpus folder (for a manifest: the file)")
    p.add_argument("--task", action="append", metavar="ABBR", help=TASK_HELP)
    p.add_argument("--out", metavar="DIR", help="output folder")
    p.add_argument("--modalities", metavar="SPEC", help=MODALITIES_HELP)
    eval_help = "eval share per stratum (at least 1 item in a stratum of 2 or more)"
    p.add_argument("--eval-fraction", type=float, default=0.1, metavar="F", help=eval_help)
    p.add_argument("--eval-per-stratum", type=int, metavar="N", help="at most N eval items per stratum")
    add_seed(p)
    p.add_argument("--limit", type=int, metavar="N", help="at most N items per task (a seeded sample)")
    p.add_argument("--audio-check", choices=AUDIO_CHECKS, default="full", help=AUDIO_CHECK_HELP)
    add_workers(p, "parallel audio checks (default: CPUs)")
    p.add_argument("--no-link", action="store_true", help="no DIR/<corpus> link; paths relative to ROOT")
    p.add_argument("--list", action="store_true", help="list the corpora, their tasks and layouts")
    add_no_progress(p, "no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, a in ADAPTERS.items():
            print(f"{name:<15} {', '.join(a.tasks) or 'any task'}\n{'':<15} {a.layout}")
        return 0
    if not args.source or not args.out:
        return usage_error("SOURCE and --out are required (or --list)")
    source, root = manifest_source(args.source, args.root)
    if root is None:
        return usage_error("--root is required")
    flags = {
        "tasks": [t for arg in args.task or [] for t in arg.split(",") if t.strip()] or None,
        "ratios": args.modalities,
        "eval_fraction": args.eval_fraction,
        "eval_per_stratum": args.eval_per_stratum,
        "seed": args.seed,
        "limit": args.limit,
        "audio_check": args.audio_check,
        "workers": args.workers,
        "progress": show_progress(args),
        "link": not args.no_link,
    }
    try:
        report = build_corpus(source, root, args.out, from_dict(BuildOptions, flags, ""))
    except (KeyError, ValueError, LookupError, FileNotFoundError, FileExistsError) as e:
        return usage_error(str(e.args[0] if isinstance(e, KeyError) else e))
    print(report.summary())
    print(f"wrote {Path(args.out) / 'build_report.json'} and {Path(args.out) / 'README.md'}")
    return 0 if report.ok else 1
