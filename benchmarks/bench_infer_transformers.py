"""Transformers backend benchmark: batch 8 against batch 1, same model and samples, side by side.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_infer_transformers.py              # tiny qwen2_audio
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_infer_transformers.py --model DIR  # any supported folder

The samples are the three LLaSO configurations in turn ((t,a), (a,t), (a)) on tones of 0.5-3 s, written
to a temporary folder; both runs call `TransformersBackend.generate` in one process, on CPU by default,
and the answers are compared string by string.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from llaso.infer.backends.hf import TransformersBackend
from llaso.schema import Sample

# the tests' tiny models (tests/ is not an installed package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.tiny_audio_llms import build_qwen2_audio

PROMPTS = (
    "Identify the speaker's emotion. Choose from happy, sad, angry or neutral.\n<audio>",
    "<audio>\nthe quick brown fox jumps over the lazy dog",
    "<audio>",
)


def make_samples(root: Path, n: int, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        secs = float(rng.uniform(0.5, 3.0))
        t = np.arange(int(16000 * secs)) / 16000
        wav = 0.2 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(root / f"{i}.wav", wav.astype("float32"), 16000)
        turns = [{"from": "human", "value": PROMPTS[i % 3]}, {"from": "gpt", "value": "x"}]
        samples.append(Sample.from_record({"id": str(i), "voice": [f"{i}.wav"], "conversations": turns}))
    return samples


def timed(
    backend: TransformersBackend, samples: list[Sample], batch_size: int, tokens: int
) -> tuple[list[object], float]:
    backend.batch_size = batch_size
    t0 = time.perf_counter()
    out = backend.generate(samples, tokens)
    return list(out), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a model folder (default: the tests' tiny random qwen2_audio)")
    ap.add_argument("--n", type=int, default=32, help="number of samples")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the machine is shared)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = Path(args.model) if args.model else build_qwen2_audio(root / "model")
        backend = TransformersBackend.load(folder, dtype=args.dtype, device=args.device, audio_root=root)
        samples = make_samples(root, args.n)
        backend.generate(samples[:2], 2)  # warm-up: first-call costs out of both timings
        rows = {bs: timed(backend, samples, bs, args.max_new_tokens) for bs in (1, args.batch_size)}
    (one, t1), (many, tn) = rows[1], rows[args.batch_size]
    same = sum(a == b for a, b in zip(one, many, strict=True))
    failures = sum(not isinstance(a, str) for a in one)
    print(f"model: {args.model or 'tiny random qwen2_audio'} ({backend.model_type}); {args.n} samples; "
          f"max_new_tokens {args.max_new_tokens}; {args.device} {args.dtype}; torch threads {args.threads}\n")  # fmt: skip
    print("| batch size | items/s | wall |")
    print("|---:|---:|---:|")
    for bs, (_, secs) in sorted(rows.items()):
        print(f"| {bs} | {args.n / secs:.2f} | {secs:.2f} s |")
    print(f"\nspeed-up batch {args.batch_size} / batch 1: {t1 / tn:.2f}x")
    print(f"answers identical: {same}/{args.n} ({failures} failures)")


if __name__ == "__main__":
    main()
