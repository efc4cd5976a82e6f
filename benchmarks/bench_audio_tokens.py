"""Audio-token budget: LLM sequence length and forward+backward time per sample, three modes side by side.

Clips have LLaSO-Eval-like durations (log-normal, median about 5 s, a few up to 30 s; synthetic audio).
One tiny model shape (a Whisper-tiny-sized encoder, frozen as in LLaSO, and a small Llama) is built for
each mode with the same seed:

* `llaso-base`: 1500 positions per 30 s window, padding included (the original);
* `lean`: trimmed to the real audio with the feature attention mask;
* `lean + stack 4`: trimmed, then 4 frames concatenated before the projector.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_audio_tokens.py [--clips 24] [--batch 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from llaso.model import build_tiny_llaso
from llaso.schema import Sample, Turn

MODES = [("llaso-base", "llaso-base", 1), ("lean", "lean", 1), ("lean + stack 4", "lean", 4)]
PROMPTS = [
    "Identify the speaker's gender. Choose from female or male.<audio>",
    "<audio>Transcribe the audio.",
    "What emotion does the speaker express?<audio>",
    "Listen to the audio and respond accordingly.<audio>",
]


def durations(n: int, seed: int) -> list[float]:
    """Log-normal around 5 s (sigma 0.5), clipped to [1, 30] s; one clip in 12 is long (20-30 s)."""
    rng = np.random.default_rng(seed)
    d = np.clip(rng.lognormal(np.log(5.0), 0.5, n), 1.0, 30.0)
    n_long = max(1, n // 12)
    d[-n_long:] = rng.uniform(20.0, 30.0, n_long)
    return [round(float(x), 2) for x in d]


def clip(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * 16000)) / 16000
    tone = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 300) * t)
    return (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def build(mode: str, stack: int, secs: list[float], batch: int) -> tuple[Any, list[dict[str, Any]]]:
    model, proc = build_tiny_llaso(
        window_seconds=30,
        d_model=384,  # Whisper-tiny-sized encoder: 4 layers, 6 heads
        encoder_layers=4,
        hidden_size=512,
        layers=8,
        audio_token_mode=mode,
        stack_factor=stack,
    )
    model.train()
    order = sorted(range(len(secs)), key=lambda i: secs[i])  # length-grouped batches, as a sampler would
    samples = [
        Sample(conversations=[Turn("human", PROMPTS[i % 4]), Turn("gpt", "Male")], voice=["x.wav"], id=i)
        for i in order
    ]
    audios = [[clip(secs[i], i)] for i in order]
    batches = [
        proc.from_samples(samples[i : i + batch], audios=audios[i : i + batch])
        for i in range(0, len(samples), batch)
    ]
    return model, batches


def time_pass(model: Any, batches: list[dict[str, Any]]) -> tuple[float, float]:
    """(seconds for forward+backward of all batches, seconds of the frozen encoder alone)."""
    step = enc = 0.0
    for b in batches:
        t0 = time.perf_counter()
        model(**b).loss.backward()
        step += time.perf_counter() - t0
        model.zero_grad()
        t0 = time.perf_counter()
        with torch.no_grad():
            model.audio_tower(b["input_features"])
        enc += time.perf_counter() - t0
    return step, enc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    secs = durations(args.clips, args.seed)
    print(
        f"{len(secs)} clips: median {statistics.median(secs):.1f} s, mean {statistics.mean(secs):.1f} s, "
        f"max {max(secs):.1f} s; batch {args.batch}; torch threads {torch.get_num_threads()}"
    )
    built = {name: build(mode, stack, secs, args.batch) for name, mode, stack in MODES}
    stats: dict[str, dict[str, float]] = {}
    for name, (model, batches) in built.items():
        model(**batches[0]).loss.backward()  # warm-up
        model.zero_grad()
        pos = [int(n) for b in batches for n in b["audio_lengths"]]
        seq = [int(m.sum()) for b in batches for m in b["attention_mask"]]
        stats[name] = {
            "pos": statistics.mean(pos),
            "pos_median": statistics.median(pos),
            "seq": statistics.mean(seq),
            "seq_max": max(seq),
            "step": float("inf"),
            "enc": float("inf"),
        }
    # modes interleaved, best of `repeats`: the machine is shared, so load spikes hit all modes alike
    for _ in range(args.repeats):
        for name, (model, batches) in built.items():
            step, enc = time_pass(model, batches)
            stats[name]["step"] = min(stats[name]["step"], step / len(secs))
            stats[name]["enc"] = min(stats[name]["enc"], enc / len(secs))
    base = stats["llaso-base"]
    print(
        "\n| mode | audio positions / sample (mean / median) | LLM seq len (mean / max) "
        "| fwd+bwd s / sample | of which frozen encoder | without encoder |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in stats.items():
        llm = r["step"] - r["enc"]
        print(
            f"| {name} | {r['pos']:.0f} / {r['pos_median']:.0f} | {r['seq']:.0f} / {r['seq_max']} "
            f"| {r['step']:.3f} | {r['enc']:.3f} | {llm:.3f} |"
        )
    print(
        "\n| mode | fewer audio positions (mean / median clip) | step speed-up | speed-up without encoder |"
    )
    print("|---|---:|---:|---:|")
    for name, r in stats.items():
        print(
            f"| {name} | {base['pos'] / r['pos']:.1f}x / {base['pos_median'] / r['pos_median']:.1f}x "
            f"| {base['step'] / r['step']:.1f}x | {(base['step'] - base['enc']) / (r['step'] - r['enc']):.1f}x |"
        )


if __name__ == "__main__":
    main()
