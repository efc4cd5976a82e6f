"""Corpus I/O benchmark: merge and validate (no audio) of one generated JSON list, against `json.load`.

Each measurement runs in its own process so that its peak RSS is its own. Usage:

    .venv/bin/python benchmarks/bench_corpus_io.py                    # 100k and 1M records
    .venv/bin/python benchmarks/bench_corpus_io.py --sizes 100000     # quicker

Prints a Markdown table (records/s and peak RSS per step and size) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = [
    "For a speaker-profiling dataset, decide whether this voice is male or female. Answer Male or Female.<audio>",
    "Transcribe the recording exactly and return only the transcript.<audio>",
    "<audio>Summarize the following passage in two sentences: the committee met on Tuesday to review ...",
    "Listen to the recording and do what it asks.<audio>",
]


def generate(path: Path, n: int, seed: int = 0) -> None:
    """A JSON list shaped like the release: one big list, backslash paths, metadata, ~450 bytes per record."""
    rng = random.Random(seed)
    words = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "was",
        "he",
        "for",
        "it",
        "with",
        "as",
        "his",
        "on",
        "be",
        "at",
        "by",
        "had",
        "are",
        "but",
        "from",
        "or",
        "have",
        "an",
        "they",
    ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n")
        for i in range(n):
            rec = {
                "index": i,
                "speaker_id": str(rng.randrange(10_000)),
                "voice": [
                    f"mls_english_opus/train\\{rng.randrange(10**5)}_{rng.randrange(10**4)}_{i:06d}.wav"
                ],
                "conversations": [
                    {"from": "human", "value": rng.choice(PROMPTS)},
                    {"from": "gpt", "value": " ".join(rng.choices(words, k=rng.randrange(8, 40)))},
                ],
                "metadata": {"gender": rng.choice(["Male", "Female"]), "age": rng.randrange(18, 80)},
            }
            f.write(("" if i == 0 else ",\n") + json.dumps(rec, ensure_ascii=False))
        f.write("\n]\n")


def child(step: str, path: str, workdir: str) -> None:
    """Run one step in this process and print {seconds, records, peak_rss_mb} as JSON."""
    t0 = time.perf_counter()
    if step == "json.load (baseline)":
        with open(path, encoding="utf-8") as f:
            n = len(json.load(f))
    elif step == "merge":
        from llaso.corpus.merge import MergeOptions, merge

        n = merge([path], os.path.join(workdir, "merged.json"), MergeOptions(progress=False)).n_written
    elif step == "merge --shuffle":
        from llaso.corpus.merge import MergeOptions, merge

        n = merge(
            [path], os.path.join(workdir, "shuffled.json"), MergeOptions(progress=False, shuffle=True)
        ).n_written
    elif step == "validate":
        from llaso.corpus.validate import validate_paths

        report = validate_paths([path], progress=False)
        n = report.records
    else:
        raise SystemExit(f"unknown step {step}")
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": secs, "records": n, "peak_rss_mb": rss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument(
        "--steps", nargs="+", default=["json.load (baseline)", "merge", "merge --shuffle", "validate"]
    )
    ap.add_argument("--workdir", help="where to put the generated corpus (default: a temporary folder)")
    ap.add_argument("--child", nargs=3, metavar=("STEP", "PATH", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"asr_bench{n}_train.json"  # a name the registry maps to ASR
            t0 = time.perf_counter()
            generate(path, n)
            size_mb = path.stat().st_size / 2**20
            print(
                f"generated {n} records ({size_mb:.0f} MB) in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
            for step in args.steps:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", step, str(path), tmp],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                assert r["records"] == n, (step, r)
                rows.append((n, size_mb, step, r["records"] / r["seconds"], r["peak_rss_mb"], r["seconds"]))
                print(
                    f"{n:>9} {step:22} {rows[-1][3]:>10.0f} rec/s {r['peak_rss_mb']:>7.0f} MB "
                    f"{r['seconds']:.1f} s",
                    file=sys.stderr,
                )
                for f in Path(tmp).glob("merged.json") or ():
                    f.unlink()
            path.unlink()
    print("| records | file | step | records/s | peak RSS | wall |")
    print("|---:|---:|---|---:|---:|---:|")
    for n, size_mb, step, rps, rss, secs in rows:
        print(f"| {n:,} | {size_mb:.0f} MB | {step} | {rps:,.0f} | {rss:.0f} MB | {secs:.1f} s |")


if __name__ == "__main__":
    main()
