"""`llaso demo`: the main job on the embedded default.

Until the end-to-end demo exists (train LLaSO-Nano, infer, evaluate), this runs the corpus tools on the
built-in sample corpus: build it, validate it with its audio, count it and draw its donut chart, and merge
its modality folders into one shuffled training file. It says so when it runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DESCRIPTION = __doc__
EXAMPLES = "  llaso demo\n  llaso demo --out /tmp/llaso-demo --seed 1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", default="demo-run", help="folder for everything the demo makes (default ./demo-run)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quick", action="store_true", help="smallest run (one record per source)")


def run(args: argparse.Namespace) -> int:
    from llaso.cli import main as cli
    from llaso.data.builtin import write_builtin_corpus

    out = Path(args.out)
    corpus = out / "corpus"
    print(
        "llaso demo: the end-to-end LLaSO-Nano demo (train, infer, evaluate) is not built yet;\n"
        "running the corpus tools on the built-in sample corpus instead.\n"
    )
    t0 = time.perf_counter()
    files = write_builtin_corpus(corpus, per_source=1 if args.quick else 3, seed=args.seed)
    print(f"[1/4] built-in corpus: {len(files)} files under {corpus}/ (text_audio, audio_text, pure_audio)\n")

    steps = [
        (
            "[2/4] validate (schema, placeholders, tasks, ids, audio)",
            [
                "data",
                "validate",
                str(corpus),
                "--check-audio",
                "--audio-root",
                str(corpus),
                "--report",
                str(out / "validate.json"),
            ],
        ),
        (
            "[3/4] stats (task x modality x category, donut chart)",
            [
                "data",
                "stats",
                str(corpus),
                "--audio-root",
                str(corpus),
                "--durations",
                "--out",
                str(out / "stats"),
            ],
        ),
        (
            "[4/4] merge the modality folders into one shuffled training file",
            [
                "data",
                "merge",
                str(corpus / "text_audio"),
                str(corpus / "audio_text"),
                str(corpus / "pure_audio"),
                "-o",
                str(out / "train.json"),
                "--shuffle",
                "--seed",
                str(args.seed),
                "--report",
                str(out / "merge.json"),
            ],
        ),
    ]
    for title, argv in steps:
        print(f"{title}\n$ llaso {' '.join(argv)}")
        rc = cli(argv)
        if rc != 0:
            print(f"demo step failed with exit code {rc}")
            return rc
        print()
    print(
        f"done in {time.perf_counter() - t0:.1f} s. Outputs in {out}/:\n"
        f"  corpus/            the built-in corpus (JSON + audio)\n"
        f"  validate.json      validation report\n"
        f"  stats/stats.json   counts; stats/donut.png the corpus chart\n"
        f"  train.json         merged, shuffled training file"
    )
    return 0
