"""`llaso data stats`: how a corpus splits into tasks, modality configurations and categories."""

from __future__ import annotations

import argparse
import json
import sys

from llaso.cli._shared import (
    add_audio_root,
    add_inputs,
    add_json,
    add_no_progress,
    add_workers,
    check_workers,
    show_progress,
    usage_error,
)
from llaso.corpus.stats import StatsOptions, corpus_stats, write_stats
from llaso.utils.config import from_dict

DESCRIPTION = """\
Count the records of LLaSO corpus files (JSON lists or JSONL; folders are searched) per task x modality
configuration x category and print them as a table. The task comes from the record's 'task' field or the
file name, the modality from the 'modality' field, the file's suffix/folder or the position of <audio>.

--durations probes every audio file (resolved against --audio-root) and adds the hours of audio per task;
a file it cannot use (missing, outside --audio-root, not a regular file, undecodable, NaN samples, empty)
is counted as failed with its reason, and silent ones apart (the check `validate` and `infer` make).
--out DIR writes stats.json and donut.png (a nested donut: modality, category, task).
"""

EXAMPLES = """\
  llaso data stats results/LLaSO-Base/*.json
  llaso data stats LLaSO-Instruct/ --out stats-out
  llaso data stats train.json --audio-root /data/llaso --durations --workers 16 --out stats-out
  llaso data stats LLaSO-Eval/ --json > stats.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_inputs(p)
    p.add_argument("--out", metavar="DIR", help="write stats.json and donut.png here")
    add_audio_root(p)
    p.add_argument("--durations", action="store_true", help="probe the audio and report hours per task")
    add_workers(p)
    add_json(p, "print the statistics as JSON instead of a table")
    add_no_progress(p)


def run(args: argparse.Namespace) -> int:
    bad_workers = check_workers(args)
    if bad_workers is not None:
        return bad_workers
    flags = {
        "audio_root": args.audio_root,
        "durations": args.durations,
        "workers": args.workers,
        "progress": show_progress(args),
    }
    stats = corpus_stats(args.inputs, from_dict(StatsOptions, flags, ""))
    if not stats.files:
        return usage_error("no .json/.jsonl files found in the inputs")
    for err in stats.errors:
        print(f"warning: {err}", file=sys.stderr)
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(stats.table())
    if args.out:
        json_path, donut_path = write_stats(stats, args.out)
        print(f"wrote {json_path} and {donut_path}", file=sys.stderr if args.json else sys.stdout)
    return 1 if stats.errors else 0
