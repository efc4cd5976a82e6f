"""Inference benchmark: batch 16 against batch 1 (the original's loop), same model and data.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_infer.py                 # a small random LSLM
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_infer.py --model DIR     # any llaso model folder

Both runs go through `run_inference` (the code behind `llaso infer`) in one process, on the same clips
(LLaSO-Eval-like durations: median about 5 s, a few up to 30 s), and the answers are compared string by string.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.run import InferOptions, load_model, run_inference


def make_data(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    secs = np.clip(rng.lognormal(np.log(5.0), 0.5, n), 1.0, 30.0)
    secs[: max(1, n // 16)] = 28.0  # a few long ones
    (root / "audio").mkdir(parents=True)
    recs = []
    for i, s in enumerate(secs):
        t = np.arange(int(16000 * s)) / 16000
        wav = 0.2 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(root / "audio" / f"{i}.wav", wav.astype("float32"), 16000)
        recs.append(
            {
                "id": str(i),
                "voice": [f"audio/{i}.wav"],
                "conversations": [
                    {"from": "human", "value": "Identify the speaker's emotion.<audio>"},
                    {"from": "gpt", "value": "Joy."},
                ],
            }
        )
    path = root / "eval" / "meld_ER_classification_test.json"
    write_records(path, recs)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a llaso model folder (default: a small random LSLM built in code)")
    ap.add_argument("--n", type=int, default=48, help="number of clips")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    ap.add_argument(
        "--window-seconds", type=int, default=10, help="encoder window of the random model (default 10)"
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.model:
            model, proc = load_model(args.model)
            name = args.model
        else:
            from llaso.model.modeling import build_tiny_llaso

            model, proc = build_tiny_llaso(
                d_model=384,
                hidden_size=512,
                layers=4,
                window_seconds=args.window_seconds,
                audio_token_mode="lean",
                stack_factor=4,
                seed=0,
            )
            model.eval()
            name = (
                f"random LSLM (Whisper-tiny-sized encoder with {args.window_seconds} s windows, "
                "4-layer 512-d Llama, lean + stack 4)"
            )
        data = make_data(root, args.n)
        rows, answers = [], {}
        for bs in args.batch_sizes:
            out = root / f"out{bs}"
            t0 = time.perf_counter()
            s = run_inference(
                model,
                proc,
                [data],
                out,
                InferOptions(
                    batch_size=bs, max_new_tokens=args.max_new_tokens, audio_root=str(root), progress=False
                ),
            )
            secs = time.perf_counter() - t0
            answers[bs] = [r["answer"] for r in iter_records(out / "meld_ER_classification_test.jsonl")]
            rows.append((bs, s.decoded / secs, s.audio_seconds / secs, secs))
        base = rows[0][1]
        print(f"model: {name}; {args.n} clips; max_new_tokens {args.max_new_tokens}; torch threads 2\n")
        print("| batch size | samples/s | RTFx | wall | speed-up |")
        print("|---:|---:|---:|---:|---:|")
        for bs, rate, rtfx, secs in rows:
            print(f"| {bs} | {rate:.2f} | {rtfx:.1f} | {secs:.1f} s | {rate / base:.1f}x |")
        ref = answers[args.batch_sizes[0]]
        for bs in args.batch_sizes[1:]:
            same = sum(a == b for a, b in zip(ref, answers[bs], strict=True))
            print(f"\nbatch {bs}: {same}/{len(ref)} answers identical to batch {args.batch_sizes[0]}")


if __name__ == "__main__":
    main()
