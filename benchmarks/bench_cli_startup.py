"""Benchmark: how long `llaso --help` takes (start-up of the command line), the median of N runs.

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs N] [--other-src DIR] [ARGS ...]

Runs `python -m llaso.cli ARGS` in a fresh process each time and prints the median wall time. With
`--other-src DIR` (the `src/` of another checkout, e.g. `git worktree add /tmp/old REV`), the two trees run
alternately in the same loop, so the machine's load falls on both alike. `llaso --help` should stay under half a second: the command
table imports a command's module only when that command runs, so no torch or transformers here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--other-src", type=Path, help="also time the llaso package under this src/ folder")
    ap.add_argument("args", nargs="*", default=["--help"], help="the llaso arguments (default: --help)")
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "llaso.cli", *args.args]
    trees = {"this tree": str(Path(__file__).resolve().parents[1] / "src")}
    if args.other_src:
        trees[str(args.other_src)] = str(args.other_src.resolve())
    times: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.runs):
        for name, src in trees.items():
            env = {**os.environ, "PYTHONPATH": src}
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(
            f"{' '.join(['llaso', *args.args])} ({name}): median {statistics.median(ts):.3f} s over "
            f"{args.runs} runs (min {min(ts):.3f}, max {max(ts):.3f})"
        )


if __name__ == "__main__":
    main()
