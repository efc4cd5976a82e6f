"""Benchmark: score every prediction file of one system with all metrics but the judge, print the wall time.

    .venv/bin/python benchmarks/bench_eval.py [SYSTEM_DIR] [--repeat N]

SYSTEM_DIR defaults to ../shared/llaso-results/LLaSO-Base. Judge scores are not computed (the folder's
published gpt_result/ records are ignored), so open answers get the reference-based fallback. Each repeat
starts with an empty normalizer memo, so every run does the full work.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "llaso-results" / "LLaSO-Base"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("system", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="normalizer processes (default: min(2, cores))")
    args = ap.parse_args()
    if not args.system.is_dir():
        raise SystemExit(f"{args.system}: not found")

    t0 = time.perf_counter()
    from llaso.evaluate.metrics import text_metrics
    from llaso.evaluate.scoring import ScoreOptions, score_system
    from llaso.tasks.registry import load_registry

    registry = load_registry()
    print(f"imports + registry: {time.perf_counter() - t0:.2f} s; cores: {os.cpu_count()}")
    times = []
    for _ in range(args.repeat):
        text_metrics._MEMO.clear()
        t = time.perf_counter()
        s = score_system(
            [args.system],
            registry,
            use_published=False,
            options=ScoreOptions(progress=False, workers=args.workers),
        )
        times.append(time.perf_counter() - t)
    n = sum(f.n for f in s.files)
    print(
        f"{s.name}: {len(s.files)} files, {n} records; wall time per run: "
        + ", ".join(f"{x:.2f}" for x in times)
        + f" s (best {min(times):.2f} s)"
    )


if __name__ == "__main__":
    main()
