"""`llaso data validate`: check corpus files before they reach training or evaluation."""

from __future__ import annotations

import argparse
from pathlib import Path

from llaso.cli._shared import (
    add_audio_root,
    add_inputs,
    add_no_progress,
    add_workers,
    check_workers,
    show_progress,
    usage_error,
)
from llaso.corpus.validate import (
    DEFAULT_MAX_DURATION,
    DEFAULT_MAX_PROBLEMS,
    ValidateOptions,
    validate_corpus,
    write_validation_report,
)
from llaso.utils.config import from_dict

DESCRIPTION = """\
Check LLaSO corpus files (JSON lists or JSONL; folders are searched for them) and report every problem with
its file and record index:

  errors    malformed JSON (with the line), records that do not follow the schema (e.g. no
            'conversations'), <audio> placeholders that do not match the voice paths, no gpt turn,
            empty voice paths, an explicit 'task' not in the registry, duplicate ids within a file;
            with --check-audio: audio paths escaping --audio-root, missing, undecodable, truncated,
            empty and over-long (> --max-duration) audio
  warnings  records whose task cannot be told (no 'task' field, file name unknown: one warning per
            file), records without <audio> (no modality configuration), ids repeated across files
            (LLaSO ids are per source, so this is common and harmless in LLaSO-Eval), silent audio
  info      audio not at 16 kHz (it is resampled when loaded)

Exit code 0 when there are no errors (warnings too fail with --strict), 1 otherwise, 2 on bad usage.
"""

EXAMPLES = """\
  llaso data validate LLaSO-Eval/
  llaso data validate train.json --check-audio --audio-root /data/llaso --workers 16 --report report.json
  llaso data validate merged/stage2_train.json --strict --report preflight.json
"""

AUDIO_ROOT_HELP = (
    "folder the voice paths are relative to (implies --check-audio); paths leaving it are errors"
)
MAX_DURATION_HELP = (
    f"longest acceptable audio in seconds (default {DEFAULT_MAX_DURATION:g} = 20 x 30 s windows)"
)
MAX_PROBLEMS_HELP = f"problems kept in detail for the report (default {DEFAULT_MAX_PROBLEMS:,}; 0 = all); counts are always exact"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_inputs(p)
    p.add_argument("--check-audio", action="store_true", help="probe every audio file (decode it fully)")
    add_audio_root(p, AUDIO_ROOT_HELP)
    add_workers(p)
    p.add_argument(
        "--max-duration", type=float, default=DEFAULT_MAX_DURATION, metavar="SEC", help=MAX_DURATION_HELP
    )
    p.add_argument("--report", metavar="PATH", help="write every problem, the counts and audio stats as JSON")
    p.add_argument("--strict", action="store_true", help="warnings fail too (exit code 1)")
    p.add_argument("--show", type=int, default=20, metavar="N", help="problems listed on stdout (default 20)")
    p.add_argument(
        "--max-problems", type=int, default=DEFAULT_MAX_PROBLEMS, metavar="N", help=MAX_PROBLEMS_HELP
    )
    add_no_progress(p)


def run(args: argparse.Namespace) -> int:
    bad_workers = check_workers(args)
    if bad_workers is not None:
        return bad_workers
    if args.audio_root is not None and not Path(args.audio_root).is_dir():
        return usage_error(f"--audio-root {args.audio_root} is not a folder")
    flags = {
        "check_audio": bool(args.check_audio or args.audio_root),
        "audio_root": args.audio_root,
        "workers": args.workers,
        "max_duration": args.max_duration if args.max_duration > 0 else None,
        "progress": show_progress(args),
        "max_problems": args.max_problems if args.max_problems > 0 else None,
    }
    report = validate_corpus(args.inputs, from_dict(ValidateOptions, flags, ""))
    if not report.files:
        return usage_error("no .json/.jsonl files found in the inputs")
    print(report.summary(max_shown=args.show))
    if args.report:
        write_validation_report(report, args.report, strict=args.strict)
        print(f"report: {args.report}")
    passed = report.passed(args.strict)
    verdict = "OK" if passed else ("FAILED (warnings, --strict)" if report.ok else "FAILED")
    print(f"result: {verdict}")
    return 0 if passed else 1
