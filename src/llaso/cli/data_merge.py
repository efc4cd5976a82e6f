"""`llaso data merge`: many corpus files (or the release's modality folders) into one training file."""

from __future__ import annotations

import argparse

from llaso.cli._shared import add_inputs, add_quiet, add_seed, key_value
from llaso.corpus.merge import MergeOptions, merge, write_merge_report
from llaso.utils.config import from_dict

DESCRIPTION = """\
Concatenate LLaSO corpus files (JSON lists or JSONL) or whole folders, such as the release's modality
folders audio_text/, pure_audio/ and text_audio/, into one file for training.

Records keep every field. The task (from the file name) and the modality configuration (from the folder or
file suffix) are written into each record as `task` and `modality`, because the merged file no longer
carries that information (turn off with --no-annotate). Rules of --ratio/--cap apply to a task when KEY is
a task abbreviation, otherwise to the files whose name matches KEY as a glob. A ratio above 1 repeats records.
Invalid records (schema errors, <audio> count different from the voice paths) stop the merge, naming the
file and record, unless --skip-invalid counts and skips them. The output is written atomically."""

EXAMPLES = """\
  llaso data merge LLaSO-Instruct/audio_text LLaSO-Instruct/pure_audio LLaSO-Instruct/text_audio \\
      -o stage2_train.json --shuffle --seed 0
  llaso data merge corpus/ -o small.jsonl --ratio ASR=0.1 --cap 'vctk_*=5000' --dedup content
  llaso data merge a.json b.jsonl -o all.json --skip-invalid"""

DEDUP_HELP = "drop repeated records: by id/index, or by content (voice + conversations)"
ANNOTATE_HELP = "do not add `task`/`modality` fields derived from file names and folders"
RATIO_HELP = (
    "keep a fraction R of a task (KEY = abbreviation) or of matching files (KEY = glob); "
    "R > 1 repeats records; repeatable"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_inputs(p, "JSON/JSONL files or folders (searched recursively)")
    p.add_argument(
        "-o", "--output", required=True, help="output file (.json = one JSON list, .jsonl = lines)"
    )
    p.add_argument("--format", choices=["json", "jsonl"], help="output format (default: from the suffix)")
    p.add_argument("--shuffle", action="store_true", help="shuffle the output (bounded memory)")
    add_seed(p, "random seed for --shuffle, --ratio and --cap (default 0)")
    p.add_argument(
        "--ratio", action="append", default=[], type=key_value(float), metavar="KEY=R", help=RATIO_HELP
    )
    cap_help = "keep at most N records of a task or of matching files; repeatable"
    p.add_argument("--cap", action="append", default=[], type=key_value(int), metavar="KEY=N", help=cap_help)
    p.add_argument("--dedup", choices=["none", "id", "content"], default="none", help=DEDUP_HELP)
    p.add_argument("--skip-invalid", action="store_true", help="skip invalid records (counted and reported)")
    p.add_argument("--no-annotate", dest="annotate", action="store_false", help=ANNOTATE_HELP)
    p.add_argument("--shuffle-buffer-mb", type=float, default=64.0, help="memory for one shuffle bucket")
    p.add_argument("--report", help="also write the merge summary as JSON to this path")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    flags = {
        "shuffle": args.shuffle,
        "seed": args.seed,
        "ratios": dict(args.ratio),
        "caps": dict(args.cap),
        "dedup": args.dedup,
        "skip_invalid": args.skip_invalid,
        "annotate": args.annotate,
        "fmt": args.format,
        "shuffle_buffer_mb": args.shuffle_buffer_mb,
        "progress": not args.quiet,
    }
    opts = from_dict(MergeOptions, flags, "")
    report = merge(args.inputs, args.output, opts)
    print(report.summary())
    if args.report:
        write_merge_report(report, args.report)
    return 0
