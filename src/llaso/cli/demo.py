"""`llaso demo`: the flags of the end-to-end demo; the demo itself is `llaso.demo`."""

from __future__ import annotations

import argparse
import sys

from llaso.demo import steps  # not `run_demo` itself: the command table would take it for `run`
from llaso.demo.profile import DEFAULT_PROFILE, DemoError, DemoOptions
from llaso.utils.config import from_dict

DESCRIPTION = """\
Train and evaluate LLaSO-Nano end to end on one CPU (`make demo`).

LLaSO-Nano is the LLaSO recipe at the smallest real scale that trains here: the real Whisper tiny.en encoder
(frozen, cut to 10 s windows, its features cached), an MLP projector over 5 stacked frames (1920 -> 576 -> 576)
and SmolLM2-135M-Instruct. The demo runs every part of the stack in order, under `--out` (default ./demo-run):

  1. check      the Debian speech tools and the weight packages (one message naming the `make setup` step)
  2. weights    `llaso weights import` of Whisper tiny.en and SmolLM2-135M, plus the 10 s encoder copy
  3. corpus     `llaso data synth` (the profile's tasks and sizes; --quick: synth's test size)
  4. align      stage 1, ASR alignment (the projector, and LoRA adapters where the profile says), with the
                encoder-feature cache
  5. instruct   stage 2, the profile's tasks in their modality configurations (LoRA on SmolLM2)
  6. infer      `llaso infer` on the held-out eval split and on real speech (the LibriVox utterances of the
                pocketsphinx 5.1.1 source package)
  7. eval       `llaso eval` (results.json, results.md, report.html with the radar chart), the targets and
                the demo report (summary.md, summary.json, report.html)

Each step writes a done-marker (`OUT/<profile>/state/<step>.json`, with its wall time) when it ends, and the
tools resume on their own inside a step (weights skip complete folders, synth reuses its files, training
resumes from its newest checkpoint, inference per file and per batch): rerunning the command after an
interruption continues where it stopped.

Profiles (configs/demo/NAME.yaml, --profile NAME): `default` (what `make demo` runs: six tasks over the three
categories, 64 eval items per task and configuration, target 20 minutes), `all` (all 16 synthetic tasks in
the three configurations, target 60 minutes), `quick` (= --quick: the pipeline on a tiny corpus, the CI
test). Each profile works in OUT/NAME; the summary says which targets were met."""

EXAMPLES = (
    "  llaso demo                       # the default profile into ./demo-run (about 20 minutes on 2 cores)\n"
    "  llaso demo --profile all         # all 16 synthetic tasks, three configurations (about an hour)\n"
    "  llaso demo --quick               # the whole pipeline in a few minutes, tiny corpus\n"
    "  llaso demo --out /tmp/nano --weights ~/.cache/llaso/weights"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", default="demo-run", help="folder for everything the demo makes (default ./demo-run)"
    )
    p.add_argument(
        "--profile",
        default=None,
        metavar="NAME",
        help="the profile to run, a NAME.yaml of the config folder: default, all, quick (default: default)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="= --profile quick: the whole pipeline in a few minutes (synth's test-size corpus, a few steps)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus (default 0)")
    p.add_argument(
        "--weights",
        default=None,
        help="folder of `llaso weights import` (default OUT/weights; complete folders are reused)",
    )
    p.add_argument(
        "--config-dir",
        default=None,
        help="folder of the demo configs (default: configs/demo of this checkout)",
    )
    p.add_argument(
        "--no-real-speech", action="store_true", help="skip the LibriVox set (it needs PyPI the first time)"
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads for training and inference (default: $OMP_NUM_THREADS, else the cores other "
        "processes leave free, sampled as each training and inference step starts)",
    )


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def run(args: argparse.Namespace) -> int:
    if args.quick and args.profile not in (None, "quick"):
        print(f"llaso demo: --quick and --profile {args.profile} contradict each other", file=sys.stderr)
        return 2
    options = from_dict(
        DemoOptions,
        {
            "out": args.out,
            "profile": "quick" if args.quick else (args.profile or DEFAULT_PROFILE),
            "seed": args.seed,
            "weights": args.weights,
            "config_dir": args.config_dir,
            "real_speech": not args.no_real_speech,
            "threads": args.threads,
        },
        "",
    )
    try:
        return steps.run_demo(options)
    except DemoError as e:
        print(f"llaso demo: {e}", file=sys.stderr)
        return 2
