"""Benchmark of `llaso data synth`: synthesized audio seconds per wall second, and the wall time of a size.

    HF_HUB_OFFLINE=1 MPLBACKEND=Agg .venv/bin/python benchmarks/bench_synth.py --size small --workers 2

Builds the corpus from scratch in a temporary folder (or --out), then sums the duration of every WAV it wrote
(input clips, spoken instructions under tts/, and the pure-audio concatenations under concat/), and times a
rerun (everything reused). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def _seconds(root: Path) -> dict[str, float]:
    import soundfile as sf

    out: dict[str, float] = {}
    for p in root.rglob("*.wav"):
        part = p.relative_to(root).parts[0]
        info = sf.info(str(p))
        out[part] = out.get(part, 0.0) + info.frames / info.samplerate
    return out


def main() -> int:
    from llaso.builders.synth import build_synthetic_corpus

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="small")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", default=None, help="build here (default: a temporary folder, removed afterwards)"
    )
    args = ap.parse_args()

    tmp = None if args.out else tempfile.mkdtemp(prefix="bench-synth-")
    root = Path(args.out or tmp) / "corpus"
    if root.exists():
        shutil.rmtree(root)
    try:
        t0 = time.perf_counter()
        report = build_synthetic_corpus(
            root, size=args.size, seed=args.seed, workers=args.workers, progress=False
        )
        wall = time.perf_counter() - t0
        secs = _seconds(root)
        t1 = time.perf_counter()
        rerun = build_synthetic_corpus(
            root, size=args.size, seed=args.seed, workers=args.workers, progress=False
        )
        rerun_wall = time.perf_counter() - t1
        synth_wall = report.phase_seconds.get("audio", 0.0) + report.phase_seconds.get("compose", 0.0)
        total = sum(secs.values())
        print(
            json.dumps(
                {
                    "size": args.size,
                    "workers": args.workers,
                    "cores": os.cpu_count(),
                    "records": report.total_records,
                    "clips": report.clips_made,
                    "audio_seconds": {k: round(v, 1) for k, v in sorted(secs.items())},
                    "audio_seconds_total": round(total, 1),
                    "wall_seconds": round(wall, 1),
                    "phase_seconds": {k: round(v, 1) for k, v in report.phase_seconds.items()},
                    "realtime_factor_wall": round(total / wall, 1),
                    "realtime_factor_synthesis": round(total / synth_wall, 1) if synth_wall else None,
                    "rerun_wall_seconds": round(rerun_wall, 1),
                    "rerun_clips_made": rerun.clips_made,
                }
            )
        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
