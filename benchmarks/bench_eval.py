"""Benchmark: score every prediction file of one system and write its results, print the wall time.

    .venv/bin/python benchmarks/bench_eval.py [SYSTEM_DIR] [--repeat N] [--other-src DIR]

SYSTEM_DIR defaults to ../shared/llaso-results/LLaSO-Base. Each run is a fresh process that imports llaso,
then times (in-process, imports excluded) scoring with the folder's published judge records, and writing
results.json plus, where the tree has them, the per-item records (items.jsonl) with the bootstrap
intervals; the chart and HTML pages are not part of it. With `--other-src DIR` (the `src/` of another
checkout, e.g. `git worktree add /tmp/old REV`), the two trees run alternately in one loop, so the
machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "llaso-results" / "LLaSO-Base"

# Run in the child: works with trees before and after per-item records and intervals.
CHILD = """
import sys, time
from pathlib import Path
from llaso.corpus.jsonio import write_json_atomic
from llaso.evaluate import report, scoring
from llaso.tasks.registry import load_registry
system, out = Path(sys.argv[1]), Path(sys.argv[2])
registry = load_registry()
t = time.perf_counter()
s = scoring.score_system([system], registry, options=scoring.ScoreOptions(progress=False))
try:
    from llaso.evaluate.items import write_items
    write_items(out / "items.jsonl", [s])
    items = sum(len(f.items) for f in s.files)
except ImportError:
    items = 0
write_json_atomic(out / "results.json", report.results_document([s], scoring.ScoreOptions(), "absolute"))
print(f"{time.perf_counter() - t:.4f} {sum(f.n for f in s.files)} {items}")
"""


def run_once(src: str, system: Path) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1"}
        got = subprocess.run(
            [sys.executable, "-c", CHILD, str(system), out],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
    seconds, records, items = got.stdout.split()
    return float(seconds), int(records), int(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("system", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--other-src", type=Path, help="also time the llaso package under this src/ folder")
    args = ap.parse_args()
    if not args.system.is_dir():
        raise SystemExit(f"{args.system}: not found")
    trees = {"this tree": str(Path(__file__).resolve().parents[1] / "src")}
    if args.other_src:
        trees[str(args.other_src)] = str(args.other_src.resolve())
    times: dict[str, list[float]] = {name: [] for name in trees}
    shape: dict[str, tuple[int, int]] = {}
    for _ in range(args.repeat):
        for name, src in trees.items():
            seconds, records, items = run_once(src, args.system)
            times[name].append(seconds)
            shape[name] = (records, items)
    print(f"{args.system.name}; cores: {os.cpu_count()}")
    for name, ts in times.items():
        records, items = shape[name]
        print(
            f"{name}: {records} records, {items} item records; median {statistics.median(ts):.2f} s, "
            f"best {min(ts):.2f} s ({', '.join(f'{x:.2f}' for x in ts)})"
        )


if __name__ == "__main__":
    main()
