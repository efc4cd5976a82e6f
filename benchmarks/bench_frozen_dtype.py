"""The frozen weights stored in bf16 (`loop.frozen_in_autocast: true`) against fp32 weights that bf16
autocast casts at every use, side by side: the same training config, the same steps over the same samples,
the two settings alternating in child `llaso train` runs so that load from elsewhere hits both alike.

Give it a training config that runs under bf16 autocast (on a CPU: one with AVX512-BF16 or AMX, where `auto`
is bf16), for example the demo's stage 2 as the demo wrote it:

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_frozen_dtype.py \\
        --config demo-run/default/instruct/train_config.yaml --steps 20 --reps 2

The feature cache is turned off in every run (each of the demo's samples is seen once, so its encoder runs
at every step there too). Prints each setting's median step seconds (the first two steps of a run left out:
warm-up) and the ratio, with the per-step ratios' median (the same batch in both settings).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {"cast": "false", "stored": "true"}  # name -> loop.frozen_in_autocast
WARMUP = 2  # steps of each run left out of the figures


def run_once(config: str, steps: int, stored: str, out: Path) -> list[float]:
    """One `llaso train` run of `steps` steps; its per-step seconds from train_log.jsonl."""
    cmd = [sys.executable, "-m", "llaso.cli", "train", "--config", config, "--no-resume", "--skip-preflight",
           f"output_dir={out}", f"loop.max_steps={steps}", "loop.mixed_precision=auto",
           f"loop.frozen_in_autocast={stored}", "data.feature_cache=false", "save.final=false",
           f"save.steps={steps + 1}", "log.progress=false"]  # fmt: skip
    subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [float(r["seconds"]) for r in rows if "seconds" in r][WARMUP:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--config",
        required=True,
        help="a training config (the demo writes OUT/PROFILE/STAGE/train_config.yaml)",
    )
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args()
    times: dict[str, list[list[float]]] = {k: [] for k in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            order = list(SETTINGS) if rep % 2 == 0 else list(reversed(SETTINGS))
            for name in order:
                times[name].append(
                    run_once(args.config, args.steps, SETTINGS[name], Path(tmp) / f"{name}{rep}")
                )
    med = {k: statistics.median(t for run in v for t in run) for k, v in times.items()}
    # the same steps in both settings (same config and seed), so run k of one pairs with run k of the other
    runs = zip(times["cast"], times["stored"], strict=True)
    paired = [c / s for rc, rs in runs for c, s in zip(rc, rs, strict=True)]
    for k in SETTINGS:
        print(f"{k:7s} (loop.frozen_in_autocast={SETTINGS[k]}): median {med[k]:.3f} s per step")
    print(
        f"cast / stored: {med['cast'] / med['stored']:.3f} (median of the per-step ratios {statistics.median(paired):.3f})"
    )


if __name__ == "__main__":
    main()
