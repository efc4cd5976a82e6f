"""Benchmark: how long `llaso --help` takes (start-up of the command line), the median of N runs.

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs N] [ARGS ...]

Runs the `llaso` script beside this interpreter (or `python -m llaso.cli` without one) in a fresh process
each time and prints the median wall time. `llaso --help` should stay under half a second: the command
table imports a command's module only when that command runs, so no torch or transformers here.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("args", nargs="*", default=["--help"], help="the llaso arguments (default: --help)")
    args = ap.parse_args()
    script = Path(sys.executable).with_name("llaso")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "llaso.cli"]
    cmd += args.args
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    print(
        f"{' '.join(['llaso', *args.args])}: median {statistics.median(times):.3f} s over {args.runs} runs "
        f"(min {min(times):.3f}, max {max(times):.3f})"
    )


if __name__ == "__main__":
    main()
